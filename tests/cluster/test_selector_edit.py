"""The DaemonSet chapter's selector edit (`active: "yes"` added to the rng Service's selector, as
`kubectl edit service rng` does), on the real API server (kwok nodes): webui's cluster view
names the Service with no ready endpoint; the edit outlives `helm upgrade --reuse-values`
(Helm 3's three-way merge patches only what the chart changed); and the two undos that
docs/workshop.md gives both work: a JSON patch that removes the key, and
`helm upgrade --force`, which replaces the Service with the chart's manifest."""
import json

import pytest
import requests

from helpers.kube import CHART
from localapp import gunicorn, wait_until

EDIT = json.dumps({"spec": {"selector": {"active": "yes"}}})
UNDO = json.dumps([{"op": "remove", "path": "/spec/selector/active"}])


@pytest.fixture
def release(cluster, namespace, redis_server):
    cluster.helm("install", "dockercoins", CHART, "-n", namespace, "--wait", "--timeout", "3m")
    webui = gunicorn("webui", env={
        "REDIS_URL": redis_server.url, "CLUSTER_VIEW": "kubernetes", "POD_NAMESPACE": namespace,
        "RELEASE_NAME": "dockercoins", "KUBECONFIG": str(cluster.kubeconfig)})
    yield namespace, webui
    webui.stop()


def services(webui):
    """{component: (Service name, ready endpoints)} from webui's /json."""
    view = requests.get(webui.url + "/json", timeout=5).json()["cluster"]
    return {c: (s["name"], s["ready"]) for c, s in view.get("services", {}).items()}


def selector(cluster, namespace):
    return json.loads(cluster.kubectl("get", "service", "rng", "-n", namespace,
                                      "-o", "jsonpath={.spec.selector}"))


def test_webui_names_the_service_and_both_undos_work(cluster, release):
    namespace, webui = release
    helm_upgrade = ("upgrade", "dockercoins", CHART, "-n", namespace, "--reuse-values",
                    "--wait", "--timeout", "3m")
    wait_until(lambda: services(webui) == {"rng": ("rng", 1), "hasher": ("hasher", 1)}, 30,
               "rng and hasher with one ready endpoint each")

    cluster.kubectl("patch", "service", "rng", "-n", namespace, "-p", EDIT)
    wait_until(lambda: services(webui)["rng"] == ("rng", 0), 15, "rng with no ready endpoint")
    assert services(webui)["hasher"] == ("hasher", 1)
    cluster.helm(*helm_upgrade)
    assert selector(cluster, namespace).get("active") == "yes"  # the edit outlived the upgrade
    assert services(webui)["rng"] == ("rng", 0)

    cluster.kubectl("patch", "service", "rng", "-n", namespace, "--type=json", "-p", UNDO)
    assert "active" not in selector(cluster, namespace)
    wait_until(lambda: services(webui)["rng"] == ("rng", 1), 15, "rng back after the patch")

    cluster.kubectl("patch", "service", "rng", "-n", namespace, "-p", EDIT)
    wait_until(lambda: services(webui)["rng"] == ("rng", 0), 15, "rng edited again")
    cluster.helm(*helm_upgrade, "--force")
    assert "active" not in selector(cluster, namespace)
    wait_until(lambda: services(webui)["rng"] == ("rng", 1), 15, "rng back after --force")
