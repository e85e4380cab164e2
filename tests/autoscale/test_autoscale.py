"""rng scales itself on its own request rate, on a real node with the chart's NetworkPolicies
enforced: Prometheus (a pod in `monitoring`) scrapes every app pod through the chart's
annotations, KEDA turns rng's rate into the HPA through the API server's aggregation layer, and
metrics-server answers `kubectl top`. In the order of this file: the first release (rng fixed at
one pod) measures the one-rng plateau that the second (autoscaled) must lift."""
import json
import re
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import figures
from helpers.kube import Failed, run_lab
from helpers.node import Release, steady_speed
from localapp import SERVICES, wait_until

PROMETHEUS = "/api/v1/namespaces/monitoring/services/prometheus-server:80/proxy"
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
    assert {name.split("-")[0] for name in annotated} >= set(SERVICES), annotated
    # Every worker too: with the default policies only the default-deny selects them, and their
    # metrics port admits any pod of the cluster (networkPolicy.metricsFrom empty).
    wait_until(lambda: targets(cluster, release.ns) == dict.fromkeys(annotated, "up"), 90,
               f"Prometheus scraping all {len(annotated)} annotated pods", interval=2)
    # The plateau (webui's counter over 15 s) is read during the workers' 60 s window: both only
    # read counters, so neither disturbs the other.
    with ThreadPoolExecutor(1) as pool:
        plateau = pool.submit(steady_speed, release)
        workers = worker_rate(release)
        PLATEAU["speed"] = plateau.result()
    prometheus = query(cluster, RNG_RATE.format(ns=release.ns, window="1m"))
    print(f"rng rate: workers {workers:.2f}/s, Prometheus {prometheus:.2f}/s; "
          f"plateau {PLATEAU['speed']:.2f} hashes/s")
    figures.record("node", "prometheus_rng_rate_vs_workers", round(prometheus / workers, 3))
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


def timeline_of(path):
    """The rows of `dockercoins-lab experiment --autoscale --csv PATH`: (seconds since the
    workers' scale-up, workers, ready rng pods, hashes, metric per pod or None)."""
    rows = []
    for line in path.read_text().splitlines()[1:]:
        t, workers, rng, hashes, metric = line.split(",")
        rows.append((float(t), int(workers), int(rng), int(hashes),
                     float(metric) if metric else None))
    return rows


def test_keda_scales_rng_until_the_plateau_lifts_and_back(node_cluster, tmp_path):
    """The chapter as `dockercoins-lab experiment --autoscale` runs it: 1 worker, 10 held for
    5 minutes after rng's first added pod, then 1 until rng is back at its minimum."""
    assert PLATEAU, "the plateau test runs first (it measures the one-rng plateau)"
    release = Release(node_cluster, node_cluster.new_namespace("as-keda"))
    release.install(*AUTOSCALED)
    try:
        wait_until(lambda: node_cluster.kubectl("-n", release.ns, "get", "hpa", "rng",
                                                check=False) or None, 60, "KEDA's HPA rng",
                   interval=2)
        csv, plot = tmp_path / "timeline.csv", tmp_path / "autoscale.png"
        status, out, err = run_lab(node_cluster.env, "-n", release.ns, "experiment",
                                   "--autoscale", "--workers", "10", "--hold", "300",
                                   "--interval", "5", "--csv", csv, "--out", plot,
                                   timeout=1200)
        print(out)
        assert status == 0, err
        assert plot.stat().st_size > 0
        rows = timeline_of(csv)
        up = [row for row in rows if row[0] >= 0 and row[1] == 10]
        # 10 workers on 1 rng: the plateau comes, and within 3 minutes rng has scaled itself
        # and the speed (over 15 s, from webui's counter) is at least 1.8x the one-rng plateau.
        added = next(t for t, _, rng, _, _ in up if rng >= 2)
        figures.record("node", "autoscale_second_rng_ready_seconds", round(added))
        # The metric's lag: KEDA's reading (a rate over 40 s, scraped every 10 s) first above
        # the target of 8 per pod after the workers' scale-up.
        figures.record("node", "autoscale_metric_over_target_seconds", next(
            (round(t) for t, _, _, _, metric in up if metric is not None and metric > 8), None))
        assert added <= 180, rows
        lifted = next((b[0] for a, b in zip(up, up[3:])   # 3 rows of 5 s: a 15 s window
                       if (b[3] - a[3]) / (b[0] - a[0]) >= 1.8 * PLATEAU["speed"]), None)
        assert lifted is not None and lifted <= 180, (PLATEAU, rows)
        figures.record("node", "autoscale_plateau_lifted_seconds", round(lifted))
        # At that steady load the replica count settles: at most two changes in 5 minutes.
        window = [rng for t, _, rng, _, _ in up if added <= t <= added + 300]
        assert up[-1][0] >= added + 295, rows   # the lab held the load for the 5 minutes
        changes = sum(1 for a, b in zip(window, window[1:]) if a != b)
        figures.record("node", "autoscale_rng_replicas_at_10_workers", window[-1])
        assert changes <= 2, window
        # Back to 1 worker: rng returns to its minimum after the scale-down window.
        assert rows[-1][1:3] == (1, 1), rows
        figures.record("node", "autoscale_back_to_min_seconds", round(rows[-1][0] - up[-1][0]))
        # `kubectl get hpa` shows the metric's current value, not <unknown>.
        hpa = release.kubectl("get", "hpa", "rng")
        assert re.search(r"\d+(\.\d+)?m?/8 \(avg\)", hpa), hpa
        figures.record("node", "prometheus_rss_mib", round(query(
            node_cluster, 'process_resident_memory_bytes{namespace="monitoring"}') / 2**20))
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
