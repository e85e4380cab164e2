"""worker: the miner. Loop: sleep, get random bytes from rng, hash them with hasher, keep the
coins (hashes starting with "0"). About once a second it adds its loop count to redis `hashes`.

Counting is exact: loops not yet in redis are kept until redis takes them, and each flush
carries a sequence number that redis checks, so a flush retried after a lost reply is
counted once.
"""
import json
import logging
import signal
import statistics
import threading
import time
import uuid
from collections import deque
from wsgiref.simple_server import WSGIRequestHandler, make_server

import urllib3
from prometheus_client import Counter, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from urllib3.util.retry import Retry

from dockercoins_common import (HOSTNAME, LATENCY_BUCKETS, env_float, env_int, env_str,
                                redis_client, setup_logging)

# --- settings -----------------------------------------------------------------------------
RNG_URL = env_str("RNG_URL", "http://rng/32")
HASHER_URL = env_str("HASHER_URL", "http://hasher/")
REDIS_URL = env_str("REDIS_URL", "redis://redis:6379/0")
METRICS_PORT = env_int("METRICS_PORT", 8080, minimum=0)
METRICS_HOST = env_str("METRICS_HOST", "")  # "": every interface, as a pod needs
LOOP_SLEEP_SECONDS = 0.1        # the pause at the top of each loop
FLUSH_INTERVAL_SECONDS = 1.0    # how often the count goes to redis
CONNECT_TIMEOUT = env_float("CONNECT_TIMEOUT_SECONDS", 1.0, minimum=0.01)
# rng queues requests behind its cap: at 10 workers on one rng a call waits ~0.8 s.
READ_TIMEOUT = env_float("READ_TIMEOUT_SECONDS", 5.0, minimum=0.01)
RATE_WINDOW_SECONDS = 10.0      # the speed and latencies in the heartbeat cover this long
HEARTBEAT_TTL_SECONDS = 5       # a worker gone quiet this long no longer counts as active
FLUSH_SEQ_TTL_SECONDS = 3600
SHUTDOWN_BUDGET_SECONDS = 1.5   # SIGTERM to exit, with the final flush, stays under 2 s

WORKER_ID = f"{HOSTNAME}-{uuid.uuid4().hex[:8]}"  # new per start: the flush sequence restarts
log = setup_logging("worker")

# --- metrics ------------------------------------------------------------------------------
HASHES = Counter("dockercoins_worker_hashes", "Loops this worker completed (one hash each).")
COINS = Counter("dockercoins_worker_coins", "Coins this worker found.")
ERRORS = Counter("dockercoins_worker_errors", "Failed calls, after retries, by stage.",
                 ["stage"])
CALL_DURATION = Histogram("dockercoins_worker_call_duration_seconds",
                          "Time for rng or hasher to answer, as this worker sees it.",
                          ["target"], buckets=LATENCY_BUCKETS)
# Series exist from the start at 0, so rate() and alerts see them before the first event.
for _stage in ("rng", "hasher", "redis"):
    ERRORS.labels(_stage)
for _target in ("rng", "hasher"):
    CALL_DURATION.labels(_target)

# One Lua script, so the count, the coins, the sequence check and the heartbeat land
# together or not at all.
FLUSH_SCRIPT = """
local seq = tonumber(ARGV[1])
local applied = seq > tonumber(redis.call('GET', KEYS[2]) or '0')
if applied then
  redis.call('INCRBY', KEYS[1], ARGV[2])
  for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1]) end
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
end
redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5])
return applied and 1 or 0
"""


class StageError(Exception):
    def __init__(self, stage, error):
        super().__init__(f"{stage}: {error}")
        self.stage = stage


def http_pool():
    """urllib3 (the transport under requests, at half its CPU per call) with timeouts on
    every call and retries with exponential backoff on connection errors and 5xx."""
    retry = Retry(total=5, connect=5, read=2, status=5, backoff_factor=0.1, backoff_max=2.0,
                  status_forcelist=(500, 502, 503, 504), allowed_methods=None,
                  respect_retry_after_header=False)
    return urllib3.PoolManager(
        num_pools=4, maxsize=2, retries=retry,
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT))


