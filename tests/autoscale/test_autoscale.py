"""rng scales itself on its own request rate, on a real node with the chart's NetworkPolicies
enforced: Prometheus (a pod in `monitoring`) scrapes every app pod through the chart's
annotations, KEDA turns rng's rate into the HPA through the API server's aggregation layer, and
metrics-server answers `kubectl top`. In the order of this file: the first release (rng fixed at
one pod) measures the one-rng plateau that the second (autoscaled) must lift."""
import json
import re
import time
import urllib.parse

import pytest

from helpers.kube import Failed
from helpers.node import FIGURES, Release, steady_speed
from localapp import wait_until

PROMETHEUS = "/api/v1/namespaces/monitoring/services/prometheus-server:80/proxy"
COMPONENTS = ("rng", "hasher", "webui", "worker")
RNG_RATE = 'sum(rate(http_request_duration_seconds_count{{namespace="{ns}",pod=~"rng-.*",route="/<n>"}}[{window}]))'
# The autoscaled release: the chart's values, with the test's shorter windows (Prometheus scrapes
# every 10 s, so a 40 s rate has 4 samples) and KEDA polling Prometheus every 5 s.
AUTOSCALED = ["--set", "rng.autoscaling.enabled=true", "--set", "rng.autoscaling.provider=keda",
              "--set", "rng.autoscaling.keda.pollingInterval=5",
              "--set", "rng.autoscaling.keda.rateWindow=40s",
              "--set", "rng.autoscaling.behavior.scaleUp.stabilizationWindowSeconds=0",
              "--set", "rng.autoscaling.behavior.scaleUp.periodSeconds=15",
              "--set", "rng.autoscaling.behavior.scaleDown.stabilizationWindowSeconds=30",
              "--set", "rng.autoscaling.behavior.scaleDown.periodSeconds=15",
              "--set", "worker.replicaCount=1"]
PLATEAU = {}


def query(cluster, promql):
    """The value of an instant PromQL query (a single series) through the API server's service
    proxy, or None while it has no sample."""
    answer = json.loads(cluster.kubectl(
        "get", "--raw", f"{PROMETHEUS}/api/v1/query?query={urllib.parse.quote(promql)}"))
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def targets(cluster, ns):
    """{pod: health} of Prometheus's active scrape targets in namespace NS."""
    answer = json.loads(cluster.kubectl("get", "--raw", f"{PROMETHEUS}/api/v1/targets?state=active"))
    return {t["labels"]["pod"]: t["health"] for t in answer["data"]["activeTargets"]
            if t["labels"].get("namespace") == ns}


def worker_rate(release, seconds=60.0):
    """Loops per second of all workers (each loop is one rng call), from their own counters
    (dockercoins_worker_hashes_total, read through the pod proxy) over a window."""
    pods = [p["metadata"]["name"] for p in release.ready_pods("worker")]
    start = {pod: release.worker_loops(pod) for pod in pods}
    time.sleep(seconds)
    return sum(release.worker_loops(pod) - start[pod] for pod in pods) / seconds


def rng_replicas(release):
    """The rng Deployment's replica count, as the HPA sets it."""
    return release.cluster.get("deployment", "rng", "-n", release.ns)["spec"]["replicas"]


@pytest.fixture(scope="module")
def plateau_release(node_cluster):
    """The chart's defaults (policies on), 10 workers on one rng: the plateau."""
    release = Release(node_cluster, node_cluster.new_namespace("as-plateau"))
    release.install("--set", "worker.replicaCount=10")
    yield release
    release.uninstall()


def test_prometheus_scrapes_every_app_pod_and_agrees_with_the_workers(plateau_release):
    release, cluster = plateau_release, plateau_release.cluster
    annotated = {p["metadata"]["name"] for p in cluster.get("pods", "-n", release.ns)["items"]
                 if p["metadata"].get("annotations", {}).get("prometheus.io/scrape") == "true"}
    assert {name.split("-")[0] for name in annotated} >= set(COMPONENTS), annotated
    # Every worker too: with the default policies only the default-deny selects them, and their
    # metrics port admits any pod of the cluster (networkPolicy.metricsFrom empty).
    wait_until(lambda: targets(cluster, release.ns) == dict.fromkeys(annotated, "up"), 90,
               f"Prometheus scraping all {len(annotated)} annotated pods", interval=2)
    PLATEAU["speed"] = steady_speed(release)
    workers = worker_rate(release)
    prometheus = query(cluster, RNG_RATE.format(ns=release.ns, window="1m"))
    print(f"rng rate: workers {workers:.2f}/s, Prometheus {prometheus:.2f}/s; "
          f"plateau {PLATEAU['speed']:.2f} hashes/s")
    FIGURES["prometheus_rng_rate_vs_workers"] = round(prometheus / workers, 3)
    assert prometheus == pytest.approx(workers, rel=0.10)


