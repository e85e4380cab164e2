"""The worker's small HTTP port: the same /healthz, /readyz and /metrics as every other
service (dockercoins_common.add_ops_routes), served by a threaded WSGI server beside the loop."""
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from flask import Flask
from prometheus_client.exposition import ThreadingWSGIServer

from dockercoins_common import add_ops_routes


def create_ops_app(alive, readiness):
    """Alive while alive() is true (the loop thread runs; no dependency calls); ready until
    shutdown starts, and only while alive."""
    def loop_problem():
        return None if alive() else "the mining loop is not running"
    return add_ops_routes(Flask("worker"), readiness, ready_check=loop_problem,
                          live_check=loop_problem)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # probes every few seconds would flood the log
        pass


def serve_ops(app, host, port):
    """Serve app on host:port in a daemon thread; returns the server (server_port is the
    port, also when port 0 asked for any)."""
    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, name="ops", daemon=True).start()
    return server
