"""webui's cluster view against the real API server (kwok nodes): webui runs here under gunicorn
with a kubeconfig, as it does in a pod with its token. Its watch sees a scale within seconds, and
a ServiceAccount without the Role hides the panel with the API's reason while /json stays 200."""
import json

import pytest
import requests
import yaml

from helpers.kube import CHART
from localapp import gunicorn, wait_until


@pytest.fixture
def release(cluster, namespace):
    cluster.helm("install", "dockercoins", CHART, "-n", namespace, "--wait", "--timeout", "3m")
    return namespace


def run_webui(redis_server, namespace, kubeconfig, watch_seconds=20):
    return gunicorn("webui", env={
        "REDIS_URL": redis_server.url, "CLUSTER_VIEW": "kubernetes", "POD_NAMESPACE": namespace,
        "RELEASE_NAME": "dockercoins", "KUBECONFIG": str(kubeconfig),
        "CLUSTER_WATCH_SECONDS": str(watch_seconds)})


def token_kubeconfig(cluster, namespace, account, path):
    """A kubeconfig with a token from the TokenRequest API, as the account's pod would get it."""
    token = cluster.kubectl("create", "token", account, "-n", namespace,
                            "--duration=10m").strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": account,
        "clusters": admin["clusters"],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {
            "cluster": admin["clusters"][0]["name"], "user": account}}]}))
    return path


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
    kubeconfig = token_kubeconfig(cluster, namespace, "no-role", tmp_path / "kubeconfig")
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


def test_the_charts_role_is_enough_and_losing_it_hides_the_panel_until_it_is_back(
        cluster, release, redis_server, tmp_path):
    """With the token of the chart's own webui ServiceAccount: the Role lets the watch run; the
    RoleBinding deleted, the next watch renewal is refused (a 403, or an ERROR event in the
    stream) and the panel hides; the chart's state restored, the counts come back by themselves."""
    kubeconfig = token_kubeconfig(cluster, release, "webui", tmp_path / "kubeconfig")
    webui = run_webui(redis_server, release, kubeconfig, watch_seconds=3)
    try:
        wait_until(lambda: counts(cluster_view(webui)).get("worker") == (1, 1), 30,
                   "worker 1/1 with the chart's Role")
        cluster.kubectl("delete", "rolebinding", "webui-cluster-view", "-n", release)
        hidden = wait_until(lambda: cluster_view(webui).get("hidden"), 30, "the panel hidden")
        assert hidden.startswith("no permission to read the release's workloads:"), hidden
        assert f"system:serviceaccount:{release}:webui" in hidden, hidden
        cluster.helm("upgrade", "dockercoins", CHART, "-n", release, "--wait", "--timeout", "3m")
        # Back after the next retry of the backoff (1 s doubling, at most 30 s).
        wait_until(lambda: counts(cluster_view(webui)).get("worker") == (1, 1), 60,
                   "the counts back with the Role")
        assert webui.proc.poll() is None
    finally:
        webui.stop()
