"""The DaemonSet chapter's selector edit on the real node: `active: "yes"` added to the rng
Service's selector (what `kubectl edit service rng` does) leaves rng with no endpoint and mining
stops. The page (opened through the webui Service with the API server's service proxy) names
the Service, `dockercoins-lab measure` prints it with the fix when it measures 0, and the fix of
docs/workshop.md brings the speed back."""
import json

import pytest

from helpers.kube import run_lab
from helpers.node import steady_speed
from localapp import wait_until

EDIT = json.dumps({"spec": {"selector": {"active": "yes"}}})
UNDO = json.dumps([{"op": "remove", "path": "/spec/selector/active"}])


def test_an_edited_rng_selector_is_named_by_the_page_and_the_lab(app, page):
    before = steady_speed(app)
    assert before > 2.5, before  # one worker: 3.33 hashes/s
    app.kubectl("patch", "service", "rng", "-p", EDIT)
    try:
        page.wait_for_function(
            "document.getElementById('status').textContent.startsWith("
            "'Service rng has no ready endpoint')", timeout=30_000)
        assert page.evaluate("document.body.dataset.state") == "degraded"
        status, out, err = run_lab(app.cluster.env, "-n", app.ns, "measure", "--seconds", 8)
        assert status == 0, err
        assert float(out.split()[0]) < 0.05, out  # mining stopped: a true 0
        assert "Service rng has no ready endpoint: its selector's active=yes matches none of " \
               "the ready rng pods (1)" in err, err
        assert f"kubectl patch service rng -n {app.ns} --type=json -p '{UNDO}'" in err, err
        assert "Service hasher" not in err, err
    finally:
        app.kubectl("patch", "service", "rng", "--type=json", "-p", UNDO)  # docs/workshop.md
    page.wait_for_function("document.body.dataset.state === 'live'", timeout=30_000)
    after = steady_speed(app)
    assert after == pytest.approx(before, rel=0.15), (before, after)
    wait_until(lambda: "no ready endpoint" not in page.inner_text("#status"), 5, "banner gone")
