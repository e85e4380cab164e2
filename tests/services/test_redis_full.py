"""A redis at its maxmemory with `noeviction` (the chart's default policy), for real: a real
redis-server started with a tiny maxmemory, real rng, hasher and worker processes, and webui.
redis refuses every write with OOM; the worker keeps mining, keeps its pending count and says
why in its log; /json answers 503 "redis is full" while /readyz stays 200; and once there is
room again every hash and coin lands exactly once. Also the figure the chart README's sizing
rests on: bytes per coin in redis."""
import hashlib
import os
import re
import signal
from pathlib import Path

import pytest
import redis as redis_py

import ledger
import webui
from helpers.services import RedisServer
from localapp import gunicorn, metric, wait_until, worker

TINY = ["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]
CHART_README = Path(__file__).resolve().parents[2] / "charts" / "dockercoins" / "README.md"


@pytest.fixture
def full_stack(tmp_path):
    parts = {"redis": RedisServer(tmp_path, TINY), "rng": gunicorn("rng"),
             "hasher": gunicorn("hasher")}
    yield parts
    for name in ("rng", "hasher"):
        parts[name].stop()
    parts["redis"].close()


def fill(store):
    """Filler keys of 10 kB until redis refuses one with OOM; their names. Right at the limit
    a small write still gets in now and then (the refused command's buffer is freed, a
    heartbeat expires), so the limit then goes 64 kB under what is used, as when someone
    lowers maxmemory on a full redis: every write is refused until there is room."""
    names = []
    while True:
        try:
            store.set(f"filler:{len(names)}", b"x" * 10_000)
        except redis_py.exceptions.OutOfMemoryError:
            break
        names.append(f"filler:{len(names)}")
    store.config_set("maxmemory", store.info("memory")["used_memory"] - 65_536)
    return names


def done(proc, name="hashes"):
    return metric(proc.url, f"dockercoins_worker_{name}_total")


def test_a_full_redis_keeps_the_count_in_the_worker_and_the_page_says_why(full_stack):
    stack, store = full_stack, full_stack["redis"].client()
    proc = worker(stack["rng"].url + "/32", stack["hasher"].url + "/", stack["redis"].url)
    client = webui.create_app({"TESTING": True, "REDIS_URL": stack["redis"].url}).test_client()
    try:
        wait_until(lambda: int(store.get("hashes") or 0) >= 5, 30, what="the first flushes")
        filler = fill(store)
        held = int(store.get("hashes"))
        mined = done(proc)
        wait_until(lambda: done(proc) >= mined + 10, 30, what="mining on while redis is full")
        assert int(store.get("hashes")) == held  # nothing lands, nothing is evicted

        # The workers' heartbeats (TTL 5 s) are refused too: once they are gone, webui asks.
        wait_until(lambda: client.get("/json").status_code == 503, 10, what="/json saying full")
        answer = client.get("/json")
        body = answer.get_json()
        assert body["redis"] == "full" and body["error"].startswith("redis is full: "), body
        assert re.match(r"redis is full: [\d.]+ MiB used of its maxmemory [\d.]+ MiB", body["error"])
        assert body["hashes"] == held and body["coins"] == store.hlen("wallet")
        assert client.get("/readyz").status_code == 200  # webui stays in its Service
        kept = re.findall(r"redis is full \(OOM\): keeping (\d+) pending hashes", proc.output())
        assert kept and int(kept[-1]) > 0, proc.output()[-2000:]
        assert proc.proc.poll() is None  # no crash, no restart

        store.delete(*filler)  # room again: the kept batch lands once
        wait_until(lambda: int(store.get("hashes")) >= done(proc) - 10, 15,
                   what="the kept count reaching redis")
        wait_until(lambda: client.get("/json").status_code == 200, 10, what="/json back to 200")
    finally:
        proc.signal(signal.SIGTERM)
        proc.proc.wait(10)
        code = proc.stop()
    flushed = int(re.search(r"final flush done: (\d+) loops", proc.output()).group(1))
    assert code == 0 and int(store.get("hashes")) == flushed  # never lost, never twice


def test_only_a_refusing_redis_counts_as_full(full_stack):
    """An evicting policy keeps redis at its limit and takes writes: that is no outage."""
    store = full_stack["redis"].client()
    client = webui.create_app({"TESTING": True, "REDIS_URL": full_stack["redis"].url}).test_client()
    fill(store)
    assert client.get("/json").get_json()["redis"] == "full"
    store.config_set("maxmemory-policy", "allkeys-lru")
    assert client.get("/json").status_code == 200
    store.config_set("maxmemory-policy", "noeviction")
    store.config_set("maxmemory", "0")  # no limit
    assert client.get("/json").status_code == 200


def test_a_refused_flush_raises_redis_full_and_keeps_the_batch_whole(full_stack):
    store = full_stack["redis"].client()
    book = ledger.Ledger(store, "w1")
    fill(store)
    for n in range(3):
        book.record(("0" + "%063x" % n, b"\x01" * 32), 0.1, 0.1)
    with pytest.raises(ledger.RedisFull, match=r"keeping 3 pending hashes and 3 coins"):
        book.flush()
    book.record(None, 0.1, 0.1)
    with pytest.raises(ledger.RedisFull, match=r"keeping 4 pending hashes and 3 coins"):
        book.flush()
    assert store.get("hashes") is None and store.hlen("wallet") == 0  # nothing half-written
    store.config_set("maxmemory", "0")
    book.flush()
    book.flush()
    assert int(store.get("hashes")) == 4 and store.hlen("wallet") == 3


def coin():
    random_bytes = os.urandom(32)
    return "0" + hashlib.sha256(random_bytes).hexdigest()[1:], random_bytes


def test_bytes_per_coin_is_the_chart_readmes_figure(redis_server, redis_db):
    """The worker's own flushes of 100,000 coins (a 64-hex digest and 32 random bytes each)
    into `wallet`: what maxmemory counts (used_memory) per coin is the README's figure."""
    documented = int(re.search(r"about (\d+) bytes of redis memory per coin",
                               CHART_README.read_text()).group(1))
    book = ledger.Ledger(redis_db, "w1")
    base = redis_db.info("memory")["used_memory"]
    count = 100_000
    for n in range(count):
        book.record(coin(), 0.1, 0.1)
        if n % 500 == 499:
            book.flush()
    book.flush()
    assert redis_db.hlen("wallet") == count
    per_coin = (redis_db.info("memory")["used_memory"] - base) / count
    # The hash table doubles at powers of two, so this moves by ~10% with the count.
    assert per_coin == pytest.approx(documented, rel=0.15), per_coin
