"""A lost node: node 2's link to the others is cut (the host's end of its veth set down), as a
node of a cloud cluster drops off its network, with 2 workers and one rng (the DaemonSet's) on it.
Its link, not its kubelet and containerd, because then its pods keep running, cut off, as they do
when a real node is lost; stopping the kubelet would leave them mining and flushing. The node goes
NotReady, its workers are evicted by the `node.kubernetes.io/unreachable` taint (the chart's
`worker.tolerations` shorten it to 10 s) and replaced on the other nodes, mining goes on, and no
loop is counted twice: redis `hashes` is exactly what the surviving workers flushed plus what the
lost ones had flushed before the cut. The loops the lost workers did not flush are lost, and
printed."""
import json
import re
import subprocess
import threading
import time

import pytest

from helpers import figures
from helpers.node import SPREAD_WORKERS, Release, Watch, final_totals, steady_speed
from localapp import wait_until
from dockercoins_lab.scaling import random_balancing

LOST = "dockercoins-node-2"
LINK = "dcnode2-host"                       # its veth's end on node 0's bridge
IN_LOST = ["nsenter", "--net=/run/netns/dcnode2"]
TOLERATION = [{"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute",
               "tolerationSeconds": 10} for taint in ("unreachable", "not-ready")]
# Every worker's last heartbeat in redis: {key: heartbeat}, in one call.
HEARTBEATS = ("local out = {} for _, k in ipairs(redis.call('KEYS', 'dockercoins:worker:*')) do "
              "table.insert(out, k) table.insert(out, redis.call('GET', k)) end return out")


@pytest.fixture(scope="module")
def app(nodes_cluster):
    release = Release(nodes_cluster, nodes_cluster.new_namespace("lost"))
    # rng, hasher, webui and redis stay off the lost node, except the DaemonSet's rng.
    pinned = [arg for name in ("hasher", "webui", "redis")
              for arg in ("--set",
                          f"{name}.nodeSelector.kubernetes\\.io/hostname=dockercoins-node")]
    release.install("--set", "rng.kind=DaemonSet", "--set", "worker.replicaCount=6",
                    *SPREAD_WORKERS,
                    "--set-json", f"worker.tolerations={json.dumps(TOLERATION)}", *pinned)
    yield release
    subprocess.run(["ip", "link", "set", LINK, "up"], check=True)
    wait_until(lambda: ready(nodes_cluster, LOST), 120, f"{LOST} Ready again")
    release.uninstall()


def ready(cluster, node):
    conditions = cluster.get("node", node)["status"]["conditions"]
    return [c["status"] for c in conditions if c["type"] == "Ready"] == ["True"]


class LostWatch(Watch):
    """Watch, plus every worker's last heartbeat in redis (its loops flushed so far; it lives 5 s
    after a worker's last flush), polled every second."""

    def __init__(self, release):
        super().__init__(release)
        self.flushed = {}      # worker id (pod name-uuid) -> loops flushed
        self.threads.append(threading.Thread(target=self.poll_heartbeats))

    def poll_heartbeats(self):
        while not self.done.wait(1.0):
            try:
                out = self.release.kubectl("exec", "deploy/redis", "--", "redis-cli", "--raw",
                                           "EVAL", HEARTBEATS, "0").split("\n")
            except Exception:
                continue
            for key, value in zip(out[0::2], out[1::2]):
                if key.startswith("dockercoins:worker:") and value:
                    beat = json.loads(value)
                    self.flushed[beat["id"]] = max(self.flushed.get(beat["id"], 0), beat["hashes"])


def loops_done(pod):
    """dockercoins_worker_hashes_total of a pod on the lost node, read from inside its network
    namespace (the API server can no longer reach that kubelet)."""
    text = subprocess.run([*IN_LOST, "curl", "-sf", "--max-time", "5",
                           f"http://{pod['status']['podIP']}:8080/metrics"],
                          capture_output=True, text=True, check=True).stdout
    return int(float(re.search(r"^dockercoins_worker_hashes_total (\S+)$", text, re.M).group(1)))


def test_a_lost_node_is_replaced_and_nothing_counts_twice(app):
    lost = [p for p in app.ready_pods("worker") if p["spec"]["nodeName"] == LOST]
    assert len(lost) == 2
    assert [p["spec"]["nodeName"] for p in app.ready_pods("rng")].count(LOST) == 1
    with LostWatch(app) as watch:
        watch.follow_new()
        time.sleep(5)
        cut = time.monotonic()
        subprocess.run(["ip", "link", "set", LINK, "down"], check=True)
        wait_until(lambda: not ready(app.cluster, LOST), 150, f"{LOST} NotReady")
        figures.record("node", "lost_node_not_ready_after_seconds",
                       round(time.monotonic() - cut, 1))
        names = {p["metadata"]["name"] for p in lost}

        def replaced():
            running = [p for p in app.ready_pods("worker") if p["metadata"]["name"] not in names]
            return len(running) == 6 and all(p["spec"]["nodeName"] != LOST for p in running)
        wait_until(replaced, 120, "6 workers Ready on the other nodes")
        figures.record("node", "lost_node_workers_replaced_after_seconds",
                       round(time.monotonic() - cut, 1))
        # Mining goes on, on two rngs.
        speed = steady_speed(app, settle=8, seconds=10)
        watch.follow_new()
    figures.record("node", "lost_node_longest_mining_stop_seconds", round(watch.longest_stop(), 1))
    figures.record("node", "lost_node_speed_after", {
        "measured": round(speed, 1), "random-balancing estimate": round(random_balancing(6, 2), 1)})
    assert speed >= 0.7 * random_balancing(6, 2), speed
    # The lost workers' own counts, from their namespace: done, and flushed before the cut.
    done = {p["metadata"]["name"]: loops_done(p) for p in lost}
    flushed = {pod: sum(n for wid, n in watch.flushed.items() if wid.startswith(pod + "-"))
               for pod in done}
    figures.record("node", "lost_node_loops_not_flushed",
                   {pod: done[pod] - flushed[pod] for pod in done})
    assert all(flushed[pod] > 0 and done[pod] >= flushed[pod] for pod in done), (done, flushed)
    # Every other worker, the replacements too, stops with its final flush.
    others = {pod: f for pod, f in watch.followers.items() if pod not in names}
    for proc in (f for pod, f in watch.followers.items() if pod in names):
        proc.kill()
    app.kubectl("scale", "deployment", "worker", "--replicas=0")
    totals = final_totals(app, others)
    assert len(totals) == 6, sorted(totals)   # 4 that stayed, 2 replacements
    assert int(app.redis("GET", "hashes")) == sum(totals.values()) + sum(flushed.values()), (
        totals, flushed)
