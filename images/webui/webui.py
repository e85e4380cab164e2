"""webui: the dashboard, and /json with the numbers it draws, read from redis."""
import json
import statistics
import threading
import time

import redis
from flask import Flask, jsonify, render_template

from dockercoins_common import Readiness, add_ops_routes, env_str, redis_client, setup_logging

HEARTBEAT_PATTERN = "dockercoins:worker:*"  # written by each worker, see worker.py
RECENT_ERROR_SECONDS = 10.0
# After redis was unreachable, the workers' heartbeats (TTL 5 s) may have expired. Each worker
# writes its own again within about a second of its next flush, so for this long the sum of
# heartbeats may miss some workers: /json says "settling" and the page draws no point rather
# than a false fall in speed.
SETTLE_SECONDS = 2.5


def create_app(config=None):
    app = Flask(__name__)
    app.config.update(REDIS_URL=env_str("REDIS_URL", "redis://redis:6379/0"))
    app.config.update(config or {})
    log = setup_logging("webui")
    # Short timeouts and no retries: the page polls every second anyway.
    store = redis_client(app.config["REDIS_URL"], socket_timeout=0.5,
                         socket_connect_timeout=0.5, retry_on_timeout=False)

    @app.get("/")
    def dashboard():
        return render_template("index.html")

    outages = OutageClock()

    @app.get("/json")
    def numbers():
        try:
            data = read_numbers(store)
        except redis.RedisError as error:
            outages.failed()
            log.warning("redis unreachable: %s", error)
            return jsonify(error=f"redis unreachable: {error}", now=time.time()), 503
        data["settling"] = outages.settling(data["now"])
        return jsonify(data)

    def redis_problem():
        try:
            store.ping()
        except redis.RedisError as error:
            outages.failed()  # readiness probes notice an outage even with no page open
            return f"redis: {error}"
        return None

    add_ops_routes(app, Readiness(), ready_check=redis_problem)
    return app


class OutageClock:
    """When redis last came back after being unreachable (as this process saw it)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.down = False
        self.back_at = None

    def failed(self):
        with self.lock:
            self.down = True

    def settling(self, now):
        with self.lock:
            if self.down:
                self.down, self.back_at = False, now
            return self.back_at is not None and now - self.back_at < SETTLE_SECONDS


def read_numbers(store):
    """The seed's keys, plus what the workers' heartbeats say about speed and latency."""
    pipe = store.pipeline(transaction=False)
    pipe.hlen("wallet")
    pipe.get("hashes")
    coins, hashes = pipe.execute()
    beats = [json.loads(raw) for raw in mget_heartbeats(store) if raw]
    now = time.time()
    return {
        "coins": int(coins),
        "hashes": int(hashes or 0),
        "now": now,
        # The sum of each worker's own loop rate: exact, unlike a difference of a counter
        # that is flushed once a second (the seed's 4-4-4-0).
        "speed": round(sum(beat["rate"] for beat in beats), 3),
        "workers": len(beats),
        "rng_seconds": mean_of(beat["rng_seconds"] for beat in beats),
        "hasher_seconds": mean_of(beat["hasher_seconds"] for beat in beats),
        "errors": sorted({beat["error"]["stage"] for beat in beats if beat.get("error")
                          and now - beat["error"]["at"] < RECENT_ERROR_SECONDS}),
    }


def mget_heartbeats(store):
    keys = list(store.scan_iter(match=HEARTBEAT_PATTERN, count=1000))
    return store.mget(keys) if keys else []


def mean_of(values):
    values = [value for value in values if value is not None]
    return round(statistics.fmean(values), 4) if values else None
