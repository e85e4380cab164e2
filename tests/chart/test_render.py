"""Every scenario, and k8s/, validates strictly against Kubernetes 1.29-1.34 (kubernetes-validate's
Python API, which raises on unknown fields and unknown kinds: the one schema validator, as in
ci/lint.sh), and keeps the promises that hold across every object of every scenario: labels,
selectors, probes, resources, security settings, the service interfaces of docs/services.md, and
PDBs only where more than one replica runs. What one template does with its values is tested by
helm-unittest (charts/dockercoins/tests, run by test_unittest.py)."""
import re

import kubernetes_validate
import pytest
import yaml

from helpers.chart import (APP_COMPONENTS, CRD_KINDS, K8S_VERSIONS, NAMESPACE, ROOT, SCENARIOS,
                           component, env_of, pod_specs, render)

LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
          "app.kubernetes.io/component", "app.kubernetes.io/part-of",
          "app.kubernetes.io/managed-by", "helm.sh/chart")
SELECTOR_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/instance",
                 "app.kubernetes.io/component"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def all_renders():
    """Each scenario, plus the rng-hpa one with the prometheus-operator API present."""
    for scenario in SCENARIOS:
        yield scenario, render(scenario)
    yield "rng-hpa+monitoring", render("rng-hpa", api_versions=["monitoring.coreos.com/v1"])
    # KEDA and the Gateway API are refused without their CRDs, so no CI scenario holds them.
    yield "rng-keda+httproute", render(
        "rng-hpa", sets=["rng.autoscaling.provider=keda", "webui.httpRoute.enabled=true",
                         "webui.httpRoute.parentRefs[0].name=gw"],
        api_versions=["keda.sh/v1alpha1/ScaledObject", "gateway.networking.k8s.io/v1/HTTPRoute"])


RENDERS = dict(all_renders())


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(RENDERS))
def test_validates_strictly(scenario, version):
    docs = RENDERS[scenario]
    assert docs, "nothing rendered"
    checked = 0
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            assert doc["apiVersion"] == CRD_KINDS[doc["kind"]]
            continue
        where = f"{doc['kind']}/{doc['metadata']['name']} on {version}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {error.message} at {'.'.join(map(str, error.path))}")
        checked += 1
    assert checked >= 9


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_validate_strictly(version):
    """k8s/dockercoins.yaml, the chart rendered for plain `kubectl apply` (test_generated.py)."""
    docs = [doc for doc in yaml.safe_load_all((ROOT / "k8s" / "dockercoins.yaml").read_text()) if doc]
    assert len(docs) >= 9
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {error.message}")


# The three-node chapter's values: one rng per node, node-local calls, the workers spread, and a
# PDB on each component. trafficDistribution's PreferSameNode is Kubernetes 1.34's.
NODE_LOCAL = ["rng.kind=DaemonSet", "rng.service.trafficDistribution=PreferSameNode",
              "worker.replicaCount=15", "hasher.replicaCount=2", "webui.replicaCount=2",
              "worker.topologySpreadConstraints[0].maxSkew=1",
              "worker.topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
              "worker.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway"]


def test_node_local_values_validate_strictly_on_1_34():
    docs = render(sets=NODE_LOCAL)
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, "1.34", strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    rng = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "rng")
    assert rng["spec"]["trafficDistribution"] == "PreferSameNode"
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert {component(d) for d in pdbs} == {"hasher", "worker", "webui"}
    assert {d["spec"]["unhealthyPodEvictionPolicy"] for d in pdbs} == {"AlwaysAllow"}


def test_strict_validation_catches_a_typo():
    """The validator really is strict: an unknown field fails."""
    deployment = next(d for d in RENDERS["default"] if d["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.31", strict=True)


@pytest.mark.parametrize("scenario", sorted(RENDERS))
def test_every_object_has_the_labels(scenario):
    for doc in RENDERS[scenario]:
        labels = doc["metadata"].get("labels", {})
        missing = [key for key in LABELS if key not in labels]
        assert not missing, f"{doc['kind']}/{doc['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/name"] == "dockercoins"
        assert labels["app.kubernetes.io/part-of"] == "dockercoins"
        assert labels["app.kubernetes.io/instance"] == "dockercoins"


