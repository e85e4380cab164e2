import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import rng
from localapp import gunicorn, histogram, metric


@pytest.fixture
def client():
    return rng.create_app({"TESTING": True}).test_client()


def test_banner_names_the_host(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith("RNG running on ")


def test_returns_n_random_bytes(client):
    response = client.get("/32")
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    assert len(response.data) == 32
    assert client.get("/32").data != response.data


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "1.5", "1e3", "+5", str(2 ** 20 + 1),
                                 "99999999999999999999"])
def test_bad_n_is_a_clear_400(client, bad):
    response = client.get(f"/{bad}")
    assert response.status_code == 400
    assert "n must be" in response.get_data(as_text=True)


def test_wrong_method_is_405(client):
    assert client.post("/32").status_code == 405


def timed_concurrent_gets(url, count):
    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        responses = list(pool.map(lambda _: requests.get(url, timeout=10), range(count)))
    assert all(r.status_code == 200 and len(r.content) == 32 for r in responses)
    return time.monotonic() - started


def test_one_request_at_a_time_by_default(rng_service):
    # Five calls of 0.1 s each, served one after the other by the app's own cap.
    assert timed_concurrent_gets(rng_service.url + "/32", 5) >= 5 * rng.SLEEP_SECONDS


def test_concurrency_setting_widens_the_cap(rng_service):
    one = timed_concurrent_gets(rng_service.url + "/32", 5)
    two_slots = gunicorn("rng", env={"RNG_CONCURRENCY": "2"})
    try:
        two = timed_concurrent_gets(two_slots.url + "/32", 5)
    finally:
        two_slots.stop()
    # 5 calls take 5 rounds with one slot and 3 rounds with two: 0.6 of the time.
    assert 0.4 <= two / one <= 0.8, (one, two)


def test_health_and_metrics_stay_fast_while_saturated(rng_service):
    with ThreadPoolExecutor(12) as pool:
        slow = [pool.submit(requests.get, rng_service.url + "/32", timeout=10) for _ in range(10)]
        time.sleep(0.2)  # the queue is now several calls deep
        probe_times = []
        for path in ("/healthz", "/metrics", "/readyz"):
            started = time.monotonic()
            assert requests.get(rng_service.url + path, timeout=5).status_code == 200
            probe_times.append(time.monotonic() - started)
        slowest_call = max(f.result().elapsed.total_seconds() for f in slow)
    # The queued calls wait a second; a probe must not wait behind them.
    assert max(probe_times) < slowest_call / 5, (probe_times, slowest_call)
    assert metric(rng_service.url, "dockercoins_rng_waiting_requests") == 0


@pytest.mark.parametrize("method", ["GET", "HEAD"])  # httping sends HEAD unless told -G
def test_banner_waits_its_turn_behind_the_cap(rng_service, method):
    """SPEC: GET / waits behind the same cap as /<n>, as the seed's single-threaded rng did,
    so the workshop's `httping $RNG` shows rng's queue (and /healthz does not)."""
    with ThreadPoolExecutor(12) as pool:
        slow = [pool.submit(requests.get, rng_service.url + "/32", timeout=10) for _ in range(10)]
        time.sleep(0.2)  # about eight calls still queued: a second of work ahead
        started = time.monotonic()
        banner = requests.request(method, rng_service.url + "/", timeout=10)
        banner_seconds = time.monotonic() - started
        started = time.monotonic()
        requests.get(rng_service.url + "/healthz", timeout=5)
        probe_seconds = time.monotonic() - started
        slowest_call = max(f.result().elapsed.total_seconds() for f in slow)
    assert banner.status_code == 200
    if method == "GET":
        assert banner.text.startswith("RNG running on ")
    # It queued behind most of the calls ahead of it; the probe right after it did not.
    assert banner_seconds > slowest_call / 2, (banner_seconds, slowest_call)
    assert probe_seconds < banner_seconds / 5, (probe_seconds, banner_seconds)


def test_banner_is_fast_when_rng_is_idle(rng_service):
    started = time.monotonic()
    assert requests.get(rng_service.url + "/", timeout=5).status_code == 200
    assert time.monotonic() - started < rng.SLEEP_SECONDS  # it waits its turn, never sleeps


def test_duration_histogram_includes_the_wait(rng_service):
    before = histogram(rng_service.url, "http_request_duration_seconds", {"route": "/<n>"})
    timed_concurrent_gets(rng_service.url + "/32", 4)
    total, count = (a - b for a, b in zip(
        histogram(rng_service.url, "http_request_duration_seconds", {"route": "/<n>"}), before))
    assert count == 4
    # Served one by one: waits of 0, 0.1, 0.2 and 0.3 s on top of 0.1 s each = 1.0 s.
    assert total >= 0.95


def test_sheds_load_past_the_waiting_limit():
    small = gunicorn("rng", env={"GUNICORN_THREADS": "8", "RNG_MAX_WAITING": "2"})
    try:
        with ThreadPoolExecutor(6) as pool:
            codes = sorted(pool.map(
                lambda _: requests.get(small.url + "/32", timeout=10).status_code, range(6)))
        assert codes.count(200) == 3 and codes.count(503) == 3, codes
        assert requests.get(small.url + "/healthz", timeout=2).status_code == 200
    finally:
        small.stop()
