"""Three real nodes (`ci/cluster.sh up --nodes 3`): each a kubelet of its own in a network namespace
of its own, with a pod range from the controller manager; the chart's pods land on all three, and a
worker on one node reaches rng, hasher and redis on another by bare Service name. Every node's
containerd refuses an image from any registry but the local one, at once."""
import ipaddress
import os
import time

import pytest

from helpers.node import NODE_NAMES, SPREAD_WORKERS, Release
from localapp import wait_until

# The services the worker calls, all on one node; the workers spread over the three.
SERVICES_NODE = "dockercoins-node-2"


@pytest.fixture(scope="module")
def app(nodes_cluster):
    """6 workers spread over the nodes; rng, hasher and redis pinned to SERVICES_NODE."""
    release = Release(nodes_cluster, nodes_cluster.new_namespace("spread"))
    pinned = [arg for name in ("rng", "hasher", "redis")
              for arg in ("--set", f"{name}.nodeSelector.kubernetes\\.io/hostname={SERVICES_NODE}")]
    release.install("--set", "worker.replicaCount=6", *SPREAD_WORKERS, *pinned)
    yield release
    release.uninstall()


def test_three_nodes_ready_each_a_real_kubelet(nodes_cluster):
    nodes = nodes_cluster.get("nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == NODE_NAMES
    for n in nodes:
        ready = [c for c in n["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True", n["metadata"]["name"]
        assert n["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    addresses = {a["address"] for n in nodes for a in n["status"]["addresses"]
                 if a["type"] == "InternalIP"}
    ranges = [ipaddress.ip_network(n["spec"]["podCIDR"]) for n in nodes]
    assert len(addresses) == 3 and len(set(ranges)) == 3, (addresses, ranges)
    cluster = ipaddress.ip_network("10.244.0.0/16")
    assert all(r.subnet_of(cluster) and r.prefixlen == 24 for r in ranges)
    # Each answers the API server's node proxy itself: a kubelet of its own, not a stand-in.
    for name in NODE_NAMES:
        assert nodes_cluster.kubectl("get", "--raw", f"/api/v1/nodes/{name}/proxy/healthz") == "ok"
    # Three kubelets and three kube-proxies, each pair in a network namespace of its own.
    namespaces = set()
    for suffix in ("", "-1", "-2"):
        kubelet = (nodes_cluster.dir / "pids" / f"kubelet{suffix}").read_text().strip()
        proxy = (nodes_cluster.dir / "pids" / f"kube-proxy{suffix}").read_text().strip()
        net = os.readlink(f"/proc/{kubelet}/ns/net")
        assert os.readlink(f"/proc/{proxy}/ns/net") == net
        namespaces.add(net)
    assert len(namespaces) == 3


def test_pods_land_on_all_three_nodes_in_their_ranges(nodes_cluster, app):
    ranges = {n["metadata"]["name"]: ipaddress.ip_network(n["spec"]["podCIDR"])
              for n in nodes_cluster.get("nodes")["items"]}
    workers = app.ready_pods("worker")
    assert len(workers) == 6
    per_node = {}
    for pod in workers:
        per_node[pod["spec"]["nodeName"]] = per_node.get(pod["spec"]["nodeName"], 0) + 1
    assert per_node == dict.fromkeys(NODE_NAMES, 2)
    for pod in app.cluster.get("pods", "-n", app.ns)["items"]:
        address = ipaddress.ip_address(pod["status"]["podIP"])
        assert address in ranges[pod["spec"]["nodeName"]], pod["metadata"]["name"]
    for name in ("rng", "hasher", "redis"):
        assert [p["spec"]["nodeName"] for p in app.ready_pods(name)] == [SERVICES_NODE]


def test_a_worker_on_another_node_reaches_the_services_by_bare_name(app):
    elsewhere = [p["metadata"]["name"] for p in app.ready_pods("worker")
                 if p["spec"]["nodeName"] != SERVICES_NODE]
    assert len(elsewhere) == 4
    log = app.kubectl("logs", elsewhere[0])
    assert "rng http://rng/32, hasher http://hasher/" in log, log[-2000:]
    resolved = app.kubectl("exec", elsewhere[0], "--", "python3", "-c",
                           "import socket; print(*(socket.gethostbyname(n) for n in "
                           "('rng', 'hasher', 'redis')))").split()
    assert resolved == [app.kubectl("get", "service", n, "-o", "jsonpath={.spec.clusterIP}")
                        for n in ("rng", "hasher", "redis")]
    # Every one of them mines: rng and hasher answer each loop, redis takes the counts.
    before = {pod: app.worker_loops(pod) for pod in elsewhere}
    hashes = int(app.redis("GET", "hashes") or 0)
    time.sleep(8)
    after = {pod: app.worker_loops(pod) for pod in elsewhere}
    assert all(after[pod] > before[pod] for pod in elsewhere), (before, after)
    assert int(app.redis("GET", "hashes")) > hashes


@pytest.mark.parametrize("node", NODE_NAMES)
def test_an_image_of_another_registry_fails_at_once(nodes_cluster, node):
    """The image of the workshop's docs, docker.io/dockercoins/rng:v0.1: the node's containerd has
    no host to ask for docker.io (nor any registry but the local one), so the pull fails in seconds,
    with no DNS lookup and no connection attempt, and the event says why."""
    namespace = nodes_cluster.new_namespace("pull")
    try:
        nodes_cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: elsewhere, namespace: {namespace}}}
spec:
  nodeName: {node}
  containers: [{{name: rng, image: docker.io/dockercoins/rng:v0.1}}]
""")
        started = time.monotonic()

        def failed_pull():
            events = nodes_cluster.get("events", "-n", namespace)["items"]
            return [e["message"] for e in events if e["reason"] == "Failed"]
        messages = wait_until(failed_pull, 60, "the pull's Failed event")
        assert time.monotonic() - started < 30
        message = messages[0]
        assert "docker.io/dockercoins/rng:v0.1" in message, message
        assert "no resolve hosts" in message, message
        assert "lookup" not in message and "dial tcp" not in message, message
    finally:
        nodes_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
