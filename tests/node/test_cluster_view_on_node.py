"""webui's cluster view in a real pod on the node, seen in Chromium: the watch runs with the pod's
own ServiceAccount token, the page follows `kubectl scale` within 10 s, and without its
RoleBinding the panel hides with the API's reason while the speed still shows.

The browser opens the page through `kubectl proxy` on loopback and the API server's service
proxy (the page's URLs are relative, so it works under that path)."""
import time

import pytest

from helpers.kube import CHART
from helpers.node import RELEASE
from localapp import wait_until
from dockercoins_lab.scaling import PER_WORKER

CLUSTER_TEXT = "document.getElementById('cluster').textContent"


def shown_speed(page):
    return float(page.inner_text("#speed"))


def test_the_panel_shows_the_release_and_follows_a_scale_within_10_s(app, page):
    page.wait_for_function(f"{CLUSTER_TEXT} === 'worker 1/1 · rng 1/1 · hasher 1/1'",
                           timeout=30_000)
    assert page.get_attribute("#cluster", "data-source") == "kubernetes"
    assert page.is_visible("#model-key")
    started = time.monotonic()
    app.kubectl("scale", "deployment", "worker", "--replicas=6")
    page.wait_for_function(f"{CLUSTER_TEXT}.startsWith('worker 6/6 ')", timeout=10_000)
    seen_after = time.monotonic() - started
    assert seen_after < 10, seen_after
    # The model line follows the ready counts: min(3.33 x 6, 10 x 1) = 10 hashes/s.
    page.wait_for_function("window.dockercoins.history.model.at(-1) !== null", timeout=5_000)
    assert page.evaluate("window.dockercoins.history.model.at(-1)") == pytest.approx(
        min(PER_WORKER * 6, 10.0))
    assert page.evaluate("document.body.dataset.state") == "live" and shown_speed(page) > 0


def test_without_its_rolebinding_the_panel_hides_and_the_speed_still_shows(app, page):
    app.kubectl("delete", "rolebinding", "webui-cluster-view")
    try:
        # The watch is renewed every 20 s, which checks the permission again.
        page.wait_for_function(
            "document.getElementById('cluster').dataset.source === 'hidden'", timeout=60_000)
        text = page.inner_text("#cluster")
        assert text.startswith("Replica counts hidden: no permission to read the release's "
                               "workloads:"), text
        assert f"system:serviceaccount:{app.ns}:webui" in text, text
        assert not page.is_visible("#model-key")
        assert page.evaluate("window.dockercoins.history.model.at(-1)") is None
        # The speed is read from redis and still shows, live.
        assert page.evaluate("document.body.dataset.state") == "live"
        wait_until(lambda: shown_speed(page) > 0, 15, "a speed above 0")
        assert app.kubectl("get", "pods", "-l", "app=webui", "-o",
                           "jsonpath={.items[0].status.containerStatuses[0].restartCount}") == "0"
    finally:
        # Restore the chart's state: the RoleBinding back, one worker.
        app.helm("upgrade", RELEASE, CHART, "-f", app.cluster.values_file, "--wait",
                 "--timeout", "3m")
    # With the Role back, the watch lists again after its backoff (at most 30 s) and the panel
    # comes back by itself.
    page.wait_for_function(f"{CLUSTER_TEXT} === 'worker 1/1 · rng 1/1 · hasher 1/1'",
                           timeout=90_000)
