"""Upgrades and rollbacks a pipeline can trust (issue 19, item 5), on kwok's cluster: ci/deploy.sh
after a helm killed hard (SIGKILL, as a lost runner or a cancelled job leaves it), and
ci/rollback.sh after an `--atomic` upgrade that failed, and ci/release-notes.sh where the nodes
report no image digest. The scripts run as the deploy jobs run them, with KUBECONFIG,
NAMESPACE, REGISTRY and TAG. The jobs themselves run on the real node
(tests/node/test_pipeline_on_node.py).

An upgrade is made to fail, or to hang in `--wait`, with a worker nodeSelector that matches no
node: kwok marks every scheduled pod Ready, so a pod that cannot be scheduled is the one way its
rollout never ends."""
import os
import signal
import subprocess
import time

import pytest
import yaml

from helpers import kube
from localapp import ROOT, SERVICES, wait_until

NOWHERE = {"worker": {"nodeSelector": {"dockercoins.example/no-such-node": "true"}}}


@pytest.fixture
def namespace(cluster):
    yield from kube.namespace_for_test(cluster, "recover")


@pytest.fixture
def nowhere(tmp_path):
    """A CLUSTER_VALUES file whose worker pod can never be scheduled."""
    path = tmp_path / "nowhere.yaml"
    path.write_text(yaml.safe_dump(NOWHERE))
    return path


def script_env(cluster, namespace, tag, **extra):
    return {**cluster.env, "NAMESPACE": namespace, "REGISTRY": "registry.example/dockercoins",
            "TAG": tag, **{k: str(v) for k, v in extra.items()}}


