"""gunicorn settings shared by rng, hasher and webui. Everything comes from env, so the image,
the chart and ci/up.sh differ only in environment variables."""
import os
import signal
import threading

# One process with threads per pod: prometheus_client needs no multiprocess mode, and rng's
# cap is per process, so GUNICORN_WORKERS=R behaves like R rng replicas. (ci/up.sh --rng R runs
# one process with RNG_CONCURRENCY=R instead: R replicas behind a balancer that picks a free one.)
bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
worker_class = "gthread"
# Enough threads that /healthz and /metrics never wait behind rng's queued /<n> calls.
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
# The heartbeat file goes to memory, so a read-only root filesystem works.
worker_tmp_dir = "/dev/shm"


def _access_log_on():
    raw = os.environ.get("ACCESS_LOG", "true").strip().lower()
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise SystemExit(f"ACCESS_LOG must be true or false, got {raw!r}")


# One line per request on stdout, as the seed's services print: the workshop watches them
# (`kubectl logs -f`) to see which replicas get traffic. Common Log Format. ACCESS_LOG=false
# turns it off (its CPU cost is below the bench's run-to-run noise: see the README).
accesslog = "-" if _access_log_on() else None
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s'
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
keepalive = 5
# gunicorn 27's control socket lives under $HOME, which a read-only root cannot hold.
control_socket_disable = True
graceful_timeout = 20

SHUTDOWN_DELAY_SECONDS = float(os.environ.get("SHUTDOWN_DELAY_SECONDS", "0"))


def post_worker_init(worker):
    """podinfo's shutdown: on SIGTERM answer /readyz 503 first, keep serving for
    SHUTDOWN_DELAY_SECONDS while endpoints drain, then let gunicorn stop gracefully."""
    readiness = worker.wsgi.extensions.get("readiness")

    def on_sigterm(sig, frame):
        if readiness is not None:
            readiness.start_shutdown()
        threading.Timer(SHUTDOWN_DELAY_SECONDS, worker.handle_exit, (sig, frame)).start()

    signal.signal(signal.SIGTERM, on_sigterm)
