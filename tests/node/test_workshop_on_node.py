"""The scaling chapter's kubectl side on the real node, typed as the workshop types it, on the chart
installed as the README says: the namespace made the default, then `kubectl get pods -l app=rng`,
`kubectl scale`, `kubectl rollout status`, `kubectl describe rs -l app=worker`, `kubectl logs -l
app=worker`, and httping, run from a pod with `kubectl run` as the workshop does, on rng's and
hasher's ClusterIPs: rng waits behind its one-at-a-time cap, hasher answers at once.

Proven here only, where pods run: kwok's fake nodes run no container, so they could show the
object counts but neither the logs nor the ClusterIP traffic."""
import shutil
import statistics
import uuid

import pytest

from helpers.httping import PING_LINE, culprit
from helpers.kube import CHART
from helpers.workshop import one_off_pod, shell
from localapp import wait_until


@pytest.fixture
def workshop(node_cluster, tmp_path, monkeypatch):
    """The release installed as the README's steps 3 and 4 do, in a namespace of its own, with
    httping's image from the node's registry; runs a script as typed."""
    # The commands run with the cluster's environment (helpers.workshop.shell).
    monkeypatch.setitem(node_cluster.env, "HTTPING_IMAGE",
                        f"{node_cluster.registry}/dockercoins/httping:bookworm")
    namespace = f"workshop-{uuid.uuid4().hex[:6]}"
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copy(node_cluster.kubeconfig, kubeconfig)
    shell(node_cluster, f"""
helm upgrade --install dockercoins {CHART} --namespace {namespace} --create-namespace \\
  -f {node_cluster.values_file} --wait --timeout 5m
kubectl config set-context --current --namespace={namespace}
""", kubeconfig)
    yield lambda script: shell(node_cluster, script, kubeconfig)
    node_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def names(output):
    return [line for line in output.split() if line]


def test_select_scale_and_roll_out_as_typed(workshop):
    assert len(names(workshop("kubectl get pods -l app=rng -o name"))) == 1
    for component in ("hasher", "worker", "webui", "redis"):
        assert len(names(workshop(f"kubectl get pods -l app={component} -o name"))) == 1

    workshop("kubectl scale deployment worker --replicas=2")
    workshop("kubectl rollout status deployment worker --timeout=2m")
    assert len(names(workshop("kubectl get pods -l app=worker -o name"))) == 2

    workshop("kubectl scale deployment worker --replicas=10")
    workshop("kubectl rollout status deployment worker --timeout=2m")
    wait_until(lambda: len(names(workshop("kubectl get pods -l app=worker -o name"))) == 10,
               60, "10 worker pods")
    described = workshop("kubectl describe rs -l app=worker")
    assert "10 current / 10 desired" in described, described

    workshop("kubectl scale deployment rng --replicas=3")
    workshop("kubectl rollout status deployment rng --timeout=2m")
    assert len(names(workshop("kubectl get pods -l app=rng -o name"))) == 3


def test_logs_then_httping_from_a_pod_finds_rng(workshop):
    """The workshop's culprit hunt on real pods: the workers' log lines, then, with 10 workers on
    one rng, httping on the two ClusterIPs, from a pod, singles out rng from its figures alone."""
    assert "worker" in workshop("kubectl logs -l app=worker --tail 5")
    workshop("kubectl scale deployment worker --replicas=10")
    workshop("kubectl rollout status deployment worker --timeout=3m")
    # The workshop's own commands, from a pod (the NetworkPolicies admit in-cluster clients).
    out = workshop("""
RNG=$(kubectl get svc rng -o go-template={{.spec.clusterIP}})
HASHER=$(kubectl get svc hasher -o go-template={{.spec.clusterIP}})
""" + one_off_pod("echo rng; httping -c 3 $RNG; echo hasher; httping -c 3 $HASHER"))
    rng_part, hasher_part = out.split("\nhasher\n")
    pings = {"rng": PING_LINE.findall(rng_part), "hasher": PING_LINE.findall(hasher_part)}
    assert [len(p) for p in pings.values()] == [3, 3], out
    latencies = {name: statistics.median(float(ms) / 1000 for ms in found)
                 for name, found in pings.items()}
    assert culprit(latencies) == "rng", (latencies, out)
