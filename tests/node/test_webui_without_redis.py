"""webui without redis, on the real node: webui's readiness is its own, so with redis scaled to 0
its pod stays a ready endpoint of the webui Service, and through that Service (the API server's
service proxy, reached with `kubectl proxy` on loopback) the page shows the "Redis unreachable"
banner and /json answers 503 with redis-py's reason. redis back: the speed returns."""
import json
import time

import pytest
import requests

from dashboard_page import chromium
from helpers.node import steady_speed
from localapp import wait_until


def webui_endpoints(app):
    """[ready] of each endpoint of the webui Service, from its EndpointSlices."""
    slices = json.loads(app.kubectl("get", "endpointslices", "-o", "json",
                                    "-l", "kubernetes.io/service-name=webui"))["items"]
    return [endpoint.get("conditions", {}).get("ready") is not False
            for piece in slices for endpoint in piece.get("endpoints") or []]


def test_webui_stays_in_its_service_and_says_what_is_wrong_while_redis_is_down(
        app, webui_url):
    before = steady_speed(app)
    assert before > 2.5, before  # one worker: 3.33 hashes/s
    app.kubectl("scale", "deployment", "redis", "--replicas=0")
    try:
        wait_until(lambda: not app.pods("redis"), 120, "the redis pod gone")
        # Longer than webui's readiness probe needs to fail (period 5 s x threshold 2).
        time.sleep(15)
        assert webui_endpoints(app) == [True]
        answer = requests.get(webui_url + "json", timeout=10)
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["redis"] == "unreachable", body
        assert body["error"].startswith("redis unreachable: "), body
        assert "connecting to" in body["error"], body  # redis-py's own words
        assert requests.get(webui_url + "readyz", timeout=10).status_code == 200
        with chromium() as browser:
            page = browser.new_context(viewport={"width": 1600, "height": 900}).new_page()
            page.goto(webui_url)
            page.wait_for_function("document.body.dataset.state === 'redis-down'",
                                   timeout=15_000)
            status = page.inner_text("#status")
            assert status.startswith("Redis unreachable since "), status
            assert body["error"][len("redis unreachable: "):][:20] in status, (status, body)
    finally:
        app.kubectl("scale", "deployment", "redis", "--replicas=1")
    app.kubectl("rollout", "status", "deployment/redis", "--timeout=120s", timeout=150)
    wait_until(lambda: requests.get(webui_url + "json", timeout=10).status_code == 200,
               60, "/json answering again")
    after = steady_speed(app, settle=10.0)
    assert after == pytest.approx(before, rel=0.15), (before, after)
