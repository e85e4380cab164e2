"""worker: the miner. Loop: sleep (WORKER_SLEEP_SECONDS, 0.1 s by default: the rollout
chapter makes a slower worker with it), get random bytes from rng, hash them with hasher, keep
the coins (see is_coin). About once a second it adds its loop count to redis `hashes` (the
exactly-once ledger is in ledger.py). A small HTTP port serves /healthz, /readyz and
/metrics, as every other service does.
"""
import logging
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from http_calls import Failures, StageError, call, http_session, prepare
from dockercoins_common import (HOSTNAME, LATENCY_BUCKETS, ConfigError, Readiness, env_float,
                                env_int, env_str, redis_client, setup_logging)
from ledger import Ledger
from ops_port import create_ops_app, serve_ops

FLUSH_INTERVAL_SECONDS = 1.0    # how often the count goes to redis
SHUTDOWN_BUDGET_SECONDS = 1.5   # SIGTERM to exit, with the final flush, stays under 2 s

log = logging.getLogger("worker")


@dataclass(frozen=True)
class Settings:
    rng_url: str = "http://rng/32"
    hasher_url: str = "http://hasher/"
    redis_url: str = "redis://redis:6379/0"
    metrics_port: int = 8080
    metrics_host: str = ""          # "": every interface, as a pod needs
    loop_sleep: float = 0.1         # seconds: the pause at the top of each loop
    connect_timeout: float = 1.0    # seconds
    # rng queues requests behind its cap: at 10 workers on one rng a call waits ~0.8 s.
    read_timeout: float = 5.0       # seconds
    # The kubelet's default terminationMessagePath: it keeps what is written there in the pod's
    # status (`kubectl describe pod`: Last State), even when the pod's logs are gone.
    termination_message_path: str = "/dev/termination-log"


def load_settings():
    """Settings from the environment; ConfigError names a malformed one."""
    return Settings(
        rng_url=env_str("RNG_URL", Settings.rng_url),
        hasher_url=env_str("HASHER_URL", Settings.hasher_url),
        redis_url=env_str("REDIS_URL", Settings.redis_url),
        metrics_port=env_int("METRICS_PORT", Settings.metrics_port, minimum=0),
        metrics_host=env_str("METRICS_HOST", Settings.metrics_host),
        loop_sleep=env_float("WORKER_SLEEP_SECONDS", Settings.loop_sleep, minimum=0.0,
                             maximum=60.0),
        connect_timeout=env_float("CONNECT_TIMEOUT_SECONDS", Settings.connect_timeout,
                                  minimum=0.01),
        read_timeout=env_float("READ_TIMEOUT_SECONDS", Settings.read_timeout, minimum=0.01),
        termination_message_path=env_str("TERMINATION_MESSAGE_PATH",
                                         Settings.termination_message_path))


def is_coin(digest):
    """THE COIN RULE, the seed's: a coin is a hex SHA-256 digest that starts with "0" (one
    hash in 16)."""
    return digest.startswith("0")


# --- metrics ------------------------------------------------------------------------------
HASHES = Counter("dockercoins_worker_hashes", "Loops this worker completed (one hash each).")
COINS = Counter("dockercoins_worker_coins", "Coins this worker found.")
ERRORS = Counter("dockercoins_worker_errors",
                 "Failed attempts at a call by stage, the ones retried included.", ["stage"])
CALL_DURATION = Histogram("dockercoins_worker_call_duration_seconds",
                          "Time for rng or hasher to answer, as this worker sees it.",
                          ["target"], buckets=LATENCY_BUCKETS)
# Series exist from the start at 0, so rate() and alerts see them before the first event.
for _stage in ("rng", "hasher", "redis"):
    ERRORS.labels(_stage)
for _target in ("rng", "hasher"):
    CALL_DURATION.labels(_target)


