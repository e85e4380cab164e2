"""The pipeline's deploy jobs on the real node, run by gitlab-ci-local with the shell executor
against this cluster (helpers/pipeline_deploy.py), so staging's and production's `helm test`
pods really run, the rollback really rolls pods back, and the stop job really deletes a
namespace with running pods in it. The images come from the node's registry, pushed under each
test commit's short SHA (an all-digit one too), as the pipeline's build jobs push them.

Here too, with pods that run: the review app's URL (the NodePort it got, written to the job's
dotenv report) answers /json; a failing `helm test` pod's log is printed by the deploy job; and
the physics gate job passes on the chart as it is and fails, saying why, when rng runs
concurrently (RNG_CONCURRENCY=10). The scripts' recovery from a killed helm, and the release
notes of pods whose node reports no digest, run on kwok's cluster
(tests/cluster/test_pipeline_recovery.py)."""
import json
import re
import subprocess
import urllib.request
from xml.etree import ElementTree

import pytest
import yaml

from helpers.gitlab_local import commit, git, source_args
from helpers.pipeline_deploy import (
    AGENT_CONTEXT, APP, Pipeline, agent_kubeconfig, assert_images, job_artifact, job_dotenv,
    staging_replicas, stop_job_project)
from localapp import ROOT, wait_until


class RunningCluster:
    """The node cluster, plus what the shared tests ask of a cluster whose pods run."""

    def __init__(self, cluster):
        self._cluster = cluster

    def __getattr__(self, name):
        return getattr(self._cluster, name)

    @staticmethod
    def check_environment_url(url):
        """The environment's URL, as a browser would open it: /json answers the app's JSON."""
        def answered():
            try:
                with urllib.request.urlopen(f"{url}json", timeout=5) as answer:
                    return json.load(answer)
            except OSError:
                return None
        document = wait_until(answered, 60, f"{url}json answering")
        assert set(document) >= {"coins", "hashes", "now"}, document


@pytest.fixture
def cluster(node_cluster):
    """The `cluster` those tests use: here, the one with the real node."""
    return RunningCluster(node_cluster)


@pytest.fixture
def pipeline(cluster, tmp_path):
    p = Pipeline(cluster, tmp_path)
    yield p
    p.close()


def test_staging_then_production_then_rollback(pipeline):
    # 1. A push to main whose short SHA is all digits: the value `--set` would break.
    first = commit(pipeline.work, "first release", all_digit_short_sha=True)
    assert first[:8].isdigit()
    _, output = pipeline.job("staging")
    assert "Phase:          Succeeded" in output  # helm test
    assert f"commit {first} passed staging" in output
    assert_images(pipeline.images(pipeline.staging), first)
    values = yaml.safe_load(pipeline.cluster.helm("get", "values", "dockercoins", "-n",
                                                  pipeline.staging, "-o", "yaml"))
    assert values["global"]["image"]["tag"] == first[:8]  # a string, not 12345678 the number
    assert set(pipeline.recorded()) == {first}

    # 2. A hand `kubectl scale` lasts until the next deploy, which sets deploy/staging.yaml's count.
    pipeline.cluster.kubectl("scale", "deployment", "worker", "--replicas=5", "-n", pipeline.staging)
    assert pipeline.replicas(pipeline.staging)["worker"] == 5
    second = commit(pipeline.work, "second release")
    pipeline.job("staging")
    assert_images(pipeline.images(pipeline.staging), second)
    assert {k: v for k, v in pipeline.replicas(pipeline.staging).items() if k in APP} == \
        staging_replicas()
    assert set(pipeline.recorded()) == {first, second}

    # 3. Release tags on both commits, each promoted by hand, each checked against staging.
    _, output = pipeline.tag_pipeline("production", "v1.0.0", first)
    assert f"commit {first} passed staging: passed=" in output
    assert "Phase:          Succeeded" in output
    assert_images(pipeline.images(pipeline.production), first)
    # The release's description: the chart version, and the digest of each image production runs.
    notes = job_artifact(pipeline.work, "production", "release.md")
    chart = yaml.safe_load((ROOT / "charts" / "dockercoins" / "Chart.yaml").read_text())
    assert f"version `{chart['version']}+{first[:8]}`" in notes
    rows = [line for line in notes.splitlines() if line.startswith("| `")]
    listed = {row.split("`")[1].rsplit("/", 1)[-1] for row in rows}
    assert {f"{name}:{first[:8]}" for name in APP} <= listed, notes  # and redis's image
    # Pods that run: their node reports each image's digest.
    assert all(re.search(r"`sha256:[0-9a-f]{64}`", row) for row in rows), notes
    pipeline.tag_pipeline("production", "v1.1.0", second)
    assert_images(pipeline.images(pipeline.production), second)

    # 4. The rollback job: back to the previous revision (the first commit's), then helm test.
    _, output = pipeline.tag_pipeline("rollback", "v1.1.1", second)
    assert "Phase:          Succeeded" in output
    assert_images(pipeline.images(pipeline.production), first)
    history = pipeline.history(pipeline.production)
    assert [r["revision"] for r in history] == [1, 2, 3]
    assert history[-1]["status"] == "deployed" and history[-1]["description"] == "Rollback to 1"
    assert history[0]["description"].startswith(f"production: image tag {first[:8]}")


