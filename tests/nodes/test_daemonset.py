"""The DaemonSet chapter on three real nodes, with 15 workers spread 5 per node: one rng gives the
plateau of 10 hashes/s; `rng.kind=DaemonSet` gives one rng per node, and kube-proxy's random pick
lifts the plateau to at least 2.2x; with `rng.service.trafficDistribution=PreferSameNode` each
worker calls its own node's rng, and the plateau is 10 x 3 (at least 27).

The tests of this module share one release and run in order."""
import pytest

from helpers import figures
from helpers.node import NODE_NAMES, SPREAD_WORKERS, Release, rng_served, steady_speed
from localapp import wait_until
from dockercoins_lab.scaling import model, random_balancing

WORKERS = 15
SPEEDS = {}


@pytest.fixture(scope="module")
def app(nodes_cluster):
    release = Release(nodes_cluster, nodes_cluster.new_namespace("ds"))
    release.install("--set", f"worker.replicaCount={WORKERS}", *SPREAD_WORKERS)
    yield release
    release.uninstall()


def upgrade(app, *sets):
    app.helm("upgrade", "dockercoins", "charts/dockercoins", "--reuse-values", *sets,
             "--wait", "--timeout", "3m")


def test_one_rng_plateau(app):
    per_node = [p["spec"]["nodeName"] for p in app.ready_pods("worker")]
    assert sorted(per_node) == sorted(NODE_NAMES * 5)
    SPEEDS["one rng"] = speed = steady_speed(app, settle=10)
    assert speed == pytest.approx(model(WORKERS, 1), rel=0.15)


def test_a_daemonset_runs_one_rng_per_node(app):
    upgrade(app, "--set", "rng.kind=DaemonSet")
    wait_until(lambda: len(app.pods("rng")) == 3 and len(app.ready_pods("rng")) == 3, 120,
               "three rng pods, from the DaemonSet")
    assert sorted(p["spec"]["nodeName"] for p in app.ready_pods("rng")) == NODE_NAMES


def test_random_balancing_lifts_the_plateau(app):
    SPEEDS["random"] = speed = steady_speed(app, settle=10)
    figures.record("node", "daemonset_x3_random_hashes_per_second", {
        "measured": round(speed, 1),
        "random-balancing estimate": round(random_balancing(WORKERS, 3), 1)})
    assert speed >= 2.2 * SPEEDS["one rng"], SPEEDS


def test_prefer_same_node_gives_ten_per_node(app):
    upgrade(app, "--set", "rng.service.trafficDistribution=PreferSameNode")
    before = rng_served(app)
    SPEEDS["PreferSameNode"] = speed = steady_speed(app, settle=10)
    after = rng_served(app)
    figures.record("node", "daemonset_x3_prefer_same_node_hashes_per_second", {
        "measured": round(speed, 1), "model": model(WORKERS, 3)})
    assert speed >= 0.9 * model(WORKERS, 3), SPEEDS
    # Every node's rng serves its own five workers at its cap, alike (its latency includes the
    # queue of those five): none idles while another queues, as random picks let happen.
    calls = {node: after[node][0] - before[node][0] for node in NODE_NAMES}
    latency = {node: (after[node][1] - before[node][1]) / calls[node] for node in NODE_NAMES}
    figures.record("node", "prefer_same_node_rng_seconds_per_node",
                   {n: round(s, 3) for n, s in latency.items()})
    assert max(calls.values()) <= 1.2 * min(calls.values()), calls
    assert max(latency.values()) <= 1.3 * min(latency.values()), latency
