"""The worker's small HTTP port: the same /healthz, /readyz and /metrics answers as every other
service (dockercoins_common.Probes), served by a threaded WSGI server beside the loop.

A plain WSGI app, not Flask: Flask, Werkzeug, Jinja2 and Click cost the worker about 7.5 MiB of
its memory for three fixed routes (docs/benchmarks.md)."""
import json
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.exposition import ThreadingWSGIServer

from dockercoins_common import REQUEST_DURATION, Probes

REASONS = {200: "200 OK", 404: "404 NOT FOUND", 405: "405 METHOD NOT ALLOWED",
           503: "503 SERVICE UNAVAILABLE"}


def create_ops_app(alive, readiness):
    """Alive while alive() is true (the loop thread runs; no dependency calls); ready until
    shutdown starts, and only while alive. GET (and HEAD) only; other paths 404."""
    def loop_problem():
        return None if alive() else "the mining loop is not running"
    probes = Probes(readiness, ready_check=loop_problem, live_check=loop_problem)
    routes = {"/healthz": probes.healthz, "/readyz": probes.readyz, "/metrics": metrics}

    def app(environ, start_response):
        started = time.perf_counter()
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        if path not in routes:
            body, status, content_type = json_answer({"error": "not found"}, 404)
        elif method not in ("GET", "HEAD"):
            body, status, content_type = json_answer({"error": "use GET"}, 405)
        else:
            body, status, content_type = routes[path]() if path == "/metrics" else (
                json_answer(*routes[path]()))
        start_response(REASONS[status], [("Content-Type", content_type),
                                         ("Content-Length", str(len(body)))])
        REQUEST_DURATION.labels(method, path if path in routes else "unmatched",
                                str(status)).observe(time.perf_counter() - started)
        return [b"" if method == "HEAD" else body]
    return app


def metrics():
    return generate_latest(), 200, CONTENT_TYPE_LATEST


def json_answer(answer, status):
    return json.dumps(answer).encode() + b"\n", status, "application/json"


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # probes every few seconds would flood the log
        pass


def serve_ops(app, host, port):
    """Serve app on host:port in a daemon thread; returns the server (server_port is the
    port, also when port 0 asked for any)."""
    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, name="ops", daemon=True).start()
    return server