@pytest.mark.parametrize("scenario", sorted(RENDERS))
def test_namespaced_objects_name_their_namespace(scenario):
    for doc in RENDERS[scenario]:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


@pytest.mark.parametrize("scenario", sorted(RENDERS))
def test_selectors_use_name_instance_component_only(scenario):
    """Workload, Service and PDB selectors are exactly name+instance+component (never version
    or chart, which change between releases), and they select their own pods only."""
    docs = RENDERS[scenario]
    for doc in docs:
        kind = doc["kind"]
        if kind in ("Deployment", "DaemonSet", "PodDisruptionBudget"):
            selector = doc["spec"]["selector"]["matchLabels"]
        elif kind == "Service":
            selector = doc["spec"]["selector"]
        else:
            continue
        if kind == "Service" and component(doc) == "rng":
            # The one exception: the DaemonSet chapter's own rng pods carry `app: rng` alone
            # (rngServiceSelector in _helpers.tpl); the chart's rng pods carry it too.
            assert selector == {"app": doc["metadata"]["name"]}, selector
        else:
            assert set(selector) == SELECTOR_KEYS, f"{kind}/{doc['metadata']['name']}: {selector}"
            assert selector["app.kubernetes.io/component"] == component(doc)
        if kind in ("Deployment", "DaemonSet"):
            pod_labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= pod_labels.items()
        # Each selector matches the pods of exactly one component.
        matched = {component(d) for d, _ in pod_specs(docs)
                   if d["kind"] != "Pod"
                   and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()}
        assert matched == {component(doc)}, f"{kind}/{doc['metadata']['name']} matches {matched}"


@pytest.mark.parametrize("scenario", sorted(RENDERS))
def test_containers_are_hardened(scenario):
    for doc, spec in pod_specs(RENDERS[scenario]):
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        # Only webui's cluster view reads the API, with its own account (webui.clusterView).
        reads_api = doc["kind"] != "Pod" and component(doc) == "webui" and any(
            e["name"] == "CLUSTER_VIEW" and e.get("value") == "kubernetes"
            for e in spec["containers"][0]["env"])
        assert spec["automountServiceAccountToken"] is reads_api, name
        if reads_api:
            assert spec["serviceAccountName"].endswith("webui"), name
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod_sc["runAsUser"] == 10001 and pod_sc["runAsGroup"] == 10001, name
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["runAsUser"] == 10001 and sc["runAsGroup"] == 10001, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], name
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name
            image = container["image"]
            assert re.fullmatch(r"[a-z0-9.:/_-]+(:[A-Za-z0-9_][A-Za-z0-9_.-]*|@sha256:[0-9a-f]{64})",
                                image), f"{name}: unpinned image {image}"
            assert not image.endswith(":latest"), name


@pytest.mark.parametrize("scenario", sorted(RENDERS))
def test_cpu_limits(scenario):
    """No CPU limit on rng (throttling would distort the bottleneck); one on everything else.
    (checkov's CKV_K8S_11 is skipped for rng's sake; this test keeps the rest covered.)"""
    for doc, spec in pod_specs(RENDERS[scenario]):
        for container in spec["containers"]:
            limits = container["resources"]["limits"]
            if component(doc) == "rng":
                assert "cpu" not in limits, doc["metadata"]["name"]
            else:
                assert "cpu" in limits, f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("scenario", sorted(RENDERS))
