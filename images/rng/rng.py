"""rng: random bytes, slowly and one request at a time. It is the bottleneck of DockerCoins
on purpose: one process serves at most 1 / SLEEP_SECONDS requests a second.

The healthchecks chapter's faults (dockercoins_common.Faults) act inside THE CAP, where the
work is: the extra latency lengthens each turn, so the plateau falls to 1 / (SLEEP_SECONDS +
EXTRA_LATENCY_SECONDS) a second, as a slower rng would; a request failed on purpose has done
its work and held its turn, so FAILURE_RATE takes good answers away without adding capacity.
Requests shed with a 503 (saturated) never reach the faults."""
import os
import re
import threading
from contextlib import contextmanager

from flask import Flask, Response
from prometheus_client import Gauge

from dockercoins_common import (HOSTNAME, Faults, Readiness, add_ops_routes, env_int,
                                setup_logging)

SLEEP_SECONDS = 0.1  # the work each /<n> "costs"

WAITING = Gauge("dockercoins_rng_waiting_requests",
                "Requests (/<n> and /) waiting for the concurrency cap.")


def create_app(config=None):
    app = Flask(__name__)
    threads = env_int("GUNICORN_THREADS", 32, minimum=1)
    app.config.update(
        RNG_CONCURRENCY=env_int("RNG_CONCURRENCY", 1, minimum=1),
        RNG_MAX_BYTES=env_int("RNG_MAX_BYTES", 1024 * 1024, minimum=1),
        # Leave threads free for probes and metrics: past this, shed load with a 503.
        RNG_MAX_WAITING=env_int("RNG_MAX_WAITING", max(threads - 4, 1), minimum=1),
    )
    app.config.update(config or {})
    log = setup_logging("rng")
    faults = app.config.get("FAULTS") or Faults.from_env()

    # THE CAP. Enforced here, not by a server setting: Flask's dev server once went
    # multi-threaded by default and silently removed it.
    cap = threading.BoundedSemaphore(app.config["RNG_CONCURRENCY"])
    queue_slots = threading.BoundedSemaphore(
        app.config["RNG_CONCURRENCY"] + app.config["RNG_MAX_WAITING"])

    @contextmanager
    def turn():
        """Wait for a slot of THE CAP and hold it; None (answer 503) when too many wait."""
        if not queue_slots.acquire(blocking=False):
            yield None
            return
        try:
            with WAITING.track_inprogress():
                cap.acquire()
            try:
                yield True
            finally:
                cap.release()
        finally:
            queue_slots.release()

    # GET / (and HEAD /, which httping sends) waits its turn behind the same cap, as in the
    # seed's single-threaded rng: the workshop finds the culprit by timing it with httping.
    @app.get("/")
    def index():
        with turn() as served:
            if not served:
                return saturated()
        return Response(f"RNG running on {HOSTNAME}\n", mimetype="text/plain")

    @app.get("/<n>")
    def random_bytes(n):
        count = parse_count(n, app.config["RNG_MAX_BYTES"])
        if isinstance(count, str):
            return Response(count + "\n", status=400, mimetype="text/plain")
        with turn() as served:
            if not served:
                return saturated()
            faults.sleep(SLEEP_SECONDS)
            data, failure = os.urandom(count), faults.failure()
        if failure:
            return Response(failure, status=500, mimetype="text/plain")
        return Response(data, mimetype="application/octet-stream")

    add_ops_routes(app, Readiness(), switches=True)
    log.info("cap: %d request(s) at a time, %d more may wait",
             app.config["RNG_CONCURRENCY"], app.config["RNG_MAX_WAITING"])
    return app


def saturated():
    return Response("rng is saturated, try again\n", status=503, mimetype="text/plain",
                    headers={"Retry-After": "1"})


def parse_count(raw, maximum):
    """The byte count from the URL, or a message saying what is wrong with it."""
    if not re.fullmatch(r"-?[0-9]{1,12}", raw):
        return f"n must be a whole number of bytes, got {raw!r}"
    count = int(raw)
    if not 1 <= count <= maximum:
        return f"n must be between 1 and {maximum}, got {count}"
    return count
