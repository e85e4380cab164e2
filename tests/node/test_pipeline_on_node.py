"""The pipeline's deploy jobs on the real node: helpers/pipeline_deploy.py's tests, run
by gitlab-ci-local with the shell executor against this cluster, so staging's and production's
`helm test` pods really run, the rollback really rolls pods back, and the stop job really
deletes a namespace with running pods in it. The images come from the node's registry, pushed
under each test commit's short SHA (an all-digit one too), as the pipeline's build jobs push them.

Here too, with pods that run: the review app's URL (the NodePort it got, written to the job's
dotenv report) answers /json; a failing `helm test` pod's log is printed by the deploy job; and
the physics gate job passes on the chart as it is and fails, saying why, when rng runs
concurrently (RNG_CONCURRENCY=10)."""
import json
import urllib.request
from xml.etree import ElementTree

import pytest
import yaml

from helpers.gitlab_local import commit
from helpers.pipeline_deploy import (  # noqa: F401  (collected here, with this folder's cluster)
    Pipeline, job_dotenv, pipeline, test_production_refuses_a_commit_that_never_passed_staging,
    test_review_app_and_its_stop_job, test_staging_then_production_then_rollback)
from localapp import wait_until


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
