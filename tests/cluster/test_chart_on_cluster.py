"""The chart on a real API server (ci/cluster.sh): install, scale, upgrade, test, roll back and
uninstall with the real helm and kubectl. kwok plays the kubelet, so pods become Running/Ready
without running anything: these tests are about what the server accepts and what its
controllers do (defaulting, admission, immutable fields, Deployment -> ReplicaSet -> Pod, the
DaemonSet and HPA controllers, hooks). The app's behaviour is tested with processes and
containers elsewhere."""
import subprocess
import time

import pytest
import yaml

from helpers import figures, kube
from helpers.kube import CHART, DEPLOYMENTS, NODES, SERVICES, component, make_volume
from localapp import wait_until

SCENARIOS = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))
RELEASE = "dockercoins"


def install(cluster, namespace, *args, chart=CHART, timeout="3m"):
    started = time.monotonic()
    out = cluster.helm("install", RELEASE, chart, "-n", namespace, "--wait", "--timeout", timeout,
                       *args)
    figures.append("cluster", "helm_install_wait_seconds", round(time.monotonic() - started, 1))
    return out


def upgrade(cluster, namespace, *args, chart=CHART, check=True):
    return cluster.run(["helm", "upgrade", RELEASE, chart, "-n", namespace, "--wait",
                        "--timeout", "3m", *args], check=check)


def prepare(cluster, namespace, scenario):
    """What a scenario's values file says must exist before the install."""
    values = yaml.safe_load((CHART / "ci" / scenario).read_text()) or {}
    redis = values.get("redis", {})
    secret = redis.get("auth", {}).get("existingSecret")
    if secret:
        cluster.kubectl("create", "secret", "generic", secret, "-n", namespace,
                        "--from-literal=redis-password=not-a-real-password")
    if redis.get("persistence", {}).get("enabled"):
        make_volume(cluster, redis["persistence"].get("size", "10Gi"))
    return values


def manifest_kinds(cluster, namespace):
    """(kind, name) of every object of the release, from the manifest helm stored on the server."""
    docs = yaml.safe_load_all(cluster.helm("get", "manifest", RELEASE, "-n", namespace))
    return {(d["kind"], d["metadata"]["name"]) for d in docs if d}


def assert_rolled_out(cluster, namespace):
    """Every Deployment of the release has all its replicas updated and ready, and the old
    ReplicaSet's pods are gone (`helm upgrade --wait` returns before they finish terminating)."""
    for d in cluster.get("deployments", "-n", namespace)["items"]:
        cluster.kubectl("rollout", "status", f"deployment/{d['metadata']['name']}", "-n", namespace,
                        "--timeout=60s")
    for d in cluster.get("deployments", "-n", namespace)["items"]:
        spec, status = d["spec"], d["status"]
        name = d["metadata"]["name"]
        assert status.get("readyReplicas") == spec["replicas"], (name, status)
        assert status.get("updatedReplicas") == spec["replicas"], (name, status)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_install_every_ci_scenario(cluster, namespace, scenario):
    values = prepare(cluster, namespace, scenario)
    install(cluster, namespace, "-f", CHART / "ci" / scenario)
    assert_rolled_out(cluster, namespace)
    # Every object helm sent is on the server, as the kind the chart wrote.
    for kind, name in manifest_kinds(cluster, namespace):
        cluster.kubectl("get", kind, name, "-n", namespace)
    prefix = f"{values['namePrefix']}-" if values.get("namePrefix") else ""
    services = {s["metadata"]["name"] for s in cluster.get("services", "-n", namespace)["items"]}
    assert services == {prefix + s for s in SERVICES}
    deployments = {d["metadata"]["name"] for d in cluster.get("deploy", "-n", namespace)["items"]}
    if values.get("rng", {}).get("kind") == "DaemonSet":
        assert deployments == {prefix + d for d in DEPLOYMENTS if d != "rng"}
        ds = cluster.get("daemonset", prefix + "rng", "-n", namespace)
        assert ds["status"]["numberReady"] == NODES
    else:
        assert deployments == {prefix + d for d in DEPLOYMENTS}
    if values.get("redis", {}).get("persistence", {}).get("enabled"):
        claims = cluster.get("pvc", "-n", namespace)["items"]
        assert [c["status"]["phase"] for c in claims] == ["Bound"]
        assert claims[0]["spec"]["storageClassName"] == "local"  # the default class, by admission


