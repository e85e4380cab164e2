"""dockercoins-lab against the real control plane of `ci/cluster.sh up`: scaling read back from the
API server, rng made a DaemonSet through helm, and each error provoked for real (a wrong
namespace, a missing release, a ServiceAccount without the Role or without helm's rights, no
cluster, a rollout that cannot become ready), each with its fix, exit 1 and no traceback."""
import os
import pty
import re
import shlex
import subprocess

import pytest
import yaml
from dockercoins_lab import cli
from kubernetes import client, config

from helpers.kube import LAB, component
from localapp import ROOT, free_port, wait_until


@pytest.fixture
def apps(cluster):
    return client.AppsV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))


def assert_clean_error(status, err, *needles):
    assert status == 1, err
    assert "Traceback" not in err, err
    assert "Fix:" in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"


def test_scale_worker_and_rng_read_back(cluster, apps, release, lab):
    status, out, err = lab("-n", release, "scale", "worker", 4)
    assert status == 0, err
    assert out.strip() == "worker: 4 replicas"
    assert "waiting for the rollout: worker" in err   # the progress line, as plain lines here
    worker = apps.read_namespaced_deployment("worker", release)
    assert worker.spec.replicas == 4
    assert worker.status.ready_replicas == 4   # lab waited for the rollout

    status, out, err = lab("-n", release, "scale", "rng", 2)
    assert status == 0, err
    assert apps.read_namespaced_deployment("rng", release).status.ready_replicas == 2


def test_rng_kind_daemonset_and_back(cluster, apps, release, lab):
    assert lab("-n", release, "scale", "worker", 3)[0] == 0
    status, out, err = lab("-n", release, "rng-kind", "DaemonSet")
    assert status == 0, err
    assert out.strip() == "rng: DaemonSet"
    daemonsets = apps.list_namespaced_daemon_set(release, label_selector=component("rng")).items
    assert [d.metadata.name for d in daemonsets] == ["rng"]
    ds = daemonsets[0].status
    assert ds.desired_number_scheduled == ds.number_ready == 3   # one per kwok node
    assert not apps.list_namespaced_deployment(release, label_selector=component("rng")).items
    # The worker count scaled by hand survives the upgrade.
    assert apps.read_namespaced_deployment("worker", release).spec.replicas == 3
    # A DaemonSet has no replica count: scale says so and how to go back.
    status, _, err = lab("-n", release, "scale", "rng", 2)
    assert_clean_error(status, err, "rng is a DaemonSet", "rng-kind Deployment")

    status, out, err = lab("-n", release, "rng-kind", "Deployment")
    assert status == 0, err
    assert apps.read_namespaced_deployment("rng", release).status.ready_replicas == 1
    assert not apps.list_namespaced_daemon_set(release, label_selector=component("rng")).items


def test_autoscale_without_an_hpa(cluster, release, lab):
    """experiment --autoscale needs rng's HPA: without it the lab says how to turn it on."""
    status, _, err = lab("-n", release, "experiment", "--autoscale", "--hold", 1)
    assert_clean_error(status, err, "rng's autoscaling is off",
                       "--set rng.autoscaling.enabled=true --set rng.autoscaling.provider=keda")


def test_wrong_namespace(cluster, release, lab):
    status, _, err = lab("-n", "no-such-namespace", "scale", "worker", 2)
    assert_clean_error(status, err, "release 'dockercoins' not found in namespace "
                       "'no-such-namespace'", "--namespace")


def test_missing_release(cluster, release, lab):
    status, _, err = lab("-n", release, "--release", "other", "measure", "--seconds", 1)
    assert_clean_error(status, err, f"release 'other' not found in namespace '{release}'",
                       "helm install other")


def token_kubeconfig(cluster, namespace, path):
    """A kubeconfig for a ServiceAccount with no Role: its token, the cluster's server and CA."""
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "no-role"}})
    token = core.create_namespaced_service_account_token(
        "no-role", namespace, {"spec": {"expirationSeconds": 600}}).status.token
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    current = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == current["context"]["cluster"])
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": server["cluster"]}],
        "users": [{"name": "no-role", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "no-role",
                                                "namespace": namespace}}]}))
    return path


def docs_role(cluster, namespace):
    """docs/lab.md's Role in NAMESPACE, bound to the ServiceAccount of token_kubeconfig()."""
    role = re.search(r"```yaml\n(.*?)```", (ROOT / "docs" / "lab.md").read_text(), re.S).group(1)
    cluster.apply(role, "-n", namespace)
    cluster.kubectl("-n", namespace, "create", "rolebinding", "lab", "--role", "dockercoins-lab",
                    f"--serviceaccount={namespace}:no-role")


def test_service_account_without_role(cluster, release, lab_with, tmp_path):
    kubeconfig = token_kubeconfig(cluster, release, tmp_path / "no-role.kubeconfig")
    env = {**cluster.env, "KUBECONFIG": str(kubeconfig)}
    status, _, err = lab_with(env, "-n", release, "scale", "worker", 2)
    assert_clean_error(status, err, "forbidden", "list deployments", f"bind a Role in {release}",
                       f"system:serviceaccount:{release}:no-role")


