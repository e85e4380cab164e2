"""Fixtures for the tests on a real node (`ci/cluster.sh up --node`): one cluster per session, with
containerd, kubelet, kube-proxy and CoreDNS running the chart's pods for real; one namespace and
release per module."""
import subprocess
from pathlib import Path

import pytest

from dashboard_page import chromium
from helpers import node
from localapp import free_port, wait_http_ok


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory):
    """`ci/cluster.sh up --node` in a directory of its own, then `down`, which must leave nothing."""
    yield from node.session_node_cluster(tmp_path_factory, "node", "--node")


# Run last of this folder, in this order: `down` after every other test has used the session's
# cluster, then the README's block, which needs the machine free of any other node.
LAST = ("test_down_leaves_nothing", "test_the_node_block_as_typed")


def pytest_collection_modifyitems(items):
    node.order_last(items, Path(__file__).parent, LAST)


@pytest.fixture(scope="module")
def app(node_cluster):
    """The chart installed with `helm install --wait` in a fresh namespace, with one worker."""
    yield from node.installed_release(node_cluster, "dc")


@pytest.fixture(scope="module")
def webui_url(app):
    """The webui Service's URL through the API server's service proxy, via `kubectl proxy` on
    loopback, as a user reaches the dashboard without a NodePort."""
    port = free_port()
    proxy = subprocess.Popen(["kubectl", "proxy", "--address=127.0.0.1", f"--port={port}"],
                             env=app.cluster.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/namespaces/{app.ns}/services/webui:80/proxy/"
        wait_http_ok(url + "json", timeout=30)
        yield url
    finally:
        proxy.terminate()
        proxy.wait(10)


@pytest.fixture(scope="module")
def page(webui_url):
    """The dashboard in Chromium through that URL, once it shows live figures."""
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1600, "height": 900}).new_page()
        page.goto(webui_url)
        page.wait_for_function("document.body.dataset.state === 'live'", timeout=30_000)
        yield page