def test_kubectl_scale_worker_to_10(cluster, namespace):
    install(cluster, namespace)
    cluster.kubectl("scale", "deployment", "worker", "--replicas=10", "-n", namespace)
    pods = wait_until(lambda: len(cluster.running_ready_pods(namespace, component("worker"))) == 10,
                      60, "10 worker pods Running and Ready")
    assert pods
    # The chain behind `kubectl scale`: one ReplicaSet owns all ten, spread over the three nodes.
    workers = cluster.running_ready_pods(namespace, component("worker"))
    owners = {p["metadata"]["ownerReferences"][0]["name"] for p in workers}
    assert len(owners) == 1 and owners.pop().startswith("worker-")
    # The scheduler spreads them (its default topology spread is a preference, not a rule).
    assert len({p["spec"]["nodeName"] for p in workers}) > 1
    # Only the worker moved: the selectors do not overlap.
    for name in ("rng", "hasher", "webui", "redis"):
        assert len(cluster.pods(namespace, component(name))) == 1, name


def test_upgrade_rng_to_daemonset(cluster, namespace):
    install(cluster, namespace)
    upgrade(cluster, namespace, "--set", "rng.kind=DaemonSet")
    wait_until(lambda: len(cluster.running_ready_pods(namespace, component("rng"))) == NODES,
               60, f"{NODES} rng pods")
    rng = cluster.running_ready_pods(namespace, component("rng"))
    assert sorted(p["spec"]["nodeName"] for p in rng) == [f"kwok-node-{i}" for i in range(NODES)]
    assert {p["metadata"]["ownerReferences"][0]["kind"] for p in rng} == {"DaemonSet"}
    ds = cluster.get("daemonset", "rng", "-n", namespace)
    assert ds["status"]["numberReady"] == NODES
    gone = cluster.run(["kubectl", "get", "deployment", "rng", "-n", namespace], check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def previous_chart_version():
    """(commit, version) of the newest commit whose chart version differs from the current one."""
    current = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    try:
        commits = subprocess.run(
            ["git", "log", "--format=%H", "--", "charts/dockercoins/Chart.yaml"], cwd=kube.ROOT,
            capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None, current
    for commit in commits:
        shown = subprocess.run(["git", "show", f"{commit}:charts/dockercoins/Chart.yaml"],
                               cwd=kube.ROOT, capture_output=True, text=True)
        if shown.returncode == 0:
            version = yaml.safe_load(shown.stdout)["version"]
            if version != current:
                return commit, version
    return None, current


def test_upgrade_from_previous_chart_version(cluster, namespace, tmp_path):
    commit, version = previous_chart_version()
    if commit is None:
        pytest.skip(f"git holds no chart version before {version}: nothing to upgrade from yet")
    archive = subprocess.run(["git", "archive", commit, "charts/dockercoins"], cwd=kube.ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp_path], input=archive, check=True)
    install(cluster, namespace, chart=tmp_path / "charts" / "dockercoins")
    upgrade(cluster, namespace)
    assert_rolled_out(cluster, namespace)
    history = cluster.helm("history", RELEASE, "-n", namespace, "-o", "yaml")
    assert [h["status"] for h in yaml.safe_load(history)] == ["superseded", "deployed"]


def test_hpa_networkpolicy_pdb_servicemonitor_accepted(cluster, namespace):
    install(cluster, namespace, "-f", CHART / "ci" / "rng-hpa-values.yaml")
    kinds = {kind for kind, _ in manifest_kinds(cluster, namespace)}
    assert {"HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget",
            "ServiceMonitor", "PodMonitor"} <= kinds
    hpa = cluster.get("hpa", "rng", "-n", namespace)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert len(cluster.get("networkpolicies", "-n", namespace)["items"]) >= 5
    assert cluster.get("servicemonitors", "-n", namespace)["items"]
    assert cluster.get("podmonitors", "-n", namespace)["items"]
    # The PDBs are live: the disruption controller counts the pods they cover.
    pdbs = {p["metadata"]["name"]: p for p in cluster.get("pdb", "-n", namespace)["items"]}
    assert "worker" in pdbs
    wait_until(lambda: cluster.get("pdb", "worker", "-n", namespace)["status"].get(
        "currentHealthy") == 10, 60, "the worker PDB to count 10 healthy pods")
    # The HPA controller acts on it: the Deployment has no replicas of its own, and the HPA
    # raises it to minReplicas (2) even though no metrics API is served here.
    wait_until(lambda: cluster.get("deployment", "rng", "-n", namespace)["spec"]["replicas"] == 2,
               60, "the HPA to scale rng to its minimum of 2")


def test_helm_test_creates_its_pods(cluster, namespace):
    install(cluster, namespace)
    out = cluster.helm("test", RELEASE, "-n", namespace, "--timeout", "2m")
    # kwok marks hook pods Succeeded (ci/cluster/kwok-stages.yaml): this proves the server
    # created each test pod from the hook and helm saw it finish, not what the pod checks.
    for name in ("rng", "hasher", "webui"):
        assert f"TEST SUITE:     dockercoins-test-{name}" in out, out
    assert out.count("Phase:          Succeeded") == 3, out


def test_rollback_restores_the_previous_revision(cluster, namespace):
    install(cluster, namespace)
    upgrade(cluster, namespace, "--set", "worker.replicaCount=3", "--set", "webui.replicaCount=2")
    assert cluster.get("deployment", "worker", "-n", namespace)["spec"]["replicas"] == 3
    assert cluster.get("pdb", "webui", "-n", namespace)  # only rendered with 2 replicas
    cluster.helm("rollback", RELEASE, "1", "-n", namespace, "--wait", "--timeout", "2m")
    assert cluster.get("deployment", "worker", "-n", namespace)["spec"]["replicas"] == 1
    assert cluster.get("deployment", "webui", "-n", namespace)["spec"]["replicas"] == 1
    gone = cluster.run(["kubectl", "get", "pdb", "webui", "-n", namespace], check=False)
    assert gone.returncode != 0
    history = yaml.safe_load(cluster.helm("history", RELEASE, "-n", namespace, "-o", "yaml"))
    assert history[-1]["revision"] == 3 and history[-1]["description"] == "Rollback to 1"
    assert_rolled_out(cluster, namespace)


# What a namespace holds before anything is installed in it.
NAMESPACE_DEFAULTS = {"serviceaccount/default", "configmap/kube-root-ca.crt"}


def namespace_contents(cluster, namespace):
    """Every object in the namespace, of every listable namespaced kind but events."""
    kinds = cluster.kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name").split()
    kinds = [k for k in kinds if k not in ("events", "events.events.k8s.io")]
    return set(cluster.kubectl("get", ",".join(kinds), "-n", namespace, "-o", "name").split())


def test_uninstall_leaves_nothing_behind(cluster, namespace):
    before = namespace_contents(cluster, namespace)
    assert before == NAMESPACE_DEFAULTS, before
    install(cluster, namespace, "--set", "worker.replicaCount=2")
    cluster.helm("test", RELEASE, "-n", namespace, "--timeout", "2m")
    assert len(namespace_contents(cluster, namespace)) > 20
    cluster.helm("uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "2m")
    left = wait_until(lambda: namespace_contents(cluster, namespace) == NAMESPACE_DEFAULTS or None,
                      60, "the namespace to hold only its defaults", interval=1)
    assert left
