"""webui's cluster view against the real API server (kwok nodes): webui runs here under gunicorn
with a kubeconfig, as it does in a pod with its token. Its watch sees a scale within seconds, and
a ServiceAccount without the Role hides the panel with the API's reason while /json stays 200."""
import json

import pytest
import requests
import yaml

from kube import CHART, wait_until
from support import gunicorn


@pytest.fixture
def release(cluster, namespace):
    cluster.helm("install", "dockercoins", CHART, "-n", namespace, "--wait", "--timeout", "3m")
    return namespace


def run_webui(redis_server, namespace, kubeconfig):
    return gunicorn("webui", env={
        "REDIS_URL": redis_server.url, "CLUSTER_VIEW": "kubernetes", "POD_NAMESPACE": namespace,
        "RELEASE_NAME": "dockercoins", "KUBECONFIG": str(kubeconfig)})


def cluster_view(webui):
    response = requests.get(webui.url + "/json", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["cluster"]


def counts(view):
    return {name: (w["desired"], w["ready"]) for name, w in view.get("workloads", {}).items()}


def test_the_watch_sees_a_scale(cluster, release, redis_server):
    webui = run_webui(redis_server, release, cluster.kubeconfig)
    try:
        try:
            wait_until(lambda: "workloads" in cluster_view(webui), 30, "the first counts")
        finally:
            view = cluster_view(webui)
        assert counts(view) == {"worker": (1, 1), "rng": (1, 1), "hasher": (1, 1)}, view
        assert view["source"] == "kubernetes" and view["workloads"]["rng"]["kind"] == "Deployment"
        cluster.kubectl("scale", "deployment", "worker", "--replicas=4", "-n", release)
        # The desired count moves at once: a watch event, well before the watch's 20 s renewal.
        wait_until(lambda: counts(cluster_view(webui))["worker"][0] == 4, 10, "worker desired 4")
        wait_until(lambda: counts(cluster_view(webui))["worker"] == (4, 4), 60, "worker 4/4")
        # Other releases' workloads are not counted: a Deployment of another instance.
        cluster.kubectl("create", "deployment", "worker-other", "--image=example.invalid/x:1",
                        "-n", release)
        cluster.kubectl("label", "deployment", "worker-other", "-n", release,
                        "app.kubernetes.io/instance=another", "app.kubernetes.io/component=worker")
        cluster.kubectl("scale", "deployment", "worker", "--replicas=2", "-n", release)
        wait_until(lambda: counts(cluster_view(webui))["worker"] == (2, 2), 60, "worker 2/2")
    finally:
        webui.stop()


def test_a_service_account_without_the_role_hides_the_panel(cluster, namespace, redis_server,
                                                            tmp_path):
    """A token from the TokenRequest API for an account with no Role: the API says 403, the
    panel hides with its message, and /json still answers with the speed."""
    cluster.kubectl("create", "serviceaccount", "no-role", "-n", namespace)
    token = cluster.kubectl("create", "token", "no-role", "-n", namespace,
                            "--duration=10m").strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    kubeconfig = tmp_path / "no-role.kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "no-role",
        "clusters": admin["clusters"],
        "users": [{"name": "no-role", "user": {"token": token}}],
        "contexts": [{"name": "no-role", "context": {
            "cluster": admin["clusters"][0]["name"], "user": "no-role"}}]}))
    webui = run_webui(redis_server, namespace, kubeconfig)
    try:
        hidden = wait_until(lambda: "no permission" in cluster_view(webui).get("hidden", "")
                            and cluster_view(webui)["hidden"], 30, "the panel hidden")
        assert f'"system:serviceaccount:{namespace}:no-role" cannot list resource' in hidden, hidden
        assert "\n" not in hidden and len(hidden) <= 200
        response = requests.get(webui.url + "/json", timeout=5)
        assert response.status_code == 200 and response.json()["speed"] == 0
        assert webui.proc.poll() is None  # nothing crashed
    finally:
        webui.stop()
