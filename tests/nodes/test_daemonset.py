"""The DaemonSet chapter on three real nodes, as `dockercoins-lab experiment --daemonset
--balancing both` runs it, with 15 workers spread 5 per node: one rng gives the plateau of 10
hashes/s; `rng.kind=DaemonSet` (the lab's helm upgrade) gives one rng per node, and kube-proxy's
random pick lifts the plateau to at least 2.2x; with `rng.service.trafficDistribution=
PreferSameNode` each worker calls its own node's rng, and the plateau is 10 x 3 (at least 27).
The lab's own table and plot are checked too: this is where its DaemonSet rows are proven."""
import re
import subprocess
import threading

import pytest
from kubernetes import client, config

from helpers import figures
from helpers.kube import LAB, component
from helpers.node import NODE_NAMES, SPREAD_WORKERS, Release, rng_served
from dockercoins_lab.scaling import model, random_balancing

WORKERS = 15
# A row of the lab's table: W, R (a count, or a count, the DaemonSet mark and the balancing when
# it is not random), measured, model, random-balancing estimate.
ROW = re.compile(r"^\| (\d+) \| (\d+)( \(rng DS, 1 per node\)(?: (\w+))?)? \| ([\d.]+) "
                 r"\| ([\d.]+) \| ([\d.]+) \|$", re.M)
# The lab's stderr, in order, from its random DaemonSet row to its PreferSameNode row: that row
# printed; the upgrade to PreferSameNode done and its settle begun; its window measured and
# printed. The counters of each rng are read at each; the last two bound that row.
MARKS = [re.compile(r"^W=\d+ R=\d+ \(rng DS, 1 per node\): "), re.compile(r"^settling "),
         re.compile(r"^W=\d+ R=\d+ \(rng DS, 1 per node\) PreferSameNode: ")]


@pytest.fixture(scope="module")
def app(nodes_cluster):
    release = Release(nodes_cluster, nodes_cluster.new_namespace("ds"))
    release.install("--set", f"worker.replicaCount={WORKERS}", *SPREAD_WORKERS)
    yield release
    release.uninstall()


def lab_reading_rng_at_marks(app, argv, timeout=900):
    """The lab with ARGV, with rng_served() read each time its stderr reaches the next of
    MARKS. Returns (exit status, stdout, stderr, the readings in MARKS' order)."""
    proc = subprocess.Popen([str(LAB), *argv], env=app.cluster.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    err, readings = [], []
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stderr:
            err.append(line)
            if len(readings) < len(MARKS) and MARKS[len(readings)].match(line):
                readings.append(rng_served(app))
        proc.wait()
    finally:
        timer.cancel()
    reader.join(10)
    return proc.returncode, "".join(out), "".join(err), readings


def test_the_lab_lifts_the_plateau_with_one_rng_per_node(app, tmp_path):
    per_node = [p["spec"]["nodeName"] for p in app.ready_pods("worker")]
    assert sorted(per_node) == sorted(NODE_NAMES * 5)

    plot = tmp_path / "lab-ds.png"
    status, out, err, readings = lab_reading_rng_at_marks(app, [
        "-n", app.ns, "experiment", "--workers", str(WORKERS), "--daemonset",
        "--balancing", "both", "--seconds", "15", "--settle", "10", "--out", str(plot)])
    assert status == 0, err
    assert "nodes: 3 Ready of 3" in out, out
    rows = {(w, r, (mode or "random") if ds else "one rng"): float(measured)
            for w, r, ds, mode, measured, _, _ in ROW.findall(out)}
    assert list(rows) == [("15", "1", "one rng"), ("15", "3", "random"),
                          ("15", "3", "PreferSameNode")], out
    one, random, same = rows.values()
    figures.record("node", "daemonset_x3_hashes_per_second", {
        "one rng": one, "random": random,
        "random-balancing estimate": round(random_balancing(WORKERS, 3), 1),
        "PreferSameNode": same, "model": model(WORKERS, 3)})
    assert one == pytest.approx(model(WORKERS, 1), rel=0.15), out
    assert random >= 2.2 * one, out
    assert same >= 0.9 * model(WORKERS, 3), out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # With PreferSameNode every node's rng served its own five workers at its cap, alike (its
    # latency includes the queue of those five): none idled while another queued, as random
    # picks let happen. Read from the start of that row's settle to the end of its window.
    assert len(readings) == len(MARKS), err
    _, before, after = readings
    calls = {node: after[node][0] - before[node][0] for node in NODE_NAMES}
    latency = {node: (after[node][1] - before[node][1]) / calls[node] for node in NODE_NAMES}
    figures.record("node", "prefer_same_node_rng_seconds_per_node",
                   {n: round(s, 3) for n, s in latency.items()})
    assert max(calls.values()) <= 1.2 * min(calls.values()), calls
    assert max(latency.values()) <= 1.3 * min(latency.values()), latency

    # What the API server says: rng is a DaemonSet with a ready pod on each node, no rng
    # Deployment is left, and the 15 workers survived the upgrades.
    apps = client.AppsV1Api(config.new_client_from_config(
        config_file=str(app.cluster.kubeconfig)))
    [daemonset] = apps.list_namespaced_daemon_set(app.ns, label_selector=component("rng")).items
    assert daemonset.status.desired_number_scheduled == daemonset.status.number_ready == 3
    assert sorted(p["spec"]["nodeName"] for p in app.ready_pods("rng")) == NODE_NAMES
    assert not apps.list_namespaced_deployment(app.ns, label_selector=component("rng")).items
    assert apps.read_namespaced_deployment("worker", app.ns).status.ready_replicas == WORKERS
