"""hasher: SHA-256 of the request body, slowly but concurrently, so it never limits the
hashing speed: each request sleeps on its own thread. The healthchecks chapter's faults
(dockercoins_common.Faults) add to that sleep and fail a fraction of the hashes with a 500."""
import hashlib

from flask import Flask, Response, request

from dockercoins_common import (HOSTNAME, Faults, Readiness, add_ops_routes, env_int,
                                setup_logging)

SLEEP_SECONDS = 0.1  # the work each hash "costs"


def create_app(config=None):
    app = Flask(__name__)
    # Flask answers 413 by itself for bodies past MAX_CONTENT_LENGTH.
    app.config.update(MAX_CONTENT_LENGTH=env_int("HASHER_MAX_BYTES", 64 * 1024, minimum=1))
    app.config.update(config or {})
    setup_logging("hasher")
    faults = app.config.get("FAULTS") or Faults.from_env()

    @app.get("/")
    def index():
        return Response(f"HASHER running on {HOSTNAME}\n", mimetype="text/plain")

    @app.post("/")
    def hash_body():
        body = request.get_data(cache=False)
        faults.sleep(SLEEP_SECONDS)
        failure = faults.failure()
        if failure:
            return Response(failure, status=500, mimetype="text/plain")
        return Response(hashlib.sha256(body).hexdigest(), mimetype="text/plain")

    @app.errorhandler(413)
    def too_large(error):
        limit = app.config["MAX_CONTENT_LENGTH"]
        return Response(f"body too large: at most {limit} bytes\n", status=413,
                        mimetype="text/plain")

    add_ops_routes(app, Readiness(), switches=True)
    return app
