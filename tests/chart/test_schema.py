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
    (["rng.resources.limits.gpu=1"], "at '/rng/resources/limits': additional properties 'gpu' not allowed"),
    (["containerSecurityContext.allowPrivilegeEscalation=true"], "at '/containerSecurityContext/allowPrivilegeEscalation'"),
    (["podSecurityContext.runAsNonRoot=false"], "at '/podSecurityContext/runAsNonRoot'"),
    (["redis.containerSecurityContext.privileged=true"], "at '/redis/containerSecurityContext/privileged'"),
    (["worker.podSecurityContext.runAsUsr=5"], "at '/worker/podSecurityContext': additional properties 'runAsUsr' not allowed"),
    (["namePrefix=Blue_"], "at '/namePrefix'"),
    (["rng.image.digest=abc"], "at '/rng/image/digest'"),
    (["redis.image.tag=latest"], "at '/redis/image/tag'"),
    (["rng.concurrency=two"], "at '/rng/concurrency': got string, want integer"),
    (["rng.service.trafficDistribution=PreferLocal"], "at '/rng/service/trafficDistribution': value must be one of"),
    (["worker.topologySpreadConstraints[0].maxSkew=1"],
     "at '/worker/topologySpreadConstraints/0': missing properties 'topologyKey', 'whenUnsatisfiable'"),
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


# A blank key in a values file (`replicaCount:` with nothing after it) is null, and Helm drops a
# null key from the merged values before the schema sees them: so "type": "integer" never
# refuses it, and the template rendered `replicas: null` and no PDB. The schema requires every
# key values.yaml gives a value, so the blank one is named. (values file text, message)
BLANK_KEYS = [
    ("worker:\n  replicaCount:\n", "at '/worker': missing property 'replicaCount'"),
    ("hasher:\n  pdb:\n    maxUnavailable:\n", "at '/hasher/pdb': missing property 'maxUnavailable'"),
    ("rng:\n  image:\n    repository:\n", "at '/rng/image': missing property 'repository'"),
    ("webui:\n  service:\n    type:\n", "at '/webui/service': missing property 'type'"),
    ("redis:\n  resources:\n    limits:\n      memory:\n",
     "at '/redis/resources/limits': missing property 'memory'"),
    ("logLevel:\n", "missing property 'logLevel'"),
    ("podSecurityContext:\n  runAsUser:\n", "at '/podSecurityContext': missing property 'runAsUser'"),
]


@pytest.mark.parametrize("text, message", BLANK_KEYS, ids=[m.split("'")[-2] for _, m in BLANK_KEYS])
def test_a_blank_key_is_refused_by_lint_and_install(tmp_path, text, message):
    values = tmp_path / "blank.yaml"
    values.write_text(text)
    lint = helm("lint", "--strict", CHART, "-f", values, check=False)
    assert lint.returncode != 0 and message in lint.stdout, lint.stdout
    # helm install validates the same merged values before it renders (template stands for it).
    rendered = helm("template", RELEASE, CHART, "-f", values, check=False)
    assert rendered.returncode != 0
    assert "values don't meet the specifications of the schema" in rendered.stderr
    assert message in rendered.stderr, rendered.stderr


def test_every_key_with_a_default_is_required():
    """Each key values.yaml sets to a non-null value is in its object's `required` list, so a
    blank one fails (see BLANK_KEYS). The [nullable] keys (default null) stay optional."""
    import yaml
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = []

    def check(value, schema, path):
        schema = resolved(schema)
        if not (isinstance(value, dict) and "properties" in schema):
            return
        for key, sub in value.items():
            if sub is None:
                assert key not in schema.get("required", []), f"{path}.{key} is nullable"
            elif key not in schema.get("required", []):
                missing.append(f"{path}.{key}")
            check(sub, schema["properties"][key], f"{path}.{key}")

    check(values, SCHEMA, "$")
    assert not missing, f"add these to their object's \"required\" in values.schema.json: {missing}"


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


def resolved(schema):
    """An object schema with its $ref followed and its allOf parts merged (properties, required)."""
    while "$ref" in schema:
        schema = SCHEMA["definitions"][schema["$ref"].removeprefix("#/definitions/")]
    if "allOf" not in schema:
        return schema
    merged = {"properties": {}, "required": []}
    for part in map(resolved, schema["allOf"]):
        merged["properties"].update(part.get("properties", {}))
        merged["required"] += part.get("required", [])
    return merged


def test_every_values_key_is_in_the_schema():
    """values.yaml and the schema list the same keys (the schema rejects unknown ones, so a key
    added to values.yaml alone would fail every install)."""
    import yaml
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def check(value, schema, path):
        schema = resolved(schema)
        if isinstance(value, dict) and "properties" in schema:
            for key, sub in value.items():
                assert key in schema["properties"], f"{path}.{key} is not in the schema"
                check(sub, schema["properties"][key], f"{path}.{key}")

    check(values, SCHEMA, "$")