class Miner:
    def __init__(self, settings=None, redis=None):
        self.settings = settings or load_settings()
        self.timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        self.http = http_session()
        self.failures = {stage: Failures(ERRORS.labels(stage))
                         for stage in ("rng", "hasher", "redis")}
        # No keep-alive to rng: kube-proxy balances connections, not requests, so a kept
        # connection would never move to a new rng replica and the plateau would not lift.
        self.rng_request = prepare(self.http, "GET", self.settings.rng_url,
                                   {"Connection": "close"}, self.failures["rng"])
        self.hasher_request = prepare(self.http, "POST", self.settings.hasher_url,
                                      {"Content-Type": "application/octet-stream"},
                                      self.failures["hasher"])
        self.call_duration = {target: CALL_DURATION.labels(target)  # looked up once
                              for target in ("rng", "hasher")}
        self.worker_id = f"{HOSTNAME}-{uuid.uuid4().hex[:8]}"  # new per start: seq restarts
        self.ledger = Ledger(redis or redis_client(self.settings.redis_url), self.worker_id)
        self.stop = threading.Event()
        self.loop_thread = None

    # --- the loop ---
    def mine_once(self):
        started = time.monotonic()
        random_bytes = self.call("rng", self.rng_request)  # a new connection: see __init__
        rng_done = time.monotonic()
        digest = self.call("hasher", self.hasher_request, random_bytes).decode()
        coin = (digest, random_bytes) if is_coin(digest) else None
        if self.ledger.record(coin, rng_done - started, time.monotonic() - rng_done):
            HASHES.inc()
            if coin:
                COINS.inc()
                log.info("Coin found: %s", digest)

    def call(self, stage, prepared, body=None):
        """The response body, or StageError once the retries are spent."""
        started = time.monotonic()
        answer = call(self.http, stage, prepared, self.timeout, body, self.failures[stage])
        self.call_duration[stage].observe(time.monotonic() - started)
        return answer

    def flush(self, wait_seconds=-1):
        """Hand pending loops to redis; StageError('redis') if redis did not confirm."""
        try:
            self.ledger.flush(wait_seconds)
        except Exception as error:  # redis-py raises several families; all mean retry
            self.failures["redis"].add()
            raise StageError("redis", error) from error

    def repeat(self, interval, action):
        """Call action every interval until stopped; a failure is counted and logged, and
        the loop goes on: the retries with backoff are inside each call."""
        while not self.stop.wait(interval):
            try:
                action()
            except StageError as error:
                self.record_error(error)

    def record_error(self, error):
        """A call that failed after its retries (the metric counted its attempts)."""
        self.ledger.last_error = {"stage": error.stage, "at": time.time()}
        log.warning("%s", error)

    # --- start and stop ---
    def start(self):
        self.ledger.started = time.monotonic()
        self.loop_thread = threading.Thread(
            target=self.repeat, args=(self.settings.loop_sleep, self.mine_once), name="loop",
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
        self.ledger.close()  # a call still running will not be counted
        self.flush_thread.join(timeout=max(0.0, deadline - time.monotonic() - 0.5))
        while not self.ledger.settled:
            if time.monotonic() >= deadline:
                log.error("redis did not take the final flush; %d loops were not counted",
                          self.ledger.unconfirmed)
                return False
            try:
                self.flush(wait_seconds=max(0.0, deadline - time.monotonic()))
            except StageError as error:
                self.record_error(error)
                time.sleep(0.1)
        done = f"final flush done: {self.ledger.loops_done} loops in all"
        log.info("%s", done)
        self.write_termination_message(done)
        return True

    def write_termination_message(self, text):
        """TEXT as the container's termination message, when the kubelet made its file (in a
        pod; elsewhere the path is absent and nothing is written)."""
        path = self.settings.termination_message_path
        if os.path.exists(path):
            with open(path, "w", encoding="utf-8") as message:
                message.write(text + "\n")

    def alive(self):
        return self.loop_thread is not None and self.loop_thread.is_alive()


def main():
    setup_logging("worker")
    try:
        miner = Miner()
    except ConfigError as error:
        raise SystemExit(f"worker: {error}") from None
    readiness = Readiness()
    server = serve_ops(create_ops_app(miner.alive, readiness), miner.settings.metrics_host,
                       miner.settings.metrics_port)
    stop_requested = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_requested.set())
    miner.start()
    log.info("worker %s: rng %s, hasher %s, loop sleep %g s, metrics on :%d", miner.worker_id,
             miner.settings.rng_url, miner.settings.hasher_url, miner.settings.loop_sleep,
             server.server_port)
    stop_requested.wait()
    log.info("stopping")
    readiness.start_shutdown()
    flushed = miner.shutdown()
    logging.shutdown()
    raise SystemExit(0 if flushed else 1)


if __name__ == "__main__":
    main()
