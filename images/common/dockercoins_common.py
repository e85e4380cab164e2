"""What every DockerCoins service shares: settings from env, logging, redis, the
podinfo-style /healthz, /readyz and /metrics routes with a request-duration histogram, and the
faults the workshop's healthchecks chapter switches on (Faults, and the probes' on-purpose
switches: POST /healthz/disable and /readyz/disable, as podinfo's /readyz/disable).

One copy lives here; the images copy this file next to each service module.
"""
import logging
import os
import random
import socket
import threading
import time

from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest

# Buckets around the 0.1 s sleeps of rng and hasher, and up to the rng queue at a plateau.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.11, 0.125, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0,
                   1.5, 2.0, 3.0, 5.0, 10.0)

HOSTNAME = socket.gethostname()

# One histogram per process, for every route of the service (RED method, as podinfo does).
REQUEST_DURATION = Histogram(
    "http_request_duration_seconds", "Time to answer an HTTP request, queueing included.",
    ["method", "route", "status"], buckets=LATENCY_BUCKETS)


class ConfigError(ValueError):
    """A setting from the environment is missing or malformed."""


def env_str(name, default):
    return os.environ.get(name, default)


def env_int(name, default, minimum=None, maximum=None):
    return _env_number(name, default, minimum, maximum, int, "an integer")


def env_float(name, default, minimum=None, maximum=None):
    return _env_number(name, default, minimum, maximum, float, "a number")


def _env_number(name, default, minimum, maximum, kind, what):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value}")
    if value != value or value in (float("inf"), float("-inf")):  # nan, inf
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    return value


def setup_logging(service):
    """One line per event on stdout, where kubectl logs and honcho look."""
    logging.basicConfig(
        level=env_str("LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s {service} %(levelname)s %(message)s")
    return logging.getLogger(service)


def redis_client(url, **timeouts):
    """A redis client with timeouts on every call. REDIS_PASSWORD, when set, wins over the
    URL, so the chart can take it from a Secret without building URLs."""
    import redis  # imported here: rng and hasher do not need redis at all
    options = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0,
               "health_check_interval": 30}
    options.update(timeouts)
    password = os.environ.get("REDIS_PASSWORD")
    if password:
        options["password"] = password
    return redis.Redis.from_url(url, **options)


class Readiness:
    """Ready until shutdown starts. SIGTERM flips it, so endpoints drain before we stop."""

    def __init__(self):
        self._stopping = threading.Event()

    def start_shutdown(self):
        self._stopping.set()

    @property
    def stopping(self):
        return self._stopping.is_set()


ON_PURPOSE = "disabled on purpose: POST /{0}/enable to recover"


class Probes:
    """What /healthz and /readyz answer, as (JSON body, HTTP status), for the Flask services and
    the worker's plain WSGI port alike. live_check and ready_check return None when all is
    well, else a one-line problem, answered with a 503. Each probe can also be failed on
    purpose (the healthchecks chapter): disable("healthz") until enable("healthz")."""

    def __init__(self, readiness, ready_check=None, live_check=None):
        self.readiness, self.ready_check, self.live_check = readiness, ready_check, live_check
        self.disabled = set()   # "healthz", "readyz": failing on purpose

    def enable(self, probe):
        self.disabled.discard(probe)
        return {"status": f"{probe} enabled"}, 200

    def disable(self, probe):
        self.disabled.add(probe)
        return {"status": f"{probe} disabled: it answers 503 until POST /{probe}/enable"}, 200

    def healthz(self):
        if "healthz" in self.disabled:
            return {"status": "not alive", "error": ON_PURPOSE.format("healthz")}, 503
        problem = self.live_check() if self.live_check is not None else None
        if problem:
            return {"status": "not alive", "error": problem}, 503
        return {"status": "ok"}, 200

    def readyz(self):
        if self.readiness.stopping:
            return {"status": "shutting down"}, 503
        if "readyz" in self.disabled:
            return {"status": "not ready", "error": ON_PURPOSE.format("readyz")}, 503
        problem = self.ready_check() if self.ready_check is not None else None
        if problem:
            return {"status": "not ready", "error": problem}, 503
        return {"status": "ready"}, 200


class Faults:
    """Faults on purpose in each work request of rng and hasher, off by default:
    EXTRA_LATENCY_SECONDS (seconds added to the request's sleep; >= 0) and FAILURE_RATE (the
    fraction of work requests answered 500, 0 to 1). ConfigError names a bad value."""

    def __init__(self, extra_latency_seconds=0.0, failure_rate=0.0):
        self.extra_latency_seconds, self.failure_rate = extra_latency_seconds, failure_rate

    @classmethod
    def from_env(cls):
        return cls(env_float("EXTRA_LATENCY_SECONDS", 0.0, minimum=0.0, maximum=60.0),
                   env_float("FAILURE_RATE", 0.0, minimum=0.0, maximum=1.0))

    def sleep(self, seconds):
        """The request's work: `seconds`, plus the extra latency."""
        time.sleep(seconds + self.extra_latency_seconds)

    def failure(self):
        """A message when this request is to fail on purpose (answer it 500), else None."""
        if self.failure_rate and random.random() < self.failure_rate:
            return f"failed on purpose: FAILURE_RATE is {self.failure_rate}\n"
        return None


def add_ops_routes(app, readiness, ready_check=None, live_check=None, switches=False):
    """/healthz (alive, no dependency calls), /readyz (may check dependencies) and /metrics,
    plus the request-duration histogram on every route (answers: Probes). With switches,
    POST /healthz/disable, /healthz/enable, /readyz/disable and /readyz/enable make a probe
    fail on purpose and recover: POST only, so a GET (a browser, a crawler) never flips them."""
    from flask import g, request

    probes = Probes(readiness, ready_check, live_check)

    @app.before_request
    def _start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = g.pop("request_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule else "unmatched"
            REQUEST_DURATION.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - started)
        return response

    app.get("/healthz")(probes.healthz)
    app.get("/readyz")(probes.readyz)

    if switches:
        for probe in ("healthz", "readyz"):
            for action in ("enable", "disable"):
                app.add_url_rule(f"/{probe}/{action}", f"{probe}_{action}", methods=["POST"],
                                 view_func=lambda probe=probe, action=action:
                                 getattr(probes, action)(probe))

    @app.get("/metrics")
    def metrics():
        return generate_latest(), 200, {"Content-Type": CONTENT_TYPE_LATEST}

    app.extensions["readiness"] = readiness
    app.extensions["probes"] = probes
    return app