class Miner:
    def __init__(self, rng_url=RNG_URL, hasher_url=HASHER_URL, redis=None):
        self.rng_url, self.hasher_url = rng_url, hasher_url
        self.http = http_pool()
        self.redis = redis or redis_client(REDIS_URL)
        self.flush_script = self.redis.register_script(FLUSH_SCRIPT)
        self.stop = threading.Event()
        self.lock = threading.Lock()      # guards the counts below
        self.flush_lock = threading.Lock()  # one flush at a time
        self.pending_count = 0            # loops done, not yet handed to redis
        self.pending_coins = {}
        self.in_flight = None             # (seq, count, coins) sent but not confirmed
        self.seq = 0
        self.loops_done = 0
        self.closed = False               # after the final flush nothing more is counted
        self.recent = deque()             # (done at, rng seconds, hasher seconds)
        self.last_error = None
        self.loop_thread = None

    # --- the loop ---
    def mine_once(self):
        started = time.monotonic()
        random_bytes = self.call("rng", "GET", self.rng_url, headers={"Connection": "close"})
        # No keep-alive to rng: kube-proxy balances connections, not requests, so a kept
        # connection would never move to a new rng replica and the plateau would not lift.
        rng_done = time.monotonic()
        digest = self.call("hasher", "POST", self.hasher_url, body=random_bytes,
                           headers={"Content-Type": "application/octet-stream"}).decode()
        done = time.monotonic()
        with self.lock:
            if self.closed:
                return
            self.pending_count += 1
            self.loops_done += 1
            HASHES.inc()
            if digest.startswith("0"):  # THE COIN RULE
                self.pending_coins[digest] = random_bytes
                COINS.inc()
                log.info("Coin found: %s", digest)
            self.recent.append((done, rng_done - started, done - rng_done))

    def call(self, stage, method, url, **kwargs):
        """The response body, or StageError once the retries are spent."""
        started = time.monotonic()
        try:
            response = self.http.request(method, url, **kwargs)
        except urllib3.exceptions.HTTPError as error:
            raise StageError(stage, error) from error
        if response.status != 200:
            raise StageError(stage, f"HTTP {response.status}: {response.data[:200]!r}")
        CALL_DURATION.labels(stage).observe(time.monotonic() - started)
        return response.data

    def repeat(self, interval, action):
        """Call action every interval until stopped; a failure is counted and logged, and
        the loop goes on: the retries with backoff are inside each call."""
        while not self.stop.wait(interval):
            try:
                action()
            except StageError as error:
                self.record_error(error)

    def record_error(self, error):
        ERRORS.labels(error.stage).inc()
        self.last_error = {"stage": error.stage, "at": time.time()}
        log.warning("%s", error)

    # --- flushing ---
    def flush(self, wait_seconds=-1):
        """Hand pending loops to redis, with a heartbeat. Raises StageError('redis') if redis
        did not confirm; the batch is then sent again, unchanged, next time."""
        if not self.flush_lock.acquire(timeout=wait_seconds):
            raise StageError("redis", "the previous flush is still waiting for redis")
        try:
            with self.lock:
                if self.in_flight is None and (self.pending_count or self.pending_coins):
                    self.seq += 1
                    self.in_flight = (self.seq, self.pending_count, self.pending_coins)
                    self.pending_count, self.pending_coins = 0, {}
                heartbeat = self.heartbeat()
            seq, count, coins = self.in_flight or (0, 0, {})
            coin_args = [item for pair in coins.items() for item in pair]
            try:
                self.flush_script(
                    keys=["hashes", f"dockercoins:flushseq:{WORKER_ID}",
                          f"dockercoins:worker:{WORKER_ID}", "wallet"],
                    args=[seq, count, FLUSH_SEQ_TTL_SECONDS, json.dumps(heartbeat),
                          HEARTBEAT_TTL_SECONDS, *coin_args])
            except Exception as error:  # redis-py raises several families; all mean retry
                raise StageError("redis", error) from error
            self.in_flight = None
        finally:
            self.flush_lock.release()

    def heartbeat(self):
        """What the dashboard shows about this worker. Call with self.lock held."""
        now = time.monotonic()
        while self.recent and self.recent[0][0] < now - RATE_WINDOW_SECONDS:
            self.recent.popleft()
        return {"id": WORKER_ID, "rate": recent_rate([r[0] for r in self.recent], now),
                "rng_seconds": median_or_none([r[1] for r in self.recent]),
                "hasher_seconds": median_or_none([r[2] for r in self.recent]),
                "hashes": self.loops_done, "error": self.last_error, "at": time.time()}

    # --- start and stop ---
    def start(self):
        self.loop_thread = threading.Thread(
            target=self.repeat, args=(LOOP_SLEEP_SECONDS, self.mine_once), name="loop",
            daemon=True)
        self.flush_thread = threading.Thread(
            target=self.repeat, args=(FLUSH_INTERVAL_SECONDS, self.flush), name="flush",
            daemon=True)
        self.loop_thread.start()
        self.flush_thread.start()

    def shutdown(self):
        """Stop taking work, let the current loop end if it is quick, flush, return."""
        deadline = time.monotonic() + SHUTDOWN_BUDGET_SECONDS
        self.stop.set()
        self.loop_thread.join(timeout=0.5)
        with self.lock:
            self.closed = True  # a call still running will not be counted
        self.flush_thread.join(timeout=max(0.0, deadline - time.monotonic() - 0.5))
        while self.in_flight or self.pending_count or self.pending_coins:
            if time.monotonic() >= deadline:
                log.error("redis did not take the final flush; %d loops were not counted",
                          self.pending_count + (self.in_flight[1] if self.in_flight else 0))
                return False
            try:
                self.flush(wait_seconds=max(0.0, deadline - time.monotonic()))
            except StageError as error:
                self.record_error(error)
                time.sleep(0.1)
        log.info("final flush done: %d loops in all", self.loops_done)
        return True

    def alive(self):
        return self.loop_thread is not None and self.loop_thread.is_alive()


