import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import ledger
import worker as worker_module
from dockercoins_common import ConfigError
from helpers.services import RedisServer
from localapp import IMAGES, gunicorn, metric, wait_until, worker


@pytest.fixture
def stack(tmp_path):
    """rng, hasher and a redis of its own (the outage test stops it)."""
    parts = {"redis": RedisServer(tmp_path), "rng": gunicorn("rng"),
             "hasher": gunicorn("hasher")}
    yield parts
    for name in ("rng", "hasher"):
        parts[name].stop()
    parts["redis"].close()


def start_worker(stack, env=None):
    return worker(stack["rng"].url + "/32", stack["hasher"].url + "/", stack["redis"].url, env)


def hashes_done(proc):
    return metric(proc.url, "dockercoins_worker_hashes_total")


def wait_for_more_hashes(proc, more, timeout=30):
    target = hashes_done(proc) + more
    wait_until(lambda: hashes_done(proc) >= target, timeout, what=f"{more} more hashes")


def stop_and_final_count(proc):
    """SIGTERM; returns (seconds to exit, exit code, loops the worker says it flushed)."""
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    proc.proc.wait(10)
    elapsed = time.monotonic() - started
    code = proc.stop()
    match = re.search(r"final flush done: (\d+) loops", proc.output())
    return elapsed, code, int(match.group(1)) if match else None


def test_coins_go_into_the_wallet_hash(stack):
    proc = start_worker(stack)
    store = stack["redis"].client()
    try:
        # One hash in 16 starts with "0": wait for a few coins.
        wait_until(lambda: store.hlen("wallet") >= 2, 60, what="two coins")
    finally:
        proc.stop()
    assert store.type("wallet") == b"hash"
    for digest, random_bytes in store.hgetall("wallet").items():
        assert digest.startswith(b"0")
        assert hashlib.sha256(random_bytes).hexdigest().encode() == digest
    assert metric_total_coins_logged(proc) == store.hlen("wallet")


def metric_total_coins_logged(proc):
    return proc.output().count("Coin found")


def test_sigterm_flushes_and_exits_within_two_seconds(stack, tmp_path):
    """The final count is logged, and written as the termination message, as in a pod (where the
    kubelet makes the file, and keeps it in the pod's status after the logs are gone)."""
    message = tmp_path / "termination-log"
    message.touch()
    proc = start_worker(stack, {"TERMINATION_MESSAGE_PATH": str(message)})
    wait_for_more_hashes(proc, 5)
    elapsed, code, flushed = stop_and_final_count(proc)
    assert code == 0 and elapsed < 2.0, (code, elapsed)
    assert flushed is not None and flushed >= 5
    assert int(stack["redis"].client().get("hashes")) == flushed
    assert message.read_text() == f"final flush done: {flushed} loops in all\n"


def test_no_termination_message_outside_a_pod(stack, tmp_path):
    """Where no kubelet made the file, the worker creates none."""
    absent = tmp_path / "termination-log"
    proc = start_worker(stack, {"TERMINATION_MESSAGE_PATH": str(absent)})
    wait_for_more_hashes(proc, 2)
    assert stop_and_final_count(proc)[2] is not None
    assert not absent.exists()


def test_heartbeat_tells_rate_and_latency(stack):
    proc = start_worker(stack)
    try:
        # The rate covers a window of RATE_WINDOW_SECONDS, the same for every worker: wait
        # until this worker has mined for longer than one.
        wait_for_more_hashes(proc, 10 + int(4 * ledger.RATE_WINDOW_SECONDS))
        store = stack["redis"].client()
        keys = store.keys("dockercoins:worker:*")
        assert len(keys) == 1
        beat = json.loads(store.get(keys[0]))
        assert 0 < store.ttl(keys[0]) <= ledger.HEARTBEAT_TTL_SECONDS
        # One loop is 0.1 s sleep + 0.1 s rng + 0.1 s hasher: about 3.33 a second.
        assert 2.5 < beat["rate"] < 3.6, beat
        assert 0.09 < beat["rng_seconds"] < 0.3 and 0.09 < beat["hasher_seconds"] < 0.3
    finally:
        proc.stop()


