"""A test suite run on two clusters: tests/workshop/test_workshop_kubectl.py (kwok's, or any given
by WORKSHOP_KUBECONFIG) and tests/node/test_workshop_on_node.py (the real node) import its tests,
each folder with its own `cluster` fixture.

The scaling chapter's kubectl side, typed as the workshop types it, on the chart installed as
the README says: the namespace made the default, then `kubectl get pods -l app=rng`, `kubectl
scale`, `kubectl rollout status`, `kubectl describe rs -l app=worker`. On a cluster whose
nodes run containers (WORKSHOP_KUBECONFIG) also `kubectl logs -l app=worker` and httping on
the ClusterIPs from a pod; kwok's fake nodes run none, so there those steps are skipped."""
import shutil
import uuid

import pytest

from helpers.kube import CHART
from helpers.workshop import one_off_pod, runs_containers, shell
from localapp import wait_until


@pytest.fixture
def workshop(cluster, tmp_path):
    """The release installed as the README's steps 3 and 4 do, in a namespace of its own."""
    namespace = f"workshop-{uuid.uuid4().hex[:6]}"
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copy(cluster.kubeconfig, kubeconfig)
    # A cluster that pulls images for real (tests/node) says where they are.
    values = f"-f {cluster.values_file}" if hasattr(cluster, "values_file") else ""
    shell(cluster, f"""
helm upgrade --install dockercoins {CHART} --namespace {namespace} --create-namespace \\
  {values} --wait --timeout 5m
kubectl config set-context --current --namespace={namespace}
""", kubeconfig)
    yield lambda script: shell(cluster, script, kubeconfig)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def names(output):
    return [line for line in output.split() if line]


def test_select_scale_and_roll_out_as_typed(cluster, workshop):
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


def test_logs_and_httping_from_inside_the_cluster(cluster, workshop):
    if not runs_containers(cluster):
        pytest.skip("kwok's fake nodes run no container: no logs, no ClusterIP traffic")
    assert "worker" in workshop("kubectl logs -l app=worker --tail 5")
    workshop("kubectl scale deployment worker --replicas=10")
    workshop("kubectl rollout status deployment worker --timeout=3m")
    # The workshop's own commands, from a pod (the NetworkPolicies admit in-cluster clients).
    out = workshop("""
RNG=$(kubectl get svc rng -o go-template={{.spec.clusterIP}})
HASHER=$(kubectl get svc hasher -o go-template={{.spec.clusterIP}})
""" + one_off_pod("httping -c 3 $RNG; httping -c 3 $HASHER"))
    assert out.count("time=") == 6, out
