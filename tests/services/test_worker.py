import hashlib
import json
import re
import signal
import time

import pytest

import worker as worker_module
from helpers.services import RedisServer
from localapp import gunicorn, metric, wait_until, worker


@pytest.fixture
def stack(tmp_path):
    """rng, hasher and a redis of its own (the outage test stops it)."""
    parts = {"redis": RedisServer(tmp_path), "rng": gunicorn("rng"),
             "hasher": gunicorn("hasher")}
    yield parts
    for name in ("rng", "hasher"):
        parts[name].stop()
    parts["redis"].close()


def start_worker(stack):
    return worker(stack["rng"].url + "/32", stack["hasher"].url + "/", stack["redis"].url)


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


def test_sigterm_flushes_and_exits_within_two_seconds(stack):
    proc = start_worker(stack)
    wait_for_more_hashes(proc, 5)
    elapsed, code, flushed = stop_and_final_count(proc)
    assert code == 0 and elapsed < 2.0, (code, elapsed)
    assert flushed is not None and flushed >= 5
    assert int(stack["redis"].client().get("hashes")) == flushed


def test_heartbeat_tells_rate_and_latency(stack):
    proc = start_worker(stack)
    try:
        wait_for_more_hashes(proc, 10)
        store = stack["redis"].client()
        keys = store.keys("dockercoins:worker:*")
        assert len(keys) == 1
        beat = json.loads(store.get(keys[0]))
        assert 0 < store.ttl(keys[0]) <= worker_module.HEARTBEAT_TTL_SECONDS
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
    assert worker_module.recent_rate(done, now=done[-1] + 0.1) == pytest.approx(1 / 0.3)
    # Stalled for 3 s: the rate falls instead of freezing at its last value.
    assert worker_module.recent_rate(done, now=done[-1] + 3.0) < 0.8 / 0.3
    assert worker_module.recent_rate(done[:1], now=11.0) == 0.0


def test_health_port_serves_probes_and_metrics(stack):
    proc = start_worker(stack)
    try:
        import requests
        assert requests.get(proc.url + "/healthz", timeout=2).status_code == 200
        assert requests.get(proc.url + "/readyz", timeout=2).status_code == 200
        assert requests.get(proc.url + "/nope", timeout=2).status_code == 404
        text = requests.get(proc.url + "/metrics", timeout=2).text
        for name in ("dockercoins_worker_hashes_total", "dockercoins_worker_coins_total",
                     'dockercoins_worker_errors_total{stage="rng"}',
                     "dockercoins_worker_call_duration_seconds_bucket"):
            assert name in text
    finally:
        proc.stop()