def recent_rate(done_times, now):
    """Loops per second from completion times. Counting whole loops in a fixed window jitters
    (the seed's 4-4-4-0); the time between the first and last loop does not. A gap longer
    than a usual loop means hashing slowed or stopped, so it counts too."""
    if len(done_times) < 2:
        return 0.0
    loops = len(done_times) - 1
    span = done_times[-1] - done_times[0]
    period = span / loops
    span += max(0.0, (now - done_times[-1]) - period)
    return loops / span if span > 0 else 0.0


def median_or_none(values):
    return round(statistics.median(values), 4) if values else None


# --- the small HTTP port: health and metrics ----------------------------------------------
def ops_app(miner):
    metrics_app = make_wsgi_app()

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/healthz":  # alive: the loop thread runs; no dependency calls
            ok = miner.alive()
        elif path == "/readyz":
            ok = miner.alive() and not miner.stop.is_set()
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: the worker serves /healthz, /readyz and /metrics\n"]
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps({"status": "ok" if ok else "unavailable"}).encode()]
    return app


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # probes every few seconds would flood the log
        pass


def main():
    miner = Miner()
    server = make_server(METRICS_HOST, METRICS_PORT, ops_app(miner), ThreadingWSGIServer,
                         handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, name="ops", daemon=True).start()
    stop_requested = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_requested.set())
    miner.start()
    log.info("worker %s: rng %s, hasher %s, metrics on :%d", WORKER_ID, RNG_URL, HASHER_URL,
             server.server_port)
    stop_requested.wait()
    log.info("stopping")
    flushed = miner.shutdown()
    logging.shutdown()
    raise SystemExit(0 if flushed else 1)


if __name__ == "__main__":
    main()
