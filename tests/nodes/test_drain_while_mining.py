"""`kubectl drain` on three real nodes while 6 workers mine, with rng as a DaemonSet and 2 replicas
of hasher and webui behind their PodDisruptionBudgets: the drain completes, mining never stops for
more than 5 s, and every loop is counted once. Then again with redis at 0 replicas and both
hashers unready (their budget with no room): the drain still completes
(`unhealthyPodEvictionPolicy: AlwaysAllow`). Last, `dockercoins-lab drain` does it and prints the
counts.

The tests of this module share one release and run in order."""
import re
import time

import pytest

from helpers import figures
from helpers.kube import run_lab
from helpers.node import SPREAD_WORKERS, Release, Watch, final_totals
from localapp import wait_until

DRAIN = ["--ignore-daemonsets", "--delete-emptydir-data", "--timeout=180s"]
PDB_REFUSAL = "Cannot evict pod as it would violate the pod's disruption budget"


@pytest.fixture(scope="module")
def app(nodes_cluster):
    release = Release(nodes_cluster, nodes_cluster.new_namespace("drain"))
    release.install("--set", "rng.kind=DaemonSet", "--set", "worker.replicaCount=6",
                    "--set", "hasher.replicaCount=2", "--set", "webui.replicaCount=2",
                    *SPREAD_WORKERS)
    yield release
    for node in [n["metadata"]["name"] for n in nodes_cluster.get("nodes")["items"]]:
        nodes_cluster.kubectl("uncordon", node, check=False)
    release.uninstall()


def node_to_drain(app, without):
    """A node that runs no pod of `without` (redis: its data would go with it), and most of the
    hasher and webui pods among the others, so their budgets are put to work."""
    pods = app.cluster.get("pods", "-n", app.ns)["items"]
    avoid = {p["spec"]["nodeName"] for p in pods if p["metadata"]["labels"].get(
        "app.kubernetes.io/component") in without}
    score = {}
    for p in pods:
        node = p["spec"]["nodeName"]
        if node not in avoid:
            score[node] = score.get(node, 0) + (p["metadata"]["labels"].get(
                "app.kubernetes.io/component") in ("hasher", "webui"))
    return max(sorted(score), key=score.get)


def test_a_drain_while_mining_loses_and_doubles_nothing(app):
    node = node_to_drain(app, without=("redis",))
    with Watch(app) as watch:
        watch.follow_new()
        time.sleep(5)
        started = time.monotonic()
        out = app.cluster.kubectl("drain", node, *DRAIN, timeout=240)
        figures.record("node", "drain_seconds", round(time.monotonic() - started, 1))
        wait_until(lambda: len(app.ready_pods("worker")) == 6, 120, "6 workers ready again")
        time.sleep(5)
        watch.follow_new()
    assert f"node/{node} drained" in out, out
    moved = [p for p in app.pods("worker") if p["spec"]["nodeName"] == node]
    assert moved == [], "a worker is still on the drained node"
    figures.record("node", "drain_longest_mining_stop_seconds", round(watch.longest_stop(), 1))
    assert watch.longest_stop() <= 5.0
    # Every worker pod that ever ran here, the evicted and their replacements, flushed its count.
    followers = watch.followers
    assert len(followers) > 6, sorted(followers)
    app.stop_all_workers()
    totals = final_totals(app, followers)
    assert int(app.redis("GET", "hashes")) == sum(totals.values()), totals
    app.cluster.kubectl("uncordon", node)


def test_a_drain_with_redis_down_is_held_by_no_budget(app):
    """redis at 0, and both hashers unready (their /readyz switched off, as the healthchecks
    chapter does): the hasher budget has no room (0 disruptions allowed), yet the drain evicts
    the unready hasher, as `unhealthyPodEvictionPolicy: AlwaysAllow` lets it."""
    app.scale("redis", 0)
    for pod in app.ready_pods("hasher"):
        app.post_in_pod(pod["metadata"]["name"], "/readyz/disable")
    wait_until(lambda: not app.ready_pods("hasher"), 60, "both hashers unready")
    wait_until(lambda: app.cluster.get("pdb", "-n", app.ns, "hasher")["status"].get(
        "disruptionsAllowed") == 0 and app.cluster.get("pdb", "-n", app.ns, "hasher")[
        "status"].get("currentHealthy") == 0, 60, "the hasher budget with no room")
    node = next(p["spec"]["nodeName"] for p in app.pods("hasher"))
    proc = app.cluster.run(["kubectl", "drain", node, *DRAIN], check=False, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert f"node/{node} drained" in proc.stdout
    assert f"evicting pod {app.ns}/hasher-" in out
    # A budget may make a Ready pod wait for its replacement (webui, say), never an unready one.
    held = [line for line in out.splitlines() if PDB_REFUSAL in line and "hasher-" in line]
    assert held == [], out
    app.cluster.kubectl("uncordon", node)


def test_the_lab_drains_a_node_and_prints_the_counts(app):
    """`dockercoins-lab drain NODE` on the same release, redis and the hashers back, 3 workers
    mining."""
    app.scale("redis", 1)
    for pod in app.pods("hasher"):
        app.post_in_pod(pod["metadata"]["name"], "/readyz/enable")
    app.scale("worker", 3)
    node = node_to_drain(app, without=("redis",))
    code, out, err = run_lab(app.cluster.env, "-n", app.ns, "drain", node, "--seconds", "5")
    assert code == 0, err
    assert "nodes: 3 Ready of 3" in out, out
    drained = rf"^drain of {node}: [\d.]+ s, mining stopped at most [\d.]+ s$"
    assert re.search(drained, out, re.M), out
    before, after = map(int, re.search(r"^hashes: (\d+) before the drain, (\d+) after$", out,
                                       re.M).groups())
    assert after > before, out
    assert app.cluster.get("node", node)["spec"].get("unschedulable") is None   # uncordoned
