"""The cluster view's data in /json: its shape, and the panel hidden with a reason whenever the
counts cannot be read. The watch itself runs against a real API server in
tests/cluster/test_webui_cluster_view.py and tests/node/test_cluster_view_on_node.py."""
import json
import os
import subprocess
import sys

import pytest
from kubernetes.client import (V1DaemonSet, V1DaemonSetSpec, V1DaemonSetStatus, V1Deployment, V1DeploymentSpec,
                               V1DeploymentStatus, V1Endpoint, V1EndpointConditions,
                               V1EndpointSlice, V1LabelSelector, V1ObjectMeta, V1PodTemplateSpec)
from kubernetes.client.rest import ApiException

import cluster
import clusterwatch
import webui
from localapp import IMAGES, free_port, wait_until


def app_client(redis_server, **config):
    app = webui.create_app({"TESTING": True, "REDIS_URL": redis_server.url, **config})
    return app, app.test_client()


def beat(redis_db, name):
    redis_db.set(f"dockercoins:worker:{name}", json.dumps({
        "rate": 3.3, "rng_seconds": 0.1, "hasher_seconds": 0.1, "error": None}), ex=5)


def test_local_counts_come_from_heartbeats_and_the_started_processes(redis_server, redis_db):
    """ci/up.sh: the workers that report, and the rng and hasher it started."""
    _, client = app_client(redis_server, CLUSTER_VIEW="local", LOCAL_RNG_REPLICAS=2,
                           LOCAL_HASHER_REPLICAS=1)
    for name in ("a", "b", "c"):
        beat(redis_db, name)
    data = client.get("/json").get_json()
    assert data["cluster"] == {"source": "heartbeats", "workloads": {
        "worker": {"kind": "process", "desired": 3, "ready": 3},
        "rng": {"kind": "process", "desired": 2, "ready": 2},
        "hasher": {"kind": "process", "desired": 1, "ready": 1}}}
    assert data["workers"] == 3 and data["speed"] == pytest.approx(9.9)  # the old keys stay


def test_without_the_watch_webui_does_not_load_the_kubernetes_client():
    """The client costs webui about 20 MiB; under ci/up.sh (local) and with the view off it
    is never imported."""
    check = ("import sys, webui\n"
             "for mode in ('local', 'off'):\n"
             "    webui.create_app({'TESTING': True, 'CLUSTER_VIEW': mode})\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             str(IMAGES / d) for d in ("webui", "common"))}).stdout
    assert out.strip() == "[]"


def test_off_hides_the_panel_and_says_why(redis_server, redis_db):
    _, client = app_client(redis_server, CLUSTER_VIEW="off")
    data = client.get("/json").get_json()
    assert data["cluster"] == {"hidden": "the cluster view is off (webui.clusterView.enabled=false)"}
    assert data["speed"] == 0


@pytest.mark.parametrize("config, reason", [
    ({"CLUSTER_VIEW": "kubectl"}, "CLUSTER_VIEW must be kubernetes, local or off, not 'kubectl'"),
    ({"CLUSTER_VIEW": "kubernetes", "RELEASE_NAME": ""}, "POD_NAMESPACE and RELEASE_NAME are not set"),
])
def test_bad_settings_hide_the_panel_with_the_setting_to_fix(redis_server, config, reason):
    _, client = app_client(redis_server, POD_NAMESPACE="demo", **config)
    response = client.get("/json")
    assert response.status_code == 200
    assert response.get_json()["cluster"] == {"hidden": reason}


def test_no_credentials_hide_the_panel(redis_server, tmp_path, monkeypatch):
    """Not in a pod, and no kubeconfig: the one-line reason names what is missing."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    _, client = app_client(redis_server, CLUSTER_VIEW="kubernetes", POD_NAMESPACE="demo",
                           RELEASE_NAME="dockercoins")
    hidden = client.get("/json").get_json()["cluster"]["hidden"]
    assert hidden.startswith("no Kubernetes credentials:") and "\n" not in hidden, hidden


def test_an_unreachable_api_hides_the_panel_and_the_speed_still_shows(
        redis_server, redis_db, tmp_path, monkeypatch):
    """A kubeconfig whose server refuses connections (a closed loopback port): the watch keeps
    retrying in the background, /json answers at once with the speed and the reason."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "u", "user": {"token": "unused"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    app, client = app_client(redis_server, CLUSTER_VIEW="kubernetes", POD_NAMESPACE="demo",
                             RELEASE_NAME="dockercoins")
    try:
        beat(redis_db, "a")
        first = client.get("/json").get_json()["cluster"]
        assert first["source"] == "kubernetes" and "hidden" in first  # waiting, or failed
        wait_until(lambda: "unreachable" in client.get("/json").get_json()["cluster"]["hidden"],
                   10, what="the panel hidden as unreachable")
        response = client.get("/json")
        assert response.status_code == 200 and response.get_json()["speed"] == pytest.approx(3.3)
        hidden = response.get_json()["cluster"]["hidden"]
        assert hidden.startswith("Kubernetes API unreachable:") and len(hidden) <= 200, hidden
    finally:
        app.extensions["cluster_view"].stop()


