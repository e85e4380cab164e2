"""webui: the dashboard, and /json with the numbers it draws: the speed read from redis
(speed.py) and the release's replica counts (cluster.py)."""
import threading
import time

import redis
from flask import Flask, jsonify, render_template

from cluster import Hidden, LocalView, one_line
from dockercoins_common import (Readiness, add_ops_routes, env_int, env_str, redis_client,
                                setup_logging)
from speed import SETTLE_SECONDS, SNAPSHOT_SCRIPT, Sampler, UnreportedRate, read_numbers, take_snapshot

MIB = 1024 * 1024


def settings():
    """The settings from env, read when the app is made (see docs/dashboard.md)."""
    return {
        "REDIS_URL": env_str("REDIS_URL", "redis://redis:6379/0"),
        # kubernetes (the chart), local (ci/up.sh: the counts below) or off.
        "CLUSTER_VIEW": env_str("CLUSTER_VIEW", "local"),
        "POD_NAMESPACE": env_str("POD_NAMESPACE", ""),  # the downward API, in the chart
        "RELEASE_NAME": env_str("RELEASE_NAME", ""),
        "KUBECONFIG": env_str("KUBECONFIG", None),  # outside a pod (tests, a laptop)
        # The watch is renewed this often, which also re-checks webui's permission.
        "CLUSTER_WATCH_SECONDS": env_int("CLUSTER_WATCH_SECONDS", 20, minimum=1),
        "LOCAL_RNG_REPLICAS": env_int("LOCAL_RNG_REPLICAS", None, minimum=0),
        "LOCAL_HASHER_REPLICAS": env_int("LOCAL_HASHER_REPLICAS", None, minimum=0),
    }


def create_app(config=None):
    app = Flask(__name__)
    app.config.update(settings())
    app.config.update(config or {})
    log = setup_logging("webui")
    # Short timeouts and no retries: the page polls every second anyway.
    store = redis_client(app.config["REDIS_URL"], socket_timeout=0.5,
                         socket_connect_timeout=0.5, retry_on_timeout=False)
    cluster = make_view(app.config)
    app.extensions["cluster_view"] = cluster  # tests stop its watch

    @app.get("/")
    @app.get("/index.html")  # the seed serves it, and the workshop fetches it
    def dashboard():
        return render_template("index.html")

    outages = OutageClock()
    snapshot = store.register_script(SNAPSHOT_SCRIPT)
    unreported = UnreportedRate()
    sampler = Sampler(lambda: unreported.add(*take_snapshot(snapshot)[1:]), unreported.hold)

    @app.get("/json")
    def numbers():
        try:
            data = read_numbers(snapshot, unreported)
            # A full redis refuses the workers' heartbeats too, so it shows as no heartbeat
            # within their 5 s TTL: only then is INFO asked, not on every poll.
            full = None if data["workers"] else full_problem(store)
        except redis.RedisError as error:
            outages.failed()
            unreported.hold()
            log.warning("redis unreachable: %s", error)
            return jsonify(error=f"redis unreachable: {error}", redis="unreachable",
                           now=time.time()), 503
        if full:
            # The workers' flushes and heartbeats are refused, so the heartbeats expire and
            # their speed would read a false 0: say why instead, with the counts redis holds.
            outages.failed()
            unreported.hold()
            return jsonify(error=full, redis="full", coins=data["coins"], hashes=data["hashes"],
                           now=data["now"]), 503
        if unreported.moving():
            sampler.poke()  # someone mines without heartbeats: sample faster than the polls
        data["settling"] = outages.settling(data["now"]) or data["warming"]
        data["cluster"] = cluster.data(data["workers"])  # memory only: never waits on the API
        return jsonify(data)

    # Readiness is webui's own: with redis down or full every replica stays in its Service,
    # and the page and /json say what is wrong (a check on the shared redis would take them
    # all out at once, and users would see a connection error instead).
    add_ops_routes(app, Readiness())
    return app


def full_problem(store):
    """A one-line message when redis refuses writes because it reached its maxmemory (policy
    `noeviction`, the chart's), else None. From INFO memory: used_memory less what redis does
    not count against the limit (replication and AOF buffers), against maxmemory (bytes; 0: no
    limit), as redis itself compares them before each write. Under an evicting policy redis
    stays at its limit and takes writes, so that is not "full"."""
    try:
        memory = store.info("memory")
    except redis.ResponseError:  # INFO renamed or denied by an ACL: cannot tell, say nothing
        return None
    limit = int(memory.get("maxmemory", 0))
    used = int(memory["used_memory"]) - int(memory.get("mem_not_counted_for_evict", 0))
    if not limit or used <= limit or memory.get("maxmemory_policy") != "noeviction":
        return None
    return (f"redis is full: {used / MIB:.1f} MiB used of its maxmemory {limit / MIB:.1f} MiB, "
            "so it refuses writes; the workers keep their pending hashes and coins until it has room")

def make_view(config):
    """The view the app's config asks for (keys CLUSTER_VIEW, POD_NAMESPACE, RELEASE_NAME,
    KUBECONFIG, CLUSTER_WATCH_SECONDS, LOCAL_RNG_REPLICAS, LOCAL_HASHER_REPLICAS; see webui.create_app)."""
    mode = config["CLUSTER_VIEW"]
    if mode == "local":
        return LocalView(config["LOCAL_RNG_REPLICAS"], config["LOCAL_HASHER_REPLICAS"])
    if mode == "off":
        return Hidden("the cluster view is off (webui.clusterView.enabled=false)")
    if mode != "kubernetes":
        return Hidden(f"CLUSTER_VIEW must be kubernetes, local or off, not {mode!r}")
    if not (config["POD_NAMESPACE"] and config["RELEASE_NAME"]):
        return Hidden("POD_NAMESPACE and RELEASE_NAME are not set")
    # The client only where the watch runs: importing it costs about 20 MiB.
    from kubernetes.config import ConfigException

    from clusterwatch import WatchedView, apis
    try:
        api = apis(config["KUBECONFIG"])
    except (ConfigException, OSError) as error:
        return Hidden(one_line(f"no Kubernetes credentials: {error}"))
    view = WatchedView(api, config["POD_NAMESPACE"], config["RELEASE_NAME"],
                       config["CLUSTER_WATCH_SECONDS"])
    view.start()
    return view


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
