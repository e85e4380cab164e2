"""The DaemonSet and cluster-access chapters as the course types them, on the real node.

The DaemonSet chapter writes its rng DaemonSet from a bare Deployment's YAML (`kubectl create
deployment rng --image=... -o yaml`, the kind changed, replicas and strategy removed): its pods
carry only `app: rng`, with no ports and no probes. They must join the chart's rng Service beside
the chart's own rng pod and lift the plateau. The cluster-access chapter opens the dashboard
through the API server's service proxy with no port in the path."""
import json

import yaml

from helpers import figures
from helpers.node import steady_speed
from localapp import wait_until
from dockercoins_lab.scaling import model, random_balancing

WORKERS = 10   # saturate one rng: model min(33.3, 10) = 10 hashes/s


def chapter_daemonset(app, image):
    """The chapter's rng DaemonSet: kubectl's bare Deployment with the kind changed."""
    bare = yaml.safe_load(app.kubectl("create", "deployment", "rng", f"--image={image}",
                                      "--dry-run=client", "-o", "yaml"))
    bare["kind"] = "DaemonSet"
    del bare["spec"]["replicas"], bare["spec"]["strategy"], bare["status"]
    return bare


def ready_rng_endpoints(app):
    slices = json.loads(app.kubectl("get", "endpointslices", "-l",
                                    "kubernetes.io/service-name=rng", "-o", "json"))["items"]
    return [e for s in slices for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")]


def test_the_chapters_own_daemonset_joins_rng_and_lifts_the_plateau(app):
    deployment = json.loads(app.kubectl("get", "deployment", "rng", "-o", "json"))
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    app.scale("worker", WORKERS)
    try:
        plateau = steady_speed(app)
        assert abs(plateau - model(WORKERS, 1)) <= 0.15 * model(WORKERS, 1), plateau

        manifest = chapter_daemonset(app, image)
        assert manifest["spec"]["template"]["metadata"]["labels"] == {"app": "rng"}
        assert "ports" not in manifest["spec"]["template"]["spec"]["containers"][0]
        app.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
        try:
            app.kubectl("rollout", "status", "daemonset/rng", "--timeout=120s", timeout=150)
            # The chart's rng pod and the chapter's: the Service selects `app: rng`, port 8080.
            wait_until(lambda: len(ready_rng_endpoints(app)) == 2, 60,
                       "2 ready rng endpoints (the chart's pod and the DaemonSet's)")
            lifted = steady_speed(app)
            # kube-proxy picks a replica at random per connection: about 18.5 hashes/s here,
            # under the 20 of the bottleneck model (scaling.random_balancing).
            estimate = random_balancing(WORKERS, 2)
            figures.record("node", "daemonset_chapter_hashes_per_second", {
                "one rng": round(plateau, 2), "with the chapter's DaemonSet": round(lifted, 2),
                "random-balancing estimate": round(estimate, 2)})
            assert lifted >= 1.5 * plateau, (plateau, lifted, estimate)
            assert lifted <= 1.15 * model(WORKERS, 2), (plateau, lifted, estimate)
        finally:
            app.kubectl("delete", "daemonset", "rng", "--wait=true", "--timeout=60s")
        wait_until(lambda: len(ready_rng_endpoints(app)) == 1, 60, "the chart's rng alone")
    finally:
        app.scale("worker", 1)


def test_the_service_proxy_without_a_port_reaches_the_dashboard(app):
    # The API server picks the Service's unnamed port when the path names none.
    base = f"/api/v1/namespaces/{app.ns}/services/webui/proxy/"
    answer = json.loads(app.raw(base + "json"))
    assert answer["hashes"] >= 0, answer
    assert "<title>DockerCoin Miner</title>" in app.raw(base)
