"""The chart on a real node, in the order of the workshop: install, one worker, two, ten (the
plateau, and rng as the culprit), three rngs (the plateau lifts), a DaemonSet, then back down to one
worker with every count accounted for. Each step uses the workshop's own commands (`kubectl scale`,
`kubectl logs -l app=worker`, `helm test`) through the real kubectl and helm; the kubelet runs the
images and checks their probes, kube-proxy balances the Services and CoreDNS answers for them.

The tests of this module share one release and run in order: each starts from where the last
one left the app."""
import pytest

from helpers.node import final_totals, steady_speed
from localapp import COMPONENTS, wait_until
from dockercoins_lab.scaling import PER_WORKER, model

SPEEDS = {}   # (workers, rng) -> measured hashes/s, for the steps that compare them


def test_install_every_pod_ready_by_its_probes(app):
    for name in COMPONENTS:
        pods = app.ready_pods(name)
        assert len(pods) == 1, f"{name}: {len(app.pods(name))} pods, {len(pods)} ready"
        pod = pods[0]
        assert pod["spec"]["nodeName"] == "dockercoins-node"
        status = pod["status"]["containerStatuses"][0]
        assert status["ready"] and status["restartCount"] == 0, status
        # Started by the kubelet from the node's registry, as a cluster pulls.
        assert status["imageID"], status


def test_helm_test_pods_run_and_pass(app):
    out = app.helm("test", "dockercoins", "--timeout", "3m")
    assert out.count("Phase:          Succeeded") >= 3, out


def test_worker_reaches_services_by_bare_name(app):
    # The workshop's selector, and the worker's own start-up line: plain `rng` and `hasher`.
    log = app.kubectl("logs", "-l", "app.kubernetes.io/component=worker", "--tail=-1")
    assert "rng http://rng/32, hasher http://hasher/" in log, log[-2000:]
    # Resolved by CoreDNS through the pod's search path, to the Services' ClusterIPs.
    worker = app.ready_pods("worker")[0]["metadata"]["name"]
    resolved = app.kubectl("exec", worker, "--", "python3", "-c",
                           "import socket; print(*(socket.gethostbyname(n) for n in "
                           "('rng', 'hasher', 'redis')))").split()
    cluster_ips = [app.kubectl("get", "service", n, "-o", "jsonpath={.spec.clusterIP}")
                   for n in ("rng", "hasher", "redis")]
    assert resolved == cluster_ips
    resolv = app.kubectl("exec", worker, "--", "cat", "/etc/resolv.conf")
    assert f"search {app.ns}.svc.cluster.local svc.cluster.local cluster.local" in resolv


def test_container_runs_as_the_chart_says(app):
    worker = app.ready_pods("worker")[0]["metadata"]["name"]
    out = app.kubectl("exec", worker, "--", "python3", "-c", """
import os
print(os.getuid(), os.getgid())
for line in open('/proc/self/status'):
    if line.startswith(('CapEff', 'NoNewPrivs', 'Seccomp:')):
        print(line.split()[1])
try:
    open('/written-by-test', 'w')
except OSError as error:
    print('write refused:', error.strerror)
""").split("\n")
    assert out[0] == "10001 10001"
    assert out[1] == "0000000000000000"      # every capability dropped
    assert out[2] == "1"                     # no privilege escalation
    assert out[3] == "2"                     # seccomp filter (RuntimeDefault)
    assert out[4] == "write refused: Read-only file system"


def test_one_worker(app):
    SPEEDS[1, 1] = speed = steady_speed(app)
    assert speed == pytest.approx(PER_WORKER, rel=0.15)


def test_two_workers_double_it(app):
    app.scale("worker", 2)
    SPEEDS[2, 1] = speed = steady_speed(app)
    assert speed / SPEEDS[1, 1] == pytest.approx(2.0, rel=0.15)


def test_ten_workers_plateau_and_rng_is_the_culprit(app):
    app.scale("worker", 10)
    SPEEDS[10, 1] = speed = steady_speed(app, settle=10)
    assert speed == pytest.approx(model(10, 1), rel=0.15)
    numbers = app.json()
    # Every loop waits behind rng's one-at-a-time cap; hasher answers in its 0.1 s.
    assert numbers["rng_seconds"] > 0.5, numbers
    assert numbers["hasher_seconds"] < 0.2, numbers


def test_three_rngs_lift_the_plateau(app):
    app.scale("rng", 3)
    SPEEDS[10, 3] = speed = steady_speed(app, settle=10)
    # kube-proxy picks an rng at random per connection, so three replicas give less than 3x.
    assert speed >= 2 * SPEEDS[10, 1], SPEEDS
    rng_pods = {p["status"]["podIP"] for p in app.ready_pods("rng")}
    assert len(rng_pods) == 3


def test_rng_as_a_daemonset_one_per_node(app):
    # An upgrade applies the values again, so the 10 workers go in the values too (a
    # `kubectl scale` lasts only until the next upgrade).
    app.helm("upgrade", "dockercoins", "charts/dockercoins", "--reuse-values",
             "--set", "rng.kind=DaemonSet", "--set", "worker.replicaCount=10",
             "--wait", "--timeout", "3m")
    assert len(app.ready_pods("worker")) == 10
    wait_until(lambda: len(app.pods("rng")) == 1 and len(app.ready_pods("rng")) == 1, 120,
               "one rng pod, from the DaemonSet")
    owner = app.ready_pods("rng")[0]["metadata"]["ownerReferences"][0]["kind"]
    assert owner == "DaemonSet"
    # One rng again: the plateau is back at ~10.
    assert steady_speed(app, settle=8) == pytest.approx(model(10, 1), rel=0.15)


def test_scale_down_loses_and_doubles_nothing(app):
    """10 workers to 1, then to 0: every stopped pod logs its final flush, and redis `hashes` is
    exactly the sum of the loops every worker pod ever did (they all ran in this release)."""
    pods = [p["metadata"]["name"] for p in app.pods("worker")]
    assert len(pods) == 10
    followers = app.follow_logs(pods)
    app.scale("worker", 1)
    survivor = app.ready_pods("worker")[0]["metadata"]["name"]
    stopped = {pod: proc for pod, proc in followers.items() if pod != survivor}
    totals = final_totals(app, stopped)
    assert len(totals) == 9 and all(n > 0 for n in totals.values()), totals
    # Mining goes on with the one worker left.
    assert steady_speed(app, seconds=10) == pytest.approx(PER_WORKER, rel=0.2)
    app.stop_all_workers()
    totals.update(final_totals(app, {survivor: followers[survivor]}))
    assert int(app.redis("GET", "hashes")) == sum(totals.values()), totals


def test_a_servicemonitor_without_its_crd_is_refused_by_the_server(node_cluster):
    """This cluster has no prometheus-operator: asked for a ServiceMonitor, the chart renders it
    and the API server says the kind is unknown, instead of the value doing nothing."""
    namespace = node_cluster.new_namespace("sm")
    try:
        proc = node_cluster.run(["helm", "install", "dockercoins", "charts/dockercoins", "-n",
                                 namespace, "-f", node_cluster.values_file,
                                 "--set", "metrics.serviceMonitor.enabled=true"], check=False)
        assert proc.returncode != 0
        assert 'no matches for kind "ServiceMonitor"' in proc.stderr, proc.stderr
    finally:
        node_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
