"""What every DockerCoins service shares: settings from env, logging, redis, and the
podinfo-style /healthz, /readyz and /metrics routes with a request-duration histogram.

One copy lives here; the images copy this file next to each service module.
"""
import logging
import os
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


def env_int(name, default, minimum=None):
    return _env_number(name, default, minimum, int, "an integer")


def env_float(name, default, minimum=None):
    return _env_number(name, default, minimum, float, "a number")


def _env_number(name, default, minimum, kind, what):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
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


def add_ops_routes(app, readiness, ready_check=None, live_check=None):
    """/healthz (alive, no dependency calls), /readyz (may check dependencies) and /metrics,
    plus the request-duration histogram on every route. ready_check and live_check return
    None when all is well, else a one-line problem that the probe answers with a 503."""
    from flask import g, request

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

    @app.get("/healthz")
    def healthz():
        problem = live_check() if live_check is not None else None
        if problem:
            return {"status": "not alive", "error": problem}, 503
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        if readiness.stopping:
            return {"status": "shutting down"}, 503
        if ready_check is not None:
            problem = ready_check()
            if problem:
                return {"status": "not ready", "error": problem}, 503
        return {"status": "ready"}

    @app.get("/metrics")
    def metrics():
        return generate_latest(), 200, {"Content-Type": CONTENT_TYPE_LATEST}

    app.extensions["readiness"] = readiness
    return app
