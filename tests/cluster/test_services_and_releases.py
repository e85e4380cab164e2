"""The chart's Services and names, as the course's chapters meet them, on the real API server (kwok
nodes, whose pods get addresses that exist nowhere, so no test here sends traffic to a pod):
the DaemonSet chapter's own rng pods join the rng Service, the API server's service proxy finds
webui's port without one in the path, and a second release in the namespace is refused at once
unless it has its own namePrefix."""
import pytest

from helpers.kube import CHART, NODES, component
from localapp import wait_until

RELEASE = "dockercoins"


def install(cluster, namespace, *args, release=RELEASE, check=True):
    return cluster.run(["helm", "install", release, CHART, "-n", namespace, "--wait",
                        "--timeout", "3m", *args], check=check)


def endpoint_addresses(cluster, namespace, service):
    """(pod name, port) of every ready address of the Service, from its EndpointSlices."""
    slices = cluster.get("endpointslices", "-n", namespace,
                         "-l", f"kubernetes.io/service-name={service}")["items"]
    return sorted((e["targetRef"]["name"], p["port"]) for s in slices for e in s.get("endpoints", [])
                  if e["conditions"].get("ready") for p in s.get("ports") or [])


# The course's DaemonSet chapter: `kubectl create deployment rng --image=... -o yaml`, kind changed
# to DaemonSet, replicas and strategy removed. Its pods carry only `app: rng` and no named port.
CHAPTER_DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: rng
  labels: {{app: rng}}
spec:
  selector:
    matchLabels: {{app: rng}}
  template:
    metadata:
      labels: {{app: rng}}
    spec:
      containers:
        - name: rng
          image: {image}
"""


def test_the_daemonset_chapters_own_rng_joins_the_service(cluster, namespace):
    install(cluster, namespace)
    before = endpoint_addresses(cluster, namespace, "rng")
    assert [port for _, port in before] == [8080] and before[0][0].startswith("rng-")
    image = cluster.get("deployment", "rng", "-n", namespace)["spec"]["template"]["spec"][
        "containers"][0]["image"]
    cluster.apply(CHAPTER_DAEMONSET.format(image=image), "-n", namespace)
    wait_until(lambda: len(endpoint_addresses(cluster, namespace, "rng")) == 1 + NODES, 60,
               f"the chart's rng pod and {NODES} DaemonSet pods in the rng Service")
    joined = endpoint_addresses(cluster, namespace, "rng")
    assert {port for _, port in joined} == {8080}
    owners = {p["metadata"]["name"]: p["metadata"]["ownerReferences"][0]["kind"]
              for p in cluster.pods(namespace, "app=rng")}
    assert sorted(owners[name] for name, _ in joined) == ["DaemonSet"] * NODES + ["ReplicaSet"]
    # Nothing else joined: the selector is app=rng, which only rng pods carry.
    assert len(cluster.pods(namespace, "app=rng")) == 1 + NODES


def test_the_service_proxy_path_without_a_port_finds_webui(cluster, namespace):
    """The API server's service proxy, given no port (`services/webui/proxy/`), looks for the
    port named "": the Service's only port is unnamed, so its endpoints carry that name. The same
    Service with the port named `http` (the chart before) gets the 503 the course's users saw.
    The request that would reach the pod is left to tests/node: a kwok pod's address exists
    nowhere."""
    install(cluster, namespace)
    service = cluster.get("service", "webui", "-n", namespace)
    assert [p.get("name", "") for p in service["spec"]["ports"]] == [""]
    wait_until(lambda: endpoint_addresses(cluster, namespace, "webui"), 60, "webui's endpoint")
    endpoints = cluster.get("endpoints", "webui", "-n", namespace)
    assert [p.get("name", "") for s in endpoints["subsets"] for p in s["ports"]] == [""]

    named = {**service["spec"]["ports"][0], "name": "http"}
    cluster.kubectl("patch", "service", "webui", "-n", namespace, "--type=json", "-p",
                    f'[{{"op": "replace", "path": "/spec/ports/0", "value": {named!r}}}]'.replace("'", '"'))
    wait_until(lambda: [p.get("name") for s in cluster.get("endpoints", "webui", "-n", namespace)
                        ["subsets"] for p in s["ports"]] == ["http"], 60, "the named port")
    answer = cluster.run(["kubectl", "get", "--raw",
                          f"/api/v1/namespaces/{namespace}/services/webui/proxy/"], check=False)
    assert answer.returncode != 0
    assert 'no endpoints available for service \\"webui\\"' in answer.stderr or \
        'no endpoints available for service "webui"' in answer.stderr, answer.stderr


def test_a_second_release_in_the_namespace_is_refused_at_once(cluster, namespace):
    install(cluster, namespace)
    second = install(cluster, namespace, release="second", check=False)
    assert second.returncode != 0
    assert (f"namespace {namespace} already has a Service named rng (from release {RELEASE}): "
            "another DockerCoins release with the same namePrefix") in second.stderr, second.stderr
    assert "--set namePrefix=blue" in second.stderr
    # Refused before anything was sent: no object of the second release, no release record.
    assert not cluster.get("all", "-n", namespace, "-l", "app.kubernetes.io/instance=second")["items"]
    assert "second" not in cluster.helm("list", "-n", namespace, "-a", "-q").split()

    install(cluster, namespace, "--set", "namePrefix=blue", release="second")
    policies = {p["metadata"]["name"] for p in cluster.get("networkpolicies", "-n", namespace)["items"]}
    assert {"dockercoins-default-deny", "blue-dockercoins-default-deny", "rng", "blue-rng"} <= policies
    # Each rng Service keeps to its own release's pods.
    wait_until(lambda: len(cluster.running_ready_pods(namespace, component("rng"))) == 2, 60,
               "both releases' rng pods")
    assert [n for n, _ in endpoint_addresses(cluster, namespace, "blue-rng")][0].startswith("blue-rng-")
    assert len(endpoint_addresses(cluster, namespace, "rng")) == 1
    # An upgrade of the first release is still its own, and passes the check.
    cluster.helm("upgrade", RELEASE, CHART, "-n", namespace, "--wait", "--timeout", "3m")


@pytest.mark.parametrize("prefix", ["", "blue"])
def test_the_check_passes_a_reinstall_after_uninstall(cluster, namespace, prefix):
    install(cluster, namespace, "--set", f"namePrefix={prefix}")
    cluster.helm("uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "2m")
    install(cluster, namespace, "--set", f"namePrefix={prefix}")
