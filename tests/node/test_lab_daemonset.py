"""dockercoins-lab experiment --daemonset on the real node: the last step makes rng a DaemonSet
through helm upgrade (one rng pod per node: one here), the table marks that row, and every cell,
the DaemonSet's too, is within 15% of the model on real pods."""
import re
import subprocess

from kubernetes import client, config

from helpers import figures
from helpers.kube import LAB, component

# A table row; R is a count, or a count and the DaemonSet mark.
ROW = re.compile(r"^\| (\d+) \| (\d+(?: \(rng DS, 1 per node\))?) \| ([\d.]+) \| ([\d.]+) "
                 r"\| ([\d.]+) \|$", re.M)


def test_experiment_with_an_rng_daemonset(node_cluster, app, tmp_path):
    plot = tmp_path / "lab-ds.png"
    # 5 workers saturate one rng (model: min(16.7, 10) = 10 hashes/s); on one node the DaemonSet
    # is one rng pod, so its plateau stays at 10.
    proc = subprocess.run(
        [str(LAB), "-n", app.ns, "experiment", "--workers",
         "1,5", "--daemonset", "--seconds", "12", "--settle", "8", "--out", str(plot)],
        env=node_cluster.env, text=True, capture_output=True, timeout=900)
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, err
    rows = ROW.findall(out)
    assert [(w, r) for w, r, *_ in rows] == [
        ("1", "1"), ("5", "1"), ("5", "1 (rng DS, 1 per node)")], out
    figures.record("node", "lab_daemonset_hashes_per_second",
                   {f"W={w} R={r}": float(m) for w, r, m, *_ in rows})
    for _, _, measured, expected, _ in rows:
        assert abs(float(measured) - float(expected)) <= 0.15 * float(expected), out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot: {plot}" in out

    # What the API server says: rng is a DaemonSet with its one pod ready, no rng Deployment is
    # left, and the workers scaled by the experiment survived the upgrade.
    apps = client.AppsV1Api(config.new_client_from_config(
        config_file=str(node_cluster.kubeconfig)))
    daemonsets = apps.list_namespaced_daemon_set(app.ns, label_selector=component("rng")).items
    assert [d.metadata.name for d in daemonsets] == ["rng"]
    assert daemonsets[0].status.desired_number_scheduled == daemonsets[0].status.number_ready == 1
    assert not apps.list_namespaced_deployment(app.ns, label_selector=component("rng")).items
    assert apps.read_namespaced_deployment("worker", app.ns).status.ready_replicas == 5
