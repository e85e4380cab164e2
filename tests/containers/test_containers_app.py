"""The whole app as containers on one podman network, where they find each other by the names
rng, hasher, redis and webui, as in the seed and on Kubernetes. Every app container runs
read-only, with no capabilities, as its image's non-root user."""
import time

import pytest

import podman as pm
from helpers import figures

WORKER_RATE = 1 / 0.3  # sleep 0.1 s + rng 0.1 s + hasher 0.1 s per loop: 3.33 hashes/s
WINDOW_SECONDS = 18.0


@pytest.fixture(scope="module")
def app(images, pod):
    net = pod.network("app")
    # Stand-in for the official redis image (none can be pulled here): Debian's redis-server.
    redis = pod.run("redis", pm.LOCAL_REDIS_IMAGE, network=net, aliases=["redis"],
                    publish=(), hardened=False)
    # The worker reaches the Services' port 80 on Kubernetes; here the containers' own 8080.
    worker_env = {"RNG_URL": "http://rng:8080/32", "HASHER_URL": "http://hasher:8080/",
                  "REDIS_URL": "redis://redis:6379/0"}
    containers = {"redis": redis}
    for svc in ("rng", "hasher", "webui"):
        containers[svc] = pod.run(svc, images[svc], network=net, aliases=[svc],
                                  env={"REDIS_URL": "redis://redis:6379/0"} if svc == "webui"
                                  else None)
    containers["worker"] = pod.run("worker", images["worker"], network=net,
                                   aliases=["worker"], env=worker_env)
    # From the first `podman run` (redis) to every app container answering /readyz 200.
    ready = max(containers[svc].wait_http("/readyz") + containers[svc].started_at
                for svc in pm.SERVICES) - redis.started_at
    figures.record("container images", "app_start_to_ready_seconds", round(ready, 2))
    return containers


def webui_numbers(app):
    return pm.http_json(app["webui"].url("/json"))


def next_flush(app, after, timeout=10):
    """Poll /json until `hashes` moves past `after`: the moment of a worker flush."""
    return pm.wait_until(lambda: (lambda n: n if n["hashes"] > after else None)(
        webui_numbers(app)), timeout, interval=0.05, what="a flush of the worker's count")


def test_containers_run_hardened_as_the_image_user(app):
    for svc in pm.SERVICES:
        container = app[svc]
        assert container.inspect("{{.Config.User}}") == pm.APP_USER
        assert container.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
        assert container.exec("id", "-u").strip() == "10001"
        assert "CapEff:\t0000000000000000" in container.exec("cat", "/proc/1/status")


@pytest.mark.parametrize("svc", pm.SERVICES)
def test_each_service_answers_healthz_on_8080(app, svc):
    status, _ = pm.http_get(app[svc].url("/healthz"))
    assert status == 200


def test_services_find_each_other_by_name(app):
    # webui reads redis by name; rng and hasher answer the worker by name (its metrics).
    status, body = pm.http_get(app["webui"].url("/readyz"))
    assert status == 200, body
    first = next_flush(app, 0, timeout=20)
    assert first["hashes"] > 0
    metrics = pm.http_get(app["worker"].url("/metrics"))[1].decode()
    for stage in ("rng", "hasher", "redis"):
        assert pm.metric_value(metrics, "dockercoins_worker_errors_total",
                               f'stage="{stage}"') is not None


def test_webui_serves_the_dashboard_and_json(app):
    status, body = pm.http_get(app["webui"].url("/"))
    assert status == 200 and b"<html" in body.lower(), body[:200]
    numbers = webui_numbers(app)
    assert numbers["hashes"] >= 0 and numbers["cluster"]["source"] == "heartbeats", numbers


# A kubeconfig whose API server is a closed port on the container's own loopback (no credentials).
UNREACHABLE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: closed, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: nobody, user: {}}]
contexts: [{name: closed, context: {cluster: closed, user: nobody}}]
current-context: closed
"""


def test_webui_cluster_view_watch_runs_in_the_image(app, pod, tmp_path):
    """CLUSTER_VIEW=kubernetes as the chart sets it: the watch threads start in the image, and
    an API that refuses connections hides the panel with that reason while /json still counts."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    kubeconfig.chmod(0o644)  # the image's user reads it
    webui = pod.run("webui-k8s", app["webui"].image, network=f"{pod.prefix}-app",
                    env={"REDIS_URL": "redis://redis:6379/0", "CLUSTER_VIEW": "kubernetes",
                         "POD_NAMESPACE": "dc", "RELEASE_NAME": "dc", "KUBECONFIG": "/kube/config"},
                    args=["--volume", f"{kubeconfig}:/kube/config:ro"])
    webui.wait_http("/readyz")
    cluster = pm.wait_until(
        lambda: (lambda c: c if "unreachable" in c.get("hidden", "") else None)(
            pm.http_json(webui.url("/json"))["cluster"]), 15, what="the watch's first failure")
    assert cluster["source"] == "kubernetes", cluster
    assert cluster["hidden"].startswith("Kubernetes API unreachable: "), cluster
    assert "refused" in cluster["hidden"].lower(), cluster
    assert pm.http_json(webui.url("/json"))["hashes"] >= 0


def test_one_worker_gives_its_rate_at_json(app):
    """The slope of `hashes` between two flushes >= 18 s apart, as a ratio of 1/0.3 s."""
    start = next_flush(app, webui_numbers(app)["hashes"])
    time.sleep(WINDOW_SECONDS)
    end = next_flush(app, webui_numbers(app)["hashes"])
    rate = (end["hashes"] - start["hashes"]) / (end["now"] - start["now"])
    ratio = rate / WORKER_RATE
    figures.record("container images", "worker_rate", {
        "hashes_per_second": round(rate, 3), "ratio": round(ratio, 3),
        "window_seconds": round(end["now"] - start["now"], 1)})
    print(f"one worker: {rate:.2f} hashes/s = {ratio:.3f} x 3.33")
    assert 0.85 <= ratio <= 1.05
    if "speed" in end:  # the server-side speed the dashboard draws
        assert end["speed"] == pytest.approx(rate, rel=0.10)


def test_worker_stops_fast_and_redis_has_its_exact_count(app):
    """Freeze the loop (hasher paused: the call in flight is never counted), read the
    worker's own total, then `podman stop`: SIGTERM must flush what redis lacks and exit
    within 3 s, leaving redis `hashes` equal to the worker's total."""
    worker, hasher, redis = app["worker"], app["hasher"], app["redis"]
    hasher.pause()
    try:
        time.sleep(0.05)  # a loop past its hasher call finishes counting
        metrics = pm.http_get(worker.url("/metrics"))[1].decode()
        total = pm.metric_value(metrics, "dockercoins_worker_hashes_total")
        assert total and total > 0
        seconds = worker.stop(timeout=10)
    finally:
        hasher.unpause()
    figures.record("container images", "worker_stop_seconds", round(seconds, 2))
    logs = worker.logs()
    assert seconds < 3.0, f"podman stop took {seconds:.2f} s\n{logs[-2000:]}"
    assert worker.exit_code() == 0, logs[-3000:]
    assert int(redis.exec("redis-cli", "GET", "hashes").strip()) == int(total)
    assert f"final flush done: {int(total)} loops" in logs
