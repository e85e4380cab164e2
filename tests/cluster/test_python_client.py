"""The official `kubernetes` Python client against the real server: what a scaling lab will use
to drive the worker count. It scales the worker Deployment through the scale subresource, reads
the replicas back, and a ServiceAccount without a Role gets a clear 403."""
import json

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from helpers.kube import CHART, component
from localapp import wait_until


@pytest.fixture
def api(cluster):
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture
def release(cluster, namespace):
    cluster.helm("install", "dockercoins", CHART, "-n", namespace, "--wait", "--timeout", "3m")
    return namespace


def test_scale_worker_and_read_replicas(cluster, api, release):
    apps = client.AppsV1Api(api)
    apps.patch_namespaced_deployment_scale("worker", release, {"spec": {"replicas": 4}})
    scale = apps.read_namespaced_deployment_scale("worker", release)
    assert scale.spec.replicas == 4
    assert scale.status.selector == ("app.kubernetes.io/component=worker,"
                                     "app.kubernetes.io/instance=dockercoins,"
                                     "app.kubernetes.io/name=dockercoins")
    ready = wait_until(
        lambda: apps.read_namespaced_deployment_status("worker", release).status.ready_replicas == 4,
        60, "4 ready workers")
    assert ready
    pods = client.CoreV1Api(api).list_namespaced_pod(release, label_selector=component("worker"))
    assert len([p for p in pods.items if p.status.phase == "Running"]) == 4


def test_service_account_without_role_gets_403(cluster, api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "no-role"}})
    # A short-lived token from the TokenRequest API, as a pod would get it.
    token = core.create_namespaced_service_account_token(
        "no-role", namespace, {"spec": {"expirationSeconds": 600}}).status.token

    conf = client.Configuration()
    conf.host = api.configuration.host
    conf.ssl_ca_cert = api.configuration.ssl_ca_cert
    conf.api_key = {"authorization": token}
    conf.api_key_prefix = {"authorization": "Bearer"}
    apps = client.AppsV1Api(client.ApiClient(conf))

    with pytest.raises(ApiException) as denied:
        apps.list_namespaced_deployment(namespace)
    assert denied.value.status == 403
    assert denied.value.reason == "Forbidden"
    status = json.loads(denied.value.body)
    assert status["reason"] == "Forbidden" and status["code"] == 403
    assert status["message"] == (
        f'deployments.apps is forbidden: User "system:serviceaccount:{namespace}:no-role" '
        f'cannot list resource "deployments" in API group "apps" in the namespace "{namespace}"')

    with pytest.raises(ApiException) as denied:
        apps.patch_namespaced_deployment_scale("worker", namespace, {"spec": {"replicas": 2}})
    assert denied.value.status == 403
    assert 'cannot patch resource "deployments/scale"' in json.loads(denied.value.body)["message"]