def test_no_cluster(cluster, lab_with, tmp_path):
    # A loopback port that nothing listens on: bound, then closed.
    port = free_port()
    kubeconfig = tmp_path / "closed.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "closed",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}",
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "closed", "context": {"cluster": "c", "user": "u"}}]}))
    status, _, err = lab_with({**cluster.env, "KUBECONFIG": str(kubeconfig)}, "scale", "worker", 2)
    assert_clean_error(status, err, f"no cluster: the API server at https://127.0.0.1:{port} "
                       "does not answer", "ci/cluster.sh up")

    status, _, err = lab_with({**cluster.env, "KUBECONFIG": str(tmp_path / "missing")},
                              "measure")
    assert_clean_error(status, err, "no cluster: cannot load the kubeconfig", "set KUBECONFIG")


def test_rollout_never_ready_names_the_reason(cluster, apps, release, lab):
    # No node carries this label: the new pods stay Pending and the scheduler says why.
    apps.patch_namespaced_deployment("worker", release, {"spec": {"template": {"spec": {
        "nodeSelector": {"lab.example/none": "true"}}}}})
    status, _, err = lab("-n", release, "--timeout", 15, "scale", "worker", 2)
    assert_clean_error(status, err, "rollout of worker not ready after 15 s", "FailedScheduling",
                       "--timeout")


def test_the_role_in_docs_is_enough(cluster, release, lab_with, tmp_path):
    """docs/lab.md's Role, bound to the ServiceAccount that was denied above, lets it scale; its
    `measure` gets past RBAC to the service proxy (kwok's webui pod does not run, so the proxy
    itself refuses, and the message says so, not "forbidden")."""
    kubeconfig = token_kubeconfig(cluster, release, tmp_path / "lab.kubeconfig")
    docs_role(cluster, release)
    env = {**cluster.env, "KUBECONFIG": str(kubeconfig)}
    status, out, err = lab_with(env, "-n", release, "scale", "worker", 2)
    assert status == 0, err
    assert out.strip() == "worker: 2 replicas"
    status, _, err = lab_with(env, "-n", release, "measure", "--seconds", 1)
    assert_clean_error(status, err, "cannot read webui's /json through the service proxy")
    assert "forbidden:" not in err, err


def test_helm_commands_name_helms_rights(cluster, apps, release, lab_with, tmp_path):
    """rng-kind and experiment --daemonset run helm upgrade, which the lab's Role does not allow:
    the error names the `admin` ClusterRole with a rolebinding command, and that command, run as
    printed, is enough."""
    kubeconfig = token_kubeconfig(cluster, release, tmp_path / "helm.kubeconfig")
    env = {**cluster.env, "KUBECONFIG": str(kubeconfig)}
    # No rights at all: the first API call is denied, and the fix is helm's, not the Role.
    status, _, err = lab_with(env, "-n", release, "experiment", "--daemonset")
    assert_clean_error(status, err, "forbidden", "runs helm upgrade", "--clusterrole admin")
    # The lab's Role: the API calls pass, helm itself is denied (its release Secrets).
    docs_role(cluster, release)
    status, _, err = lab_with(env, "-n", release, "rng-kind", "DaemonSet")
    assert_clean_error(status, err, "forbidden", "runs helm upgrade", "secrets",
                       f"--serviceaccount {release}:no-role")
    fix = re.search(r"(kubectl -n \S+ create rolebinding [^;]+);", err)
    assert fix, err
    cluster.kubectl(*shlex.split(fix.group(1))[1:])
    status, out, err = lab_with(env, "-n", release, "rng-kind", "DaemonSet")
    assert status == 0, err
    assert out.strip() == "rng: DaemonSet"
    assert [d.metadata.name for d in apps.list_namespaced_daemon_set(
        release, label_selector=component("rng")).items] == ["rng"]


def test_progress_line_on_a_terminal(cluster, release):
    """On a terminal the progress line is rewritten in place (\\r), and ends with a newline."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([str(LAB), "-n", release, "scale", "worker", "3"],
                            env=cluster.env, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:   # EIO: the process closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=120) == 0, seen
    os.close(leader)
    assert b"\rwaiting for the rollout: worker" in seen, seen
    assert seen.endswith(b"\r\n") and seen.count(b"\n") == 1, seen   # one line, rewritten


def test_a_service_with_no_ready_endpoint_is_named_with_its_fix(cluster, release):
    """What `measure` prints when it measures 0 (kwok's pods do not serve /json, so the check
    is called here as measure calls it): the rng selector edited as the DaemonSet chapter does,
    then rng with no ready pod at all."""
    edited = cli.Lab(release, kubeconfig=str(cluster.kubeconfig))
    assert edited.unreachable_services() == []
    cluster.kubectl("patch", "service", "rng", "-n", release, "-p",
                    '{"spec": {"selector": {"active": "yes"}}}')
    [problem] = edited.unreachable_services()
    assert problem.startswith("Service rng has no ready endpoint: its selector's active=yes "
                              "matches none of the ready rng pods (1)"), problem
    assert "Fix: put the selector back: kubectl patch service rng -n " + release + \
        """ --type=json -p '[{"op": "remove", "path": "/spec/selector/active"}]'""" in problem
    cluster.kubectl("scale", "deployment", "hasher", "--replicas=0", "-n", release)
    wait_until(lambda: len(edited.unreachable_services()) == 2, 30, "hasher's pod gone")
    problems = edited.unreachable_services()
    assert [p.split(" has ")[0] for p in problems] == ["Service rng", "Service hasher"], problems
    assert "no hasher pod is ready" in problems[1], problems