def test_production_refuses_a_commit_that_never_passed_staging(pipeline):
    # Staging has a record, of another commit: the gate reads it and still says no.
    other = commit(pipeline.work, "a commit that passed staging")
    pipeline.cluster.kubectl("create", "namespace", pipeline.staging)
    record = subprocess.run([str(pipeline.work / "ci" / "passed-staging.sh"), "record", other],
                            env={**pipeline.cluster.env, "STAGING_NAMESPACE": pipeline.staging},
                            capture_output=True, text=True, timeout=60)
    assert record.returncode == 0, record.stderr
    never = commit(pipeline.work, "a commit that never went through staging")
    git(pipeline.work, "tag", "v2.0.0", never)
    git(pipeline.work, "checkout", "-q", "v2.0.0")
    status, output = pipeline.job("production", *source_args("tag", "v2.0.0"),
                                  expect_success=False)
    assert status != 0
    assert (f"refusing to deploy: commit {never} has not passed staging (no record of it in "
            f"ConfigMap passed-staging, namespace {pipeline.staging})") in output
    assert pipeline.production not in pipeline.namespaces()  # nothing was deployed


def test_review_app_and_its_stop_job(cluster, tmp_path):
    """A review app through the agent's context (KUBE_CONTEXT), with a NodePort: the address it
    got is the environment's URL."""
    p = Pipeline(cluster, tmp_path, branch="feature/x")
    p.variables["KUBECONFIG"] = agent_kubeconfig(cluster, tmp_path / "agent-kubeconfig")
    p.variables["KUBE_CONTEXT"] = AGENT_CONTEXT
    p.variables["WEBUI_SERVICE_TYPE"] = "NodePort"
    try:
        sha = commit(p.work, "a feature")
        _, output = p.job("review")
        assert f"using context {AGENT_CONTEXT} of the agent" in output
        assert "Phase:          Succeeded" in output
        [namespace] = p.namespaces()
        assert namespace.startswith(f"{p.prefix}-review-feature-x-")  # the environment's slug
        assert_images(p.images(namespace), sha)
        assert set(p.replicas(namespace).values()) == {1}  # deploy/review.yaml
        assert p.recorded() == {}  # a review app is not staging
        service = p.cluster.get("service", "webui", "-n", namespace)
        node = p.cluster.get("nodes")["items"][0]
        address = next(a["address"] for a in node["status"]["addresses"]
                       if a["type"] == "InternalIP")
        url = f"http://{address}:{service['spec']['ports'][0]['nodePort']}/"
        assert job_dotenv(p.work, "review") == {"ENVIRONMENT_URL": url}
        cluster.check_environment_url(url)   # the URL answers /json

        # The Stop button, from a project folder with no repository files in it.
        bare = stop_job_project(tmp_path, "feature/x")
        p.job("stop-review", work=bare)
        wait_until(lambda: namespace not in p.namespaces(), 120, f"namespace {namespace} deleted")
        # It may run again (auto-stop after a manual stop): nothing left is no error.
        p.job("stop-review", work=bare)
    finally:
        p.close()


def gate_report(work):
    [found] = (work / ".gitlab-ci-local" / "artifacts" / "gate-review").rglob("junit.xml")
    return ElementTree.fromstring(found.read_text())


def test_helm_test_logs_and_the_physics_gate_on_a_review_app(cluster, tmp_path):
    p = Pipeline(cluster, tmp_path, branch="feature/x")
    p.variables["WEBUI_SERVICE_TYPE"] = "NodePort"
    try:
        commit(p.work, "a feature")
        # 1. No worker: webui's helm test sees no hash and fails. The job prints that pod's log.
        values = yaml.safe_load(open(p.variables["CLUSTER_VALUES"]))
        values.setdefault("worker", {})["replicaCount"] = 0
        no_worker = tmp_path / "no-worker.yaml"
        no_worker.write_text(yaml.safe_dump(values))
        status, output = p.job("review", expect_success=False,
                               variables={"CLUSTER_VALUES": str(no_worker)})
        assert status != 0
        assert "--- the log of failed test pod dockercoins-test-webui" in output
        assert "hashes did not increase within 10 s" in output
        assert "helm test failed: dockercoins-test-webui" in output

        # 2. The review app as it is: its URL answers, and the gate passes.
        p.job("review")
        [namespace] = p.namespaces()
        cluster.check_environment_url(job_dotenv(p.work, "review")["ENVIRONMENT_URL"])
        _, output = p.job("gate-review")
        assert "ok: W=1 R=1: one worker mines 3.33 hashes/s" in output
        assert "ok: W=10 R=1: 10 workers plateau at one rng's 10 hashes/s" in output
        report = gate_report(p.work)
        assert report.get("tests") == "2" and report.get("failures") == "0"
        assert "| 10 | 1 |" in report.find("system-out").text
        # It put the replicas back (deploy/review.yaml's).
        assert {k: v for k, v in p.replicas(namespace).items() if k in ("worker", "rng")} == \
            {"worker": 1, "rng": 1}

        # 3. rng's cap raised through its env: ten workers run past the plateau, and the gate says so.
        cluster.kubectl("set", "env", "deployment/rng", "RNG_CONCURRENCY=10", "-n", namespace)
        cluster.kubectl("rollout", "status", "deployment/rng", "-n", namespace, "--timeout=180s",
                        timeout=200)
        status, output = p.job("gate-review", expect_success=False)
        assert status != 0
        assert "FAIL: W=10 R=1" in output
        assert "not a plateau near 10" in output and "rng has lost its cap" in output
        report = gate_report(p.work)
        assert report.get("failures") == "1"
    finally:
        p.close()
