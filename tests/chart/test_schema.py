"""values.schema.json: strict at every level, and real helm refuses bad values with a readable
message that names the offending key."""
import json

import pytest

from helpers.chart import CHART, RELEASE, helm

SCHEMA = json.loads((CHART / "values.schema.json").read_text())

# (--set arguments, text the error must contain)
REJECTED = [
    (["replicas=3"], "additional properties 'replicas' not allowed"),
    (["rng.replicas=3"], "at '/rng': additional properties 'replicas' not allowed"),
    (["rng.image.tga=1"], "at '/rng/image': additional properties 'tga' not allowed"),
    (["global.image.registy=x"], "at '/global/image': additional properties 'registy' not allowed"),
    (["webui.ingress.tls.secret=x"], "at '/webui/ingress/tls': additional properties 'secret' not allowed"),
    (["rng.autoscaling.behavior.scaleUp.pods=3"], "at '/rng/autoscaling/behavior/scaleUp'"),
    (["rng.kind=Deploy"], "at '/rng/kind': value must be one of 'Deployment', 'DaemonSet'"),
    (["webui.service.type=Ingress"], "at '/webui/service/type': value must be one of 'ClusterIP', 'NodePort', 'LoadBalancer'"),
    (["rng.autoscaling.metric=cpu"], "at '/rng/autoscaling/metric': value must be one of 'requestRate', 'latency'"),
    (["logLevel=verbose"], "at '/logLevel': value must be one of"),
    (["rng.concurrency=0"], "at '/rng/concurrency': minimum: got 0, want 1"),
    (["worker.replicaCount=-1"], "at '/worker/replicaCount': minimum: got -1, want 0"),
    (["rng.autoscaling.maxReplicas=1000"], "at '/rng/autoscaling/maxReplicas': maximum: got 1,000, want 100"),
    (["rng.autoscaling.targetLatencySeconds=0.05"], "at '/rng/autoscaling/targetLatencySeconds'"),
    (["webui.service.nodePort=80", "webui.service.type=NodePort"], "at '/webui/service/nodePort'"),
    (["rng.resources.limits.cpu=1"], "at '/rng/resources/limits': additional properties 'cpu' not allowed"),
    (["containerSecurityContext.allowPrivilegeEscalation=true"], "at '/containerSecurityContext/allowPrivilegeEscalation'"),
    (["podSecurityContext.runAsNonRoot=false"], "at '/podSecurityContext/runAsNonRoot'"),
    (["redis.containerSecurityContext.privileged=true"], "at '/redis/containerSecurityContext/privileged'"),
    (["worker.podSecurityContext.runAsUsr=5"], "at '/worker/podSecurityContext': additional properties 'runAsUsr' not allowed"),
    (["namePrefix=Blue_"], "at '/namePrefix'"),
    (["rng.image.digest=abc"], "at '/rng/image/digest'"),
    (["redis.image.tag=latest"], "at '/redis/image/tag'"),
    (["rng.concurrency=two"], "at '/rng/concurrency': got string, want integer"),
    # Kubernetes' unit, which redis-server refuses at start (a crash loop): redis says 160mb.
    (["redis.maxmemory=160Mi"], "at '/redis/maxmemory'"),
    (["redis.maxmemoryPolicy=allkeys-lru2"], "at '/redis/maxmemoryPolicy'"),
]


def template_with(sets):
    """`helm template` of the chart with each item of sets as a --set; not checked."""
    args = ["template", RELEASE, CHART]
    for item in sets:
        args += ["--set", item]
    return helm(*args, check=False)


@pytest.mark.parametrize("sets, message", REJECTED, ids=[" ".join(s) for s, _ in REJECTED])
def test_helm_rejects_bad_values(sets, message):
    result = template_with(sets)
    assert result.returncode != 0, f"helm accepted {sets}"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


# Value combinations the schema cannot express: the templates `fail` with a message.
FAILED = [
    (["rng.autoscaling.enabled=true", "rng.replicaCount=2"],
     "rng.replicaCount is set (2) while rng.autoscaling.enabled is true: the HPA owns rng's replica count"),
    (["rng.autoscaling.enabled=true", "rng.kind=DaemonSet"],
     "rng.autoscaling.enabled needs rng.kind=Deployment"),
    (["rng.kind=DaemonSet", "rng.replicaCount=2"], "rng.kind is DaemonSet"),
]


@pytest.mark.parametrize("sets, message", FAILED, ids=[" ".join(s) for s, _ in FAILED])
def test_helm_fails_on_contradictions(sets, message):
    result = template_with(sets)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_unsetting_replica_count_is_how_the_hpa_is_turned_on():
    helm("template", RELEASE, CHART, "--set", "rng.autoscaling.enabled=true",
         "--set", "rng.replicaCount=null")


def walk(schema, path="$"):
    """Every (path, object schema) in the schema, following definitions."""
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/definitions/")
        yield from walk(SCHEMA["definitions"][name], f"{path}->{name}")
        return
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "object" in types:
        yield path, schema
    for key, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{key}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}.*")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in schema.get(key, []):
            yield from walk(sub, path)


# Objects whose inside is a Kubernetes type, checked by the API server (and by the strict
# kubernetes-validate test of every render), not re-declared here.
KUBERNETES_PASSTHROUGH = {"nodeAffinity", "podAffinity", "podAntiAffinity", "valueFrom"}


def test_schema_is_strict_everywhere():
    seen = 0
    for path, schema in walk(SCHEMA):
        seen += 1
        leaf = path.rsplit(".", 1)[-1].split("->")[0]
        extra = schema.get("additionalProperties")
        if extra is False:
            continue
        if isinstance(extra, dict):  # a map of user keys (labels, annotations): typed values
            assert extra.get("type") == "string", path
            continue
        assert leaf in KUBERNETES_PASSTHROUGH, f"{path} accepts any key"
    assert seen > 50


def test_every_values_key_is_in_the_schema():
    """values.yaml and the schema list the same keys (the schema rejects unknown ones, so a key
    added to values.yaml alone would fail every install)."""
    import yaml
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def check(value, schema, path):
        while "$ref" in schema:
            schema = SCHEMA["definitions"][schema["$ref"].removeprefix("#/definitions/")]
        if isinstance(value, dict) and "properties" in schema:
            for key, sub in value.items():
                assert key in schema["properties"], f"{path}.{key} is not in the schema"
                check(sub, schema["properties"][key], f"{path}.{key}")

    check(values, SCHEMA, "$")