def run_script(cluster, script, env, *args, timeout=300):
    proc = subprocess.run([str(ROOT / "ci" / script), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    return proc.returncode, proc.stdout + proc.stderr


def deploy(cluster, namespace, tag, **extra):
    status, output = run_script(cluster, "deploy.sh", script_env(cluster, namespace, tag, **extra),
                                "review")
    return status, output


def worker_image(cluster, namespace):
    deployment = cluster.get("deployment", "worker", "-n", namespace)
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def history(cluster, namespace):
    return [(r["revision"], r["status"], r["description"]) for r in yaml.safe_load(
        cluster.helm("history", "dockercoins", "-n", namespace, "-o", "yaml"))]


def release_status(cluster, namespace):
    found = cluster.run(["helm", "status", "dockercoins", "-n", namespace, "-o", "json"],
                        check=False)
    return yaml.safe_load(found.stdout)["info"]["status"] if found.returncode == 0 else None


def test_rollback_after_a_failed_atomic_upgrade_goes_to_other_manifests(cluster, namespace,
                                                                        nowhere):
    for tag in ("aaaa1111", "bbbb2222"):
        status, output = deploy(cluster, namespace, tag)
        assert status == 0, output[-3000:]
    # The third deploy cannot roll out: --atomic gives up after 20 s and rolls back by itself,
    # writing revision 4, a copy of revision 2.
    status, output = deploy(cluster, namespace, "cccc3333", CLUSTER_VALUES=nowhere,
                            HELM_TIMEOUT="20s")
    assert status != 0
    assert "has been rolled back due to atomic being set" in output, output[-3000:]
    assert [(r, s) for r, s, _ in history(cluster, namespace)] == [
        (1, "superseded"), (2, "superseded"), (3, "failed"), (4, "deployed")]
    assert worker_image(cluster, namespace).endswith(":bbbb2222")

    # Revision 2 is what runs now: the rollback job skips it and takes revision 1.
    status, output = run_script(cluster, "rollback.sh", script_env(cluster, namespace, "-"))
    assert status == 0, output[-3000:]
    assert "revision 2: the same manifests as the current revision 4, skipped" in output
    assert "rolling dockercoins in " + namespace + " back to revision 1" in output
    assert worker_image(cluster, namespace).endswith(":aaaa1111")
    assert history(cluster, namespace)[-1][1:] == ("deployed", "Rollback to 1")


def test_rollback_with_nothing_else_to_go_to_says_so(cluster, namespace):
    status, output = deploy(cluster, namespace, "aaaa1111")
    assert status == 0, output[-3000:]
    status, output = run_script(cluster, "rollback.sh", script_env(cluster, namespace, "-"))
    assert status == 1
    assert ("has no earlier deployed revision with other manifests than revision 1: nothing to "
            "roll back to") in output


def killed_in_wait(cluster, namespace, tag, nowhere, pending):
    """ci/deploy.sh started, then killed with SIGKILL (its helm too) while helm waits."""
    env = script_env(cluster, namespace, tag, CLUSTER_VALUES=nowhere, HELM_TIMEOUT="5m")
    proc = subprocess.Popen([str(ROOT / "ci" / "deploy.sh"), "review"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_until(lambda: release_status(cluster, namespace) == pending, 120,
                   f"release {pending}")
        time.sleep(2)  # well inside --wait: the worker pod is Pending, unschedulable
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert release_status(cluster, namespace) == pending  # what the killed helm left


def test_a_deploy_after_a_killed_upgrade_recovers(cluster, namespace, nowhere):
    status, output = deploy(cluster, namespace, "aaaa1111")
    assert status == 0, output[-3000:]
    killed_in_wait(cluster, namespace, "bbbb2222", nowhere, "pending-upgrade")
    # Helm by itself refuses from now on.
    refused = cluster.run(["helm", "upgrade", "dockercoins", str(ROOT / "charts" / "dockercoins"),
                           "-n", namespace, "--reuse-values"], check=False)
    assert refused.returncode != 0 and "another operation" in refused.stderr

    status, output = deploy(cluster, namespace, "cccc3333")
    assert status == 0, output[-3000:]
    assert ("release dockercoins is pending-upgrade (an earlier helm was stopped mid-way): "
            "rolling back to its last deployed revision 1 first") in output
    assert worker_image(cluster, namespace).endswith(":cccc3333")
    # Revision 2 keeps its status for the record; the rollback (3) and this deploy (4) follow it.
    assert [(r, s, d.split(":")[0]) for r, s, d in history(cluster, namespace)] == [
        (1, "superseded", "review"), (2, "pending-upgrade", "Preparing upgrade"),
        (3, "superseded", "Rollback to 1"), (4, "deployed", "review")]


def test_a_deploy_after_a_killed_first_install_recovers(cluster, namespace, nowhere):
    killed_in_wait(cluster, namespace, "aaaa1111", nowhere, "pending-install")
    status, output = deploy(cluster, namespace, "bbbb2222")
    assert status == 0, output[-3000:]
    assert ("release dockercoins is pending-install and was never deployed (an earlier helm was "
            "stopped mid-way): uninstalling it first") in output
    assert worker_image(cluster, namespace).endswith(":bbbb2222")
    assert [(r, s) for r, s, _ in history(cluster, namespace)] == [(1, "deployed")]


HTTPROUTE_CRD = kube.CRDS / "optional" / "gateway.networking.k8s.io_httproutes.yaml"


def test_base_domain_gives_the_environment_its_host_on_the_gateway(cluster, namespace, tmp_path):
    """With BASE_DOMAIN, the review deploy attaches webui's HTTPRoute to GATEWAY_NAME under
    <slug>.<BASE_DOMAIN>, and that URL is the dotenv report's ENVIRONMENT_URL; without
    GATEWAY_NAME it stops first and says what to set."""
    dotenv = tmp_path / "deploy.env"
    status, output = deploy(cluster, namespace, "t1", BASE_DOMAIN="apps.example.test",
                            ENVIRONMENT_SLUG="review-feature-x", DOTENV=dotenv)
    assert status != 0 and "GATEWAY_NAME is not" in output, output
    assert release_status(cluster, namespace) is None

    cluster.kubectl("apply", "--server-side", "-f", HTTPROUTE_CRD)
    try:
        cluster.wait_established("httproutes.gateway.networking.k8s.io")
        status, output = deploy(cluster, namespace, "t1", BASE_DOMAIN="apps.example.test",
                                ENVIRONMENT_SLUG="review-feature-x", GATEWAY_NAME="gw",
                                GATEWAY_NAMESPACE="gateways", DOTENV=dotenv)
        assert status == 0, output
        route = cluster.get("httproute", "webui", "-n", namespace)["spec"]
        assert route["hostnames"] == ["review-feature-x.apps.example.test"]
        assert [(p["name"], p.get("namespace")) for p in route["parentRefs"]] == [("gw", "gateways")]
        assert dotenv.read_text().splitlines() == [
            "ENVIRONMENT_URL=https://review-feature-x.apps.example.test/"]
    finally:
        cluster.run(["helm", "uninstall", "dockercoins", "-n", namespace, "--wait"], check=False)
        cluster.kubectl("delete", "crd", "httproutes.gateway.networking.k8s.io", "--wait=true")


def test_release_notes_list_each_image_whose_node_reports_no_digest(cluster, namespace):
    """kwok's fake nodes run nothing, so they report no image digest: ci/release-notes.sh still
    lists every image, marks each one so, and warns. (On the real node every digest is listed:
    tests/node/test_pipeline_on_node.py.)"""
    status, output = deploy(cluster, namespace, "t1")
    assert status == 0, output
    proc = subprocess.run([str(ROOT / "ci" / "release-notes.sh")], capture_output=True, text=True,
                          env=script_env(cluster, namespace, "t1", CI_COMMIT_TAG="v1.0.0"),
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| `")]
    listed = {row.split("`")[1].rsplit("/", 1)[-1] for row in rows}
    assert {f"{name}:t1" for name in SERVICES} <= listed, proc.stdout
    assert all(row.endswith("| not reported by the node |") for row in rows), proc.stdout
    assert proc.stderr.strip(), "no warning for the digests the node did not report"
