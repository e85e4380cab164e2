"""The faults the healthchecks chapter switches on, on rng and hasher (dockercoins_common.Faults
and Probes): off by default; an extra latency inside rng's cap; a failure rate answered 500 with a
message, which the worker rides through, counting exactly; probes failed on purpose, by POST
only. And the rollout chapter's slower worker (WORKER_SLEEP_SECONDS)."""
import math
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import dockercoins_common as common
import hasher
import rng
import worker as worker_module
from helpers.services import RedisServer
from localapp import IMAGES, counter_slope, gunicorn, histogram, metric, wait_until, worker

SERVICES = {"rng": (rng, "get", "/32"), "hasher": (hasher, "post", "/")}


def work(client, name):
    _, method, path = SERVICES[name]
    return getattr(client, method)(path, data=b"x" * 32) if method == "post" else client.get(path)


@pytest.fixture
def no_sleep(monkeypatch):
    """rng's and hasher's 0.1 s of work taken out, for the tests that count many requests."""
    for module in (rng, hasher):
        monkeypatch.setattr(module, "SLEEP_SECONDS", 0.0)


def test_faults_are_off_by_default(monkeypatch):
    for name in ("EXTRA_LATENCY_SECONDS", "FAILURE_RATE"):
        monkeypatch.delenv(name, raising=False)
    faults = common.Faults.from_env()
    assert (faults.extra_latency_seconds, faults.failure_rate) == (0.0, 0.0)
    assert all(faults.failure() is None for _ in range(1000))


@pytest.mark.parametrize("name, raw, message", [
    ("FAILURE_RATE", "1.5", "must be <= 1.0, got 1.5"),
    ("FAILURE_RATE", "-0.1", "must be >= 0.0, got -0.1"),
    ("FAILURE_RATE", "often", "must be a number, got 'often'"),
    ("FAILURE_RATE", "nan", "must be a finite number, got 'nan'"),
    ("EXTRA_LATENCY_SECONDS", "-1", "must be >= 0.0, got -1.0"),
    ("EXTRA_LATENCY_SECONDS", "1s", "must be a number, got '1s'"),
])
@pytest.mark.parametrize("service", [rng, hasher])
def test_a_bad_fault_setting_is_refused_at_start(monkeypatch, service, name, raw, message):
    monkeypatch.setenv(name, raw)
    with pytest.raises(common.ConfigError, match=re.escape(f"{name} {message}")):
        service.create_app()


@pytest.mark.parametrize("name", SERVICES)
def test_a_failure_rate_of_one_answers_500_with_a_message(name):
    module = SERVICES[name][0]
    client = module.create_app({"FAULTS": common.Faults(failure_rate=1.0)}).test_client()
    response = work(client, name)
    assert response.status_code == 500
    assert response.get_data(as_text=True) == "failed on purpose: FAILURE_RATE is 1.0\n"


@pytest.mark.parametrize("name", SERVICES)
def test_a_failure_rate_fails_that_fraction(no_sleep, name):
    module = SERVICES[name][0]
    client = module.create_app({"FAULTS": common.Faults(failure_rate=0.2)}).test_client()
    statuses = [work(client, name).status_code for _ in range(2000)]
    assert set(statuses) == {200, 500}
    # Binomial(2000, 0.2): the standard deviation is 0.009; 0.2 +- 0.04 is 4.5 of them.
    assert statuses.count(500) / len(statuses) == pytest.approx(0.2, abs=0.04)


def test_extra_latency_is_added_inside_the_rng_cap():
    """Three calls at once on one rng with EXTRA_LATENCY_SECONDS=0.2 take their turns one by
    one, 0.3 s each: the latency holds the cap, as a slower rng would."""
    slow = gunicorn("rng", env={"EXTRA_LATENCY_SECONDS": "0.2"})
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda _: requests.get(slow.url + "/32", timeout=10),
                                    range(3)))
        elapsed = time.monotonic() - started
    finally:
        slow.stop()
    assert [a.status_code for a in answers] == [200] * 3
    assert elapsed >= 3 * (rng.SLEEP_SECONDS + 0.2)


def test_extra_latency_lengthens_a_hash():
    client = hasher.create_app({"FAULTS": common.Faults(extra_latency_seconds=0.3)}).test_client()
    started = time.monotonic()
    assert client.post("/", data=b"abc").status_code == 200
    assert time.monotonic() - started >= hasher.SLEEP_SECONDS + 0.3


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("probe, other", [("healthz", "readyz"), ("readyz", "healthz")])
def test_a_probe_fails_on_purpose_until_enabled(no_sleep, name, probe, other):
    client = SERVICES[name][0].create_app({"TESTING": True}).test_client()
    assert client.get(f"/{probe}").status_code == 200
    # GET never flips a switch: a browser or a crawler must not take a pod down.
    assert client.get(f"/{probe}/disable").status_code == 405
    assert client.get(f"/{probe}").status_code == 200
    answer = client.post(f"/{probe}/disable")
    assert answer.status_code == 200 and "disabled" in answer.get_json()["status"]
    failing = client.get(f"/{probe}")
    assert failing.status_code == 503
    assert failing.get_json()["error"] == f"disabled on purpose: POST /{probe}/enable to recover"
    assert client.get(f"/{other}").status_code == 200    # the other probe is left alone
    assert work(client, name).status_code == 200         # and so is the work
    assert client.post(f"/{probe}/enable").status_code == 200
    assert client.get(f"/{probe}").status_code == 200


