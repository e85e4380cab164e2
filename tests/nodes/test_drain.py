"""`kubectl drain` on three real nodes while 6 workers mine, with rng as a DaemonSet and 2 replicas
of hasher and webui behind their PodDisruptionBudgets: the drain completes, mining never stops for
more than 5 s, and every loop is counted once. Then again with redis at 0 replicas, so webui is
unready: the drain still completes (`unhealthyPodEvictionPolicy: AlwaysAllow`).

The tests of this module share one release and run in order."""
import threading
import time

import pytest

from helpers.node import FIGURES, SPREAD_WORKERS, Release, final_totals
from localapp import wait_until

DRAIN = ["--ignore-daemonsets", "--delete-emptydir-data", "--timeout=180s"]
PDB_REFUSAL = "Cannot evict pod as it would violate the pod's disruption budget"


@pytest.fixture(scope="module")
def app(nodes_cluster):
    release = Release(nodes_cluster, nodes_cluster.new_namespace("drain"))
    release.install("--set", "rng.kind=DaemonSet", "--set", "worker.replicaCount=6",
                    "--set", "hasher.replicaCount=2", "--set", "webui.replicaCount=2", *SPREAD_WORKERS)
    yield release
    for node in [n["metadata"]["name"] for n in nodes_cluster.get("nodes")["items"]]:
        nodes_cluster.kubectl("uncordon", node, check=False)
    release.uninstall()


class Watch:
    """While the body runs: redis `hashes` every 0.2 s (through webui's /json), and `kubectl logs
    -f` of every worker pod once its container runs, so a replaced pod's final flush is kept."""

    def __init__(self, release):
        self.release = release
        self.samples = []        # (monotonic time, hashes)
        self.followers = {}
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.poll_hashes), threading.Thread(target=self.follow)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        for thread in self.threads:
            thread.join()

    def poll_hashes(self):
        while not self.done.wait(0.2):
            try:
                self.samples.append((time.monotonic(), self.release.json()["hashes"]))
            except Exception:
                pass   # a webui pod moving: the next sample tells

    def follow(self):
        while not self.done.wait(0.5):
            self.follow_new()

    def follow_new(self):
        for pod in self.release.pods("worker"):
            name = pod["metadata"]["name"]
            states = pod["status"].get("containerStatuses") or [{}]
            if name not in self.followers and "running" in states[0].get("state", {}):
                self.followers.update(self.release.follow_logs([name]))

    def longest_stop(self):
        """The longest time, in s, between two samples where `hashes` rose."""
        rises = [t for (t, h), (_, before) in zip(self.samples[1:], self.samples) if h > before]
        return max(b - a for a, b in zip(rises, rises[1:]))


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
        FIGURES["drain_seconds"] = round(time.monotonic() - started, 1)
        wait_until(lambda: len(app.ready_pods("worker")) == 6, 120, "6 workers ready again")
        time.sleep(5)
        watch.follow_new()
    assert f"node/{node} drained" in out, out
    moved = [p for p in app.pods("worker") if p["spec"]["nodeName"] == node]
    assert moved == [], "a worker is still on the drained node"
    FIGURES["drain_longest_mining_stop_seconds"] = round(watch.longest_stop(), 1)
    assert watch.longest_stop() <= 5.0
    # Every worker pod that ever ran here, the evicted and their replacements, flushed its count.
    followers = watch.followers
    assert len(followers) > 6, sorted(followers)
    app.stop_all_workers()
    totals = final_totals(followers)
    assert int(app.redis("GET", "hashes")) == sum(totals.values()), totals
    app.cluster.kubectl("uncordon", node)


def test_a_drain_with_redis_down_is_held_by_no_budget(app):
    app.scale("redis", 0)
    wait_until(lambda: not app.ready_pods("webui"), 60, "webui unready without redis")
    node = node_to_drain(app, without=())
    assert any(p["spec"]["nodeName"] == node for p in app.pods("webui") + app.pods("hasher"))
    proc = app.cluster.run(["kubectl", "drain", node, *DRAIN], check=False, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert PDB_REFUSAL not in proc.stdout + proc.stderr
    assert f"node/{node} drained" in proc.stdout
    app.cluster.kubectl("uncordon", node)