def test_recovers_from_each_outage_and_counts_exactly(stack):
    proc = start_worker(stack)
    redis = stack["redis"]
    wait_for_more_hashes(proc, 5)

    for name in ("rng", "hasher"):
        port = int(stack[name].url.rsplit(":", 1)[1])
        stack[name].stop()
        time.sleep(3)
        stack[name] = gunicorn(name, port=port)
        wait_for_more_hashes(proc, 5)

    redis.stop()  # with its data saved, as a redis with persistence restarts
    time.sleep(3)
    redis.start()
    wait_for_more_hashes(proc, 5)
    store = redis.client()
    wait_until(lambda: int(store.get("hashes") or 0) >= hashes_done(proc) - 10, 10,
               what="the count held during the outage reaching redis")

    # A reply lost after redis applied the flush: pause redis longer than the worker's
    # timeout, so the worker gives up on a flush that redis runs when it resumes. The
    # retry carries the same sequence number, and redis counts it once.
    redis.process.signal(signal.SIGSTOP)
    time.sleep(2.5)
    redis.process.signal(signal.SIGCONT)
    wait_for_more_hashes(proc, 5)

    errors = {stage: metric(proc.url, "dockercoins_worker_errors_total", {"stage": stage})
              for stage in ("rng", "hasher", "redis")}
    assert all(count > 0 for count in errors.values()), errors
    elapsed, code, flushed = stop_and_final_count(proc)
    assert code == 0 and elapsed < 2.0, (code, elapsed)
    assert int(store.get("hashes")) == flushed


def test_sigterm_with_redis_down_still_exits_in_time(stack):
    proc = start_worker(stack)
    wait_for_more_hashes(proc, 3)
    stack["redis"].close()
    elapsed, code, flushed = stop_and_final_count(proc)
    assert elapsed < 2.0
    assert code == 1 and flushed is None
    assert "were not counted" in proc.output()


def test_recent_rate_is_exact_between_loops():
    done = [10.0 + 0.3 * i for i in range(30)]
    assert ledger.recent_rate(done, now=done[-1] + 0.1) == pytest.approx(1 / 0.3)
    # Stalled for 3 s: the rate falls instead of freezing at its last value.
    assert ledger.recent_rate(done, now=done[-1] + 3.0) < 0.8 / 0.3
    assert ledger.recent_rate(done[:1], now=11.0) == 0.0


def test_health_port_serves_probes_and_metrics(stack):
    proc = start_worker(stack)
    try:
        import requests
        assert requests.get(proc.url + "/healthz", timeout=2).status_code == 200
        assert requests.get(proc.url + "/readyz", timeout=2).status_code == 200
        # The same answers as every other service's (dockercoins_common.add_ops_routes).
        assert requests.get(proc.url + "/healthz", timeout=2).json() == {"status": "ok"}
        assert requests.get(proc.url + "/readyz", timeout=2).json() == {"status": "ready"}
        assert requests.get(proc.url + "/nope", timeout=2).status_code == 404
        text = requests.get(proc.url + "/metrics", timeout=2).text
        for name in ("dockercoins_worker_hashes_total", "dockercoins_worker_coins_total",
                     'dockercoins_worker_errors_total{stage="rng"}',
                     "dockercoins_worker_call_duration_seconds_bucket"):
            assert name in text
    finally:
        proc.stop()


def test_the_coin_rule_is_the_seeds():
    assert worker_module.is_coin("0" + "f" * 63)
    assert not worker_module.is_coin("f" + "0" * 63)
    coins = sum(worker_module.is_coin(hashlib.sha256(bytes([i])).hexdigest())
                for i in range(256))
    assert 4 <= coins <= 40  # one hash in 16