def test_containers_have_probes(scenario):
    """Every long-running container has a liveness and a readiness probe: HTTP /healthz and
    /readyz on the named port http (8080) for the app, TCP and redis-cli for redis, and never a
    probe on rng's slow /<n>. Only the one-shot helm test pods have none."""
    for doc, spec in pod_specs(RENDERS[scenario]):
        if doc["kind"] == "Pod":
            assert component(doc) == "test"
            continue
        container = spec["containers"][0]
        live, ready = container["livenessProbe"], container["readinessProbe"]
        if component(doc) == "redis":
            assert "httpGet" not in live and "httpGet" not in ready
            assert live["tcpSocket"]["port"] == "redis"
            assert "redis-cli" in " ".join(ready["exec"]["command"])
        else:
            assert live["httpGet"] == {"path": "/healthz", "port": "http"}
            assert ready["httpGet"] == {"path": "/readyz", "port": "http"}
            assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]


def documented_env():
    """{variable: set of services} from the Environment table of docs/services.md."""
    text = (ROOT / "docs" / "services.md").read_text()
    table = text.split("## Environment", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for line in table.splitlines():
        match = re.match(r"\|\s*`([A-Z_]+)`\s*\|\s*([^|]+)\|", line)
        if match:
            users = {u.strip() for u in match.group(2).split(",")}
            documented[match.group(1)] = set(APP_COMPONENTS) if users == {"all"} else users
    assert "RNG_CONCURRENCY" in documented and "REDIS_PASSWORD" in documented
    return documented


@pytest.mark.parametrize("scenario", sorted(RENDERS))
def test_app_env_follows_the_service_interfaces(scenario):
    """Every variable the chart sets on an app container is one docs/services.md lists for
    that service, and the ports are docs/services.md's 8080."""
    documented = documented_env()
    for doc, spec in pod_specs(RENDERS[scenario]):
        name = component(doc)
        if name not in APP_COMPONENTS:
            continue
        env = env_of(spec["containers"][0])
        for variable in env:
            assert name in documented.get(variable, set()), f"{name} gets {variable}, not in docs/services.md"
        port_variable = "METRICS_PORT" if name == "worker" else "PORT"
        assert env[port_variable] == "8080"


@pytest.mark.parametrize("scenario", sorted(RENDERS))
def test_grace_period_covers_the_shutdown_delay(scenario):
    for doc, spec in pod_specs(RENDERS[scenario]):
        if component(doc) in ("rng", "hasher", "webui"):
            delay = int(env_of(spec["containers"][0])["SHUTDOWN_DELAY_SECONDS"])
            assert spec["terminationGracePeriodSeconds"] == delay + 25


def test_pdbs_only_with_more_than_one_replica():
    assert not [d for d in RENDERS["default"] if d["kind"] == "PodDisruptionBudget"]
    for scenario, docs in RENDERS.items():
        for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
            assert "minAvailable" not in pdb["spec"]
            name = pdb["metadata"]["name"]
            workload = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
            replicas = workload["spec"].get("replicas")
            if replicas is None:  # the HPA (or KEDA's, from the ScaledObject) owns it: its minimum counts
                hpa = next(d for d in docs if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject"))
                replicas = hpa["spec"].get("minReplicas", hpa["spec"].get("minReplicaCount"))
            assert replicas > 1, f"{scenario}: PDB {name} for {replicas} replica(s)"


@pytest.mark.parametrize("scenario", sorted(RENDERS))
def test_pods_carry_the_workshops_app_label(scenario):
    """`kubectl get pods -l app=rng` works as the workshop types it; the label stays out of
    every workload selector (checked above), so upgrades from releases without it keep working."""
    workloads = [d for d, _ in pod_specs(RENDERS[scenario]) if d["kind"] != "Pod"]
    assert {component(d) for d in workloads} == {*APP_COMPONENTS, "redis"}
    for doc in workloads:
        # The workload's name: `rng` with the plain names, `mini-rng` with namePrefix=mini.
        assert doc["spec"]["template"]["metadata"]["labels"]["app"] == doc["metadata"]["name"]
