"""The course's resource-limits chapter on the real API server: a namespace with a LimitRange
(minimum CPU 100m per container) and a ResourceQuota on limits.cpu. With the chart's defaults the
admission checks refuse the pods (the ReplicaSets' FailedCreate events say why: the LimitRange's
minimum, then, for rng without a CPU limit, the quota); with extras/limitrange-quota-values.yaml
every pod is admitted, helm test's included, and the workshop's 10 workers fit."""
import yaml

from helpers.kube import CHART, DEPLOYMENTS
from localapp import wait_until

VALUES = CHART / "extras" / "limitrange-quota-values.yaml"
LIMITS = """
apiVersion: v1
kind: LimitRange
metadata:
  name: min-cpu
spec:
  limits:
    - type: Container
      min:
        cpu: 100m
---
apiVersion: v1
kind: ResourceQuota
metadata:
  name: cpu
spec:
  hard:
    limits.cpu: "8"
    requests.cpu: "4"
"""


def failed_creates(cluster, namespace):
    """The FailedCreate messages of the ReplicaSets that exist now (an uninstalled release's
    controllers may still add events while they go)."""
    current = {r["metadata"]["uid"] for r in cluster.get("replicasets", "-n", namespace)["items"]}
    events = cluster.get("events", "-n", namespace, "--field-selector", "reason=FailedCreate")["items"]
    return [e["message"] for e in events if e["involvedObject"].get("uid") in current]


def test_the_defaults_are_refused_and_the_values_file_is_admitted(cluster, namespace, tmp_path):
    cluster.apply(LIMITS, "-n", namespace)
    # The defaults: the install itself goes through, but no pod is admitted.
    cluster.helm("install", "dockercoins", CHART, "-n", namespace)
    refused = wait_until(lambda: len(failed_creates(cluster, namespace)) >= len(DEPLOYMENTS) or None,
                         60, "a FailedCreate event per ReplicaSet")
    assert refused
    messages = " ".join(failed_creates(cluster, namespace))
    assert "minimum cpu usage per Container is 100m, but request is 50m" in messages
    cluster.helm("uninstall", "dockercoins", "-n", namespace, "--wait")
    cluster.kubectl("delete", "events", "--all", "-n", namespace)

    # The values file without rng's CPU limit: the quota refuses rng alone.
    values = yaml.safe_load(VALUES.read_text())
    del values["rng"]["resources"]["limits"]["cpu"]
    without = tmp_path / "without-rng-cpu-limit.yaml"
    without.write_text(yaml.safe_dump(values))
    cluster.helm("install", "dockercoins", CHART, "-n", namespace, "-f", without)
    wait_until(lambda: failed_creates(cluster, namespace) or None, 60, "rng's FailedCreate")
    wait_until(lambda: all(cluster.get("deployment", name, "-n", namespace)["status"].get(
        "readyReplicas") == 1 for name in DEPLOYMENTS if name != "rng"), 60, "the others admitted")
    messages = failed_creates(cluster, namespace)
    assert all('pods "rng-' in m and "must specify limits.cpu" in m for m in messages), messages
    cluster.helm("uninstall", "dockercoins", "-n", namespace, "--wait")
    cluster.kubectl("delete", "events", "--all", "-n", namespace)

    cluster.helm("install", "dockercoins", CHART, "-n", namespace, "-f", VALUES,
                 "--wait", "--timeout", "3m")
    for name in DEPLOYMENTS:
        deployment = cluster.get("deployment", name, "-n", namespace)
        assert deployment["status"].get("readyReplicas") == 1, name
    assert not failed_creates(cluster, namespace)
    out = cluster.helm("test", "dockercoins", "-n", namespace, "--timeout", "2m")
    assert out.count("Phase:          Succeeded") == 3, out
    quota = cluster.get("resourcequota", "cpu", "-n", namespace)["status"]["used"]
    assert quota["limits.cpu"] == "2500m", quota  # what the values file's comment adds up
    # The workshop's 10 workers fit under the quota of 8 CPUs: 2.5 + 9 x 0.5 = 7.
    cluster.kubectl("scale", "deployment", "worker", "--replicas=10", "-n", namespace)
    wait_until(lambda: cluster.get("deployment", "worker", "-n", namespace)["status"].get(
        "readyReplicas") == 10, 60, "10 workers admitted")
    assert not failed_creates(cluster, namespace)