def test_settings_are_read_when_asked_not_at_import(monkeypatch):
    monkeypatch.setenv("READ_TIMEOUT_SECONDS", "soon")
    # A bad setting does not break the import (tests and tools import the module)...
    subprocess.run([sys.executable, "-c", "import worker"], check=True, env={
        **os.environ, "PYTHONPATH": f"{IMAGES / 'worker'}:{IMAGES / 'common'}"})
    # ...it is refused, by name, when the worker starts.
    with pytest.raises(ConfigError, match="READ_TIMEOUT_SECONDS must be a number"):
        worker_module.load_settings()
    monkeypatch.setenv("READ_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("RNG_URL", "http://rng.example/32")
    settings = worker_module.load_settings()
    assert settings.read_timeout == 2.5 and settings.rng_url == "http://rng.example/32"
    assert settings.hasher_url == "http://hasher/"  # the Service name, as the workshop says


def loops(start, end, period):
    """Completion times of loops every `period` seconds from start to end."""
    return [start + period * (i + 1) for i in range(int((end - start) / period))]


def test_a_young_worker_counts_as_idle_before_it_started():
    window = ledger.RATE_WINDOW_SECONDS
    done = loops(100.0, 100.0 + window / 2, 0.3)
    now = done[-1] + 0.1
    young = ledger.window_rate(done, now, started=100.0, window=window)
    assert young == pytest.approx(ledger.recent_rate(done, now) * (now - 100.0) / window)
    old = loops(90.0, now, 0.3)
    old = [t for t in old if t >= now - window]
    assert ledger.window_rate(old, now, started=90.0, window=window) == pytest.approx(1 / 0.3)


@pytest.mark.parametrize("before, after", [((1, 0.3), (6, 0.6)), ((6, 0.6), (2, 0.3))])
def test_the_sum_of_rates_after_a_scale_change_never_overshoots(before, after):
    """1 -> 6 workers on one rng (each loop 0.3 s, then 0.6 s), and 6 -> 2: every worker
    reports its rate over the same window, so the sum moves from the old total to the new
    one without passing either, and is the new one a window after the change."""
    (old_count, old_period), (new_count, new_period) = before, after
    window, change = ledger.RATE_WINDOW_SECONDS, 1000.0
    old_rate, new_rate = old_count / old_period, new_count / new_period
    for age in [x / 2 for x in range(0, 2 * int(window) + 6)]:
        now = change + age
        total = 0.0
        for i in range(new_count):
            started = change - 100 if i < old_count else change
            done = [t for t in loops(started, change, old_period) + loops(change, now, new_period)
                    if t >= now - window]
            total += ledger.window_rate(done, now, started, window)
        assert total <= max(old_rate, new_rate) * 1.05, (age, total)
        if age >= window:
            assert total == pytest.approx(new_rate, rel=0.05), (age, total)


def test_a_stopping_worker_claims_no_speed(redis_db):
    """Its last heartbeat outlives it by the TTL; the survivors' rates rise meanwhile."""
    book = ledger.Ledger(redis_db, "test-worker")
    book.started -= 2 * book.window
    for _ in range(20):
        book.record(None, 0.1, 0.1)
        time.sleep(0.01)
    with book.lock:
        assert book.heartbeat()["rate"] > 0
    book.close()
    book.flush()
    beat = json.loads(redis_db.get("dockercoins:worker:test-worker"))
    assert beat["rate"] == 0 and beat["hashes"] == 20
    assert int(redis_db.get("hashes")) == 20


# The seed's worker takes 36 MiB (issue 23); this one took 46 with requests and Flask, and takes
# 35.5 on this machine's Python 3.11 venv since it imports only what runs (ops_port.py,
# lean_requests.py). RSS is deterministic here to 0.1 MiB from run to run.
RSS_LIMIT_MIB = 36.0


def test_the_worker_stays_within_the_seeds_memory(stack):
    proc = start_worker(stack)
    try:
        import requests
        wait_for_more_hashes(proc, 30)
        for path in ("/metrics", "/healthz", "/readyz"):   # what the probes and a scrape run
            assert requests.get(proc.url + path, timeout=2).status_code == 200
        wait_for_more_hashes(proc, 5)
        status = dict(line.split(":", 1) for line in
                      open(f"/proc/{proc.pid}/status").read().splitlines())
        peak_mib = int(status["VmHWM"].split()[0]) / 1024
    finally:
        proc.stop()
    assert peak_mib <= RSS_LIMIT_MIB, f"the worker's peak RSS is {peak_mib:.1f} MiB"


def test_the_worker_imports_none_of_what_it_does_not_run():
    """Flask (7.5 MiB: the ops port is plain WSGI), charset_normalizer (3 MiB: requests' text
    decoding, never used) and statistics (0.6 MiB, for one median) stay out of the worker."""
    loaded = subprocess.run([sys.executable, "-c", (
        "import sys, worker, redis; print(*sorted(n for n, m in sys.modules.items() if m))")],
        check=True, capture_output=True, text=True, env={
            **os.environ, "PYTHONPATH": f"{IMAGES / 'worker'}:{IMAGES / 'common'}"}).stdout.split()
    assert {"requests", "urllib3", "redis", "prometheus_client"} <= set(loaded)
    assert not {"flask", "werkzeug", "jinja2", "charset_normalizer", "chardet",
                "statistics"} & set(loaded)