def test_kubectl_top(plateau_release):
    """metrics-server through the aggregation layer: the node and every pod of the release."""
    cluster, release = plateau_release.cluster, plateau_release
    nodes = wait_until(lambda: cluster.kubectl("top", "nodes", "--no-headers", check=False)
                       or None, 120, "kubectl top nodes", interval=5)
    assert re.search(r"^dockercoins-node\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%", nodes, re.M), nodes
    pods = wait_until(lambda: cluster.kubectl("top", "pods", "-n", release.ns, "--no-headers",
                                              check=False) or None, 120, "kubectl top pods",
                      interval=5)
    running = {p["metadata"]["name"] for p in cluster.get("pods", "-n", release.ns)["items"]
               if p["status"]["phase"] == "Running"}
    shown = {line.split()[0] for line in pods.splitlines()}
    assert running <= shown, pods


def test_keda_scales_rng_until_the_plateau_lifts_and_back(node_cluster):
    assert PLATEAU, "the plateau test runs first (it measures the one-rng plateau)"
    release = Release(node_cluster, node_cluster.new_namespace("as-keda"))
    release.install(*AUTOSCALED)
    try:
        wait_until(lambda: node_cluster.kubectl("-n", release.ns, "get", "hpa", "rng",
                                                      check=False) or None, 60, "KEDA's HPA rng",
                         interval=2)
        # 10 workers on 1 rng: the plateau comes, and rng scales itself.
        started = time.monotonic()
        release.kubectl("scale", "deployment", "worker", "--replicas=10")
        wait_until(lambda: len(release.ready_pods("rng")) >= 2, 180, "KEDA's second rng pod",
                   interval=2)
        FIGURES["autoscale_second_rng_ready_seconds"] = round(time.monotonic() - started)

        def lifted():
            speed = release.speed()
            return speed if speed >= 1.8 * PLATEAU["speed"] else None
        speed = wait_until(lifted, max(15, 180 - (time.monotonic() - started)),
                           f"the speed at 1.8x the one-rng plateau ({PLATEAU['speed']:.1f}/s)")
        FIGURES["autoscale_plateau_lifted_seconds"] = round(time.monotonic() - started)
        hpa = release.kubectl("get", "hpa", "rng")
        print(hpa)
        # The metric's current value is shown, not <unknown>.
        assert re.search(r"\d+(\.\d+)?m?/8 \(avg\)", hpa), hpa

        # At a steady load the replica count settles: at most two changes in 5 minutes.
        counts = [rng_replicas(release)]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(5)
            counts.append(rng_replicas(release))
        changes = sum(1 for a, b in zip(counts, counts[1:]) if a != b)
        print(f"lifted to {speed:.1f}/s; rng replicas over 5 min at 10 workers: {counts}")
        FIGURES["autoscale_rng_replicas_at_10_workers"] = counts[-1]
        assert changes <= 2, counts

        # Back to 1 worker: rng returns to its minimum after the scale-down window.
        started = time.monotonic()
        release.kubectl("scale", "deployment", "worker", "--replicas=1")
        wait_until(lambda: rng_replicas(release) == 1, 300, "rng back to 1 replica", interval=2)
        FIGURES["autoscale_back_to_min_seconds"] = round(time.monotonic() - started)
        FIGURES["prometheus_rss_mib"] = round(query(
            node_cluster, 'process_resident_memory_bytes{namespace="monitoring"}') / 2**20)
    finally:
        release.uninstall()
    # helm uninstall leaves no ScaledObject, HPA or policy behind (KEDA deletes its HPA).
    wait_until(lambda: node_cluster.kubectl("get", "scaledobjects,hpa,networkpolicies", "-n",
                                            release.ns, "-o", "name").strip() == "", 60,
               "no ScaledObject, HPA or NetworkPolicy left", interval=2)


def test_a_servicemonitor_without_prometheus_operator_is_refused(node_cluster):
    """This cluster's Prometheus discovers pods itself: it has no prometheus-operator CRDs, so
    `metrics.serviceMonitor.enabled=true` is refused by the API server, and helm says why."""
    ns = node_cluster.new_namespace("as-sm")
    try:
        with pytest.raises(Failed) as refused:
            Release(node_cluster, ns).install("--set", "metrics.serviceMonitor.enabled=true")
        assert 'no matches for kind "ServiceMonitor" in version "monitoring.coreos.com/v1"' in \
            str(refused.value), refused.value
    finally:
        node_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