def test_the_worker_rides_through_a_failing_hasher_and_counts_exactly(tmp_path):
    """FAILURE_RATE=0.2 on hasher: the retries absorb the 500s, the worker keeps mining, redis
    `hashes` is exactly what it counted, and its errors metric counts every failed attempt: as
    many as the 500s hasher says it served."""
    store = RedisServer(tmp_path)
    services = [gunicorn("rng"), gunicorn("hasher", env={"FAILURE_RATE": "0.2"})]
    hasher_url = services[1].url

    def served_500s():
        return histogram(hasher_url, "http_request_duration_seconds", {"status": "500"})[1]

    def hasher_errors():
        return metric(proc.url, "dockercoins_worker_errors_total", {"stage": "hasher"})

    def counts_agree():
        # hasher's count read on both sides of the worker's: no failed attempt in flight.
        before, errors, after = served_500s(), hasher_errors(), served_500s()
        return before == errors == after

    proc = worker(services[0].url + "/32", hasher_url + "/", store.url)
    try:
        # 40 hashes: the chance that none of their attempts drew a 500 is 0.8^40, 1 in 7,500.
        wait_until(lambda: metric(proc.url, "dockercoins_worker_hashes_total") >= 40, 60,
                   what="40 hashes through a failing hasher")
        wait_until(counts_agree, 30, what="the worker's hasher errors equal to hasher's 500s")
        errors = {stage: metric(proc.url, "dockercoins_worker_errors_total", {"stage": stage})
                  for stage in ("rng", "redis")}
        assert served_500s() >= 1 and errors == {"rng": 0, "redis": 0}, errors
        proc.signal(signal.SIGTERM)
        assert proc.proc.wait(10) == 0
        flushed = int(re.search(r"final flush done: (\d+) loops", proc.output()).group(1))
        assert int(store.client().get("hashes")) == flushed >= 40
    finally:
        proc.stop()  # removes its log, too
        for service in services:
            service.stop()
        store.close()


def test_a_bad_worker_sleep_is_refused_by_name(monkeypatch):
    for raw, message in (("-1", "must be >= 0.0, got -1.0"), ("soon", "must be a number"),
                         ("inf", "must be <= 60.0, got inf")):
        monkeypatch.setenv("WORKER_SLEEP_SECONDS", raw)
        with pytest.raises(common.ConfigError, match=f"WORKER_SLEEP_SECONDS {message}"):
            worker_module.load_settings()
    # Started that way, the worker says why in one line and exits non-zero.
    started = subprocess.run(
        [sys.executable, str(IMAGES / "worker" / "worker.py")], capture_output=True, text=True,
        timeout=30, env={"PYTHONPATH": str(IMAGES / "common"), "WORKER_SLEEP_SECONDS": "-1"})
    assert started.returncode != 0
    assert started.stderr.strip().splitlines()[-1] == (
        "worker: WORKER_SLEEP_SECONDS must be >= 0.0, got -1.0")


def test_a_slower_worker_mines_at_its_loop_time(tmp_path):
    """Two workers side by side on one rng (its 10 calls/s are not the limit here): the default
    loop is 0.1 s of sleep + 0.2 s in rng and hasher; WORKER_SLEEP_SECONDS=0.5 makes it 0.7 s."""
    store = RedisServer(tmp_path)
    services = [gunicorn("rng"), gunicorn("hasher")]
    urls = (services[0].url + "/32", services[1].url + "/", store.url)
    try:
        fast = worker(*urls)
        slow = worker(*urls, env={"WORKER_SLEEP_SECONDS": "0.5"})
        assert "loop sleep 0.5 s" in slow.output()
        time.sleep(2)
        with ThreadPoolExecutor(2) as pool:
            rates = list(pool.map(lambda proc: counter_slope(
                lambda: metric(proc.url, "dockercoins_worker_hashes_total"), 12), (fast, slow)))
        for proc in (fast, slow):
            proc.stop()
    finally:
        for service in services:
            service.stop()
        store.close()
    # The time in rng and hasher, from the default worker's loop (nominally 0.2 s; more on a
    # busy machine): the slower worker spends the same, plus its 0.5 s sleep.
    calls = 1 / rates[0] - 0.1
    assert rates[1] == pytest.approx(1 / (0.5 + calls), rel=0.15), (rates, calls)
    assert not math.isclose(rates[0], rates[1], rel_tol=0.3)