def deployment(name, component, desired, ready):
    return V1Deployment(
        metadata=V1ObjectMeta(name=name, labels={cluster.COMPONENT_LABEL: component}),
        spec=V1DeploymentSpec(replicas=desired, selector=V1LabelSelector(),
                              template=V1PodTemplateSpec()),
        status=V1DeploymentStatus(ready_replicas=ready))


def test_replicas_read_deployments_and_daemonsets():
    assert cluster.replicas("Deployment", deployment("worker", "worker", 10, 7)) == (10, 7)
    # A new Deployment has no status yet, and readyReplicas is left out at 0.
    fresh = deployment("worker", "worker", 6, None)
    fresh.status = None
    assert cluster.replicas("Deployment", fresh) == (6, 0)
    daemonset = V1DaemonSet(metadata=V1ObjectMeta(name="rng"), spec=V1DaemonSetSpec(
        selector=V1LabelSelector(), template=V1PodTemplateSpec()), status=V1DaemonSetStatus(
        desired_number_scheduled=3, number_ready=2, current_number_scheduled=3,
        number_misscheduled=0))
    assert cluster.replicas("DaemonSet", daemonset) == (3, 2)


def test_workloads_in_the_page_order_and_an_rng_switch_counts_both_kinds():
    shaped = cluster.workloads({
        ("Deployment", "hasher"): ("hasher", 1, 1),
        ("Deployment", "rng"): ("rng", 1, 1),
        ("DaemonSet", "rng"): ("rng", 3, 2),
        ("Deployment", "worker"): ("worker", 10, 10),
        ("Deployment", "redis"): ("redis", 1, 1),  # not part of the view
    })
    assert list(shaped) == ["worker", "rng", "hasher"]
    assert shaped["rng"] == {"kind": "DaemonSet+Deployment", "desired": 4, "ready": 3}
    assert shaped["worker"] == {"kind": "Deployment", "desired": 10, "ready": 10}


def endpoint_slice(ready):
    """An EndpointSlice with one endpoint per item of `ready` (True, False or None: not said)."""
    return V1EndpointSlice(address_type="IPv4", endpoints=[
        V1Endpoint(addresses=[f"10.0.0.{i}"], conditions=V1EndpointConditions(ready=r))
        for i, r in enumerate(ready)] or None)


def test_ready_endpoints_count_as_kube_proxy_reads_them():
    assert cluster.ready_endpoints(endpoint_slice([True, False, None])) == 2
    assert cluster.ready_endpoints(endpoint_slice([])) == 0  # a selector that matches nothing


def test_services_sum_the_slices_of_rng_and_hasher_with_their_names():
    shaped = cluster.services([("rng", "rng", 2), ("rng", "rng", 1), ("hasher", "hasher", 0),
                               ("webui", "webui", 1), ("rng", None, 5)])
    assert shaped == {"rng": {"name": "rng", "ready": 3}, "hasher": {"name": "hasher", "ready": 0}}


def test_a_forbidden_answer_gives_the_apis_own_message_on_one_line():
    error = ApiException(status=403, reason="Forbidden")
    error.body = json.dumps({"kind": "Status", "message": 'deployments.apps is forbidden: User '
                             '"system:serviceaccount:demo:webui" cannot list resource\n"deployments"'})
    reason = clusterwatch.api_problem(error)
    assert reason.startswith("no permission to read the release's workloads: deployments.apps")
    assert "\n" not in reason and "system:serviceaccount:demo:webui" in reason
    assert clusterwatch.api_problem(ApiException(status=500, reason="Internal")) == \
        "Kubernetes API error 500: Internal"
