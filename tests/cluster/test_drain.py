"""`kubectl drain` against the chart on the real API server (kwok nodes): which flags it needs, as
charts/dockercoins/README.md says, and that the PodDisruptionBudgets reach the server with
`unhealthyPodEvictionPolicy: AlwaysAllow`. kubectl decides what it refuses to drain from the pod
specs; the evictions go through the server's eviction API and the disruption controller."""
import pytest

from helpers.kube import CHART, component
from localapp import wait_until

NODE = "kwok-node-0"
# A hard spread, 2 workers per node. Without nodeTaintsPolicy Honor the cordoned node still counts
# as a domain, so no evicted worker fits elsewhere within maxSkew, and the drain waits on the
# worker PDB until it times out (seen here): the README says so.
SPREAD = ["--set", "worker.topologySpreadConstraints[0].maxSkew=1",
          "--set", "worker.topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
          "--set", "worker.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
          "--set", "worker.topologySpreadConstraints[0].nodeTaintsPolicy=Honor"]


@pytest.fixture
def release(cluster, namespace):
    """rng as a DaemonSet, 6 workers spread over the 3 nodes, 2 of hasher and webui: a PDB each."""
    cluster.helm("install", "dockercoins", CHART, "-n", namespace, "--wait", "--timeout", "3m",
                 "--set", "rng.kind=DaemonSet", "--set", "worker.replicaCount=6",
                 "--set", "hasher.replicaCount=2", "--set", "webui.replicaCount=2", *SPREAD)
    yield namespace
    cluster.kubectl("uncordon", NODE)


def on_node(cluster, namespace, name):
    return [p for p in cluster.running_ready_pods(namespace, component(name))
            if p["spec"]["nodeName"] == NODE]


def test_drain_needs_both_flags_and_the_budgets_let_it_through(cluster, release):
    pdbs = cluster.get("pdb", "-n", release)["items"]
    assert {p["metadata"]["name"] for p in pdbs} == {"hasher", "worker", "webui"}
    assert {p["spec"]["unhealthyPodEvictionPolicy"] for p in pdbs} == {"AlwaysAllow"}
    # The spread constraint put two workers on each node.
    workers = cluster.running_ready_pods(release, component("worker"))
    assert sorted(p["spec"]["nodeName"] for p in workers) == sorted(
        f"kwok-node-{i}" for i in range(3) for _ in range(2))

    # Each flag is needed: the rng DaemonSet's pod, then the /tmp emptyDir of every app pod.
    plain = cluster.run(["kubectl", "drain", NODE, "--timeout=60s"], check=False)
    assert plain.returncode != 0
    assert "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)" in plain.stderr
    no_emptydir = cluster.run(["kubectl", "drain", NODE, "--ignore-daemonsets", "--timeout=60s"],
                              check=False)
    assert no_emptydir.returncode != 0
    assert "cannot delete Pods with local storage (use --delete-emptydir-data to override)" in \
        no_emptydir.stderr

    cluster.kubectl("drain", NODE, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s")
    for name in ("worker", "hasher", "webui", "redis"):
        assert not on_node(cluster, release, name), f"a {name} pod is still on {NODE}"
    # The Deployments put their pods back on the other nodes; the rng DaemonSet's pod stays.
    wait_until(lambda: len(cluster.running_ready_pods(release, component("worker"))) == 6, 60,
               "6 workers Ready on the two other nodes")
    assert len(on_node(cluster, release, "rng")) == 1
