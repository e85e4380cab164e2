"""A test suite run on two clusters: tests/cluster/test_pipeline_deploy.py (kwok's) and
tests/node/test_pipeline_on_node.py (the real node) import its tests, each folder with its own
`cluster` fixture.

The pipeline's deploy jobs, run by gitlab-ci-local with the shell executor against a real API
server: each job's own script (ci/tools.sh, ci/deploy.sh, ci/passed-staging.sh, ci/rollback.sh,
the stop job's inline lines), with KUBECONFIG given as a File-type variable, as GitLab gives it.

The tests use nothing but the kubeconfig of the `cluster` fixture, so they run on any cluster:
today kwok's fake nodes (pods become Ready, and `helm test` pods Succeeded, without running),
and on the real node (tests/node/test_pipeline_on_node.py). The images are
<PIPELINE_TEST_REGISTRY>/<service>:<short SHA>; the default is what the pipeline uses
(CI_REGISTRY_IMAGE, here gitlab-ci-local's), which only a cluster that runs no containers
accepts. A cluster that runs pods gives its registry and values (`pipeline_variables`) and pushes
the images under each test commit's short SHA (`publish_images`). Every test works in namespaces
of its own prefix."""
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from helpers.gitlab_local import clone, commit, git, run_job, source_args
from localapp import ROOT, wait_until

APP = ("rng", "hasher", "worker", "webui")


class Pipeline:
    """A clone of this checkout, and the project's CI/CD variables for one test."""

    def __init__(self, cluster, tmp_path, branch="main"):
        self.cluster = cluster
        self.tmp_path = tmp_path
        self.work = clone(tmp_path, branch)
        self.prefix = f"p-{uuid.uuid4().hex[:6]}"
        self.variables = {"KUBECONFIG": cluster.kubeconfig, "NAMESPACE_PREFIX": self.prefix,
                          # The gate job's Python (ci/gate.sh): this checkout's venv, complete.
                          "VENV": ROOT / ".venv",
                          # helm's cache and config in the test's folder, not in $HOME.
                          **{k: v for k, v in cluster.env.items() if k.startswith("HELM_")}}
        if os.environ.get("PIPELINE_TEST_REGISTRY"):
            self.variables["REGISTRY"] = os.environ["PIPELINE_TEST_REGISTRY"]
        # A cluster that runs pods (tests/node) says where its images are, and publishes the
        # app's images under each commit's short SHA before a job deploys that commit.
        self.variables.update(getattr(cluster, "pipeline_variables", {}))
        self.publish = getattr(cluster, "publish_images", None)
        self.staging = f"{self.prefix}-staging"
        self.production = f"{self.prefix}-production"

    def job(self, name, *args, work=None, expect_success=True, variables=None):
        """Runs job NAME; VARIABLES override the project's for this run only."""
        if self.publish and work is None:
            self.publish(git(self.work, "rev-parse", "HEAD")[:8])
        result = run_job(work or self.work, name, {**self.variables, **(variables or {})}, *args)
        output = result.stdout + result.stderr
        if expect_success:
            assert result.returncode == 0, f"{name} failed:\n{output[-6000:]}"
        return result.returncode, output

    def tag_pipeline(self, name, tag, sha):
        """Job `name` of the pipeline for `tag`, pushed on commit `sha`."""
        git(self.work, "tag", tag, sha)
        git(self.work, "checkout", "-q", tag)
        try:
            return self.job(name, *source_args("tag", tag))
        finally:
            git(self.work, "checkout", "-q", "main")

    def images(self, namespace):
        """{deployment: image} of the four app components."""
        deployments = self.cluster.get("deployments", "-n", namespace)["items"]
        return {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
                for d in deployments if d["metadata"]["name"] in APP}

    def replicas(self, namespace):
        deployments = self.cluster.get("deployments", "-n", namespace)["items"]
        return {d["metadata"]["name"]: d["spec"]["replicas"] for d in deployments}

    def history(self, namespace):
        return yaml.safe_load(self.cluster.helm("history", "dockercoins", "-n", namespace,
                                                "-o", "yaml"))

    def recorded(self):
        """The staging record: {full SHA: what passed}."""
        found = self.cluster.kubectl("get", "configmap", "passed-staging", "-n", self.staging,
                                     "--ignore-not-found", "-o", "yaml")
        return (yaml.safe_load(found) or {}).get("data") or {}

    def namespaces(self):
        names = self.cluster.kubectl("get", "namespaces", "-o", "name").split()
        return {n.removeprefix("namespace/") for n in names
                if n.startswith(f"namespace/{self.prefix}-")}

    def close(self):
        for namespace in self.namespaces():
            self.cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def job_artifact(work, job, name):
    """The text of file NAME among the artifacts job JOB left, where gitlab-ci-local keeps them."""
    [found] = (work / ".gitlab-ci-local" / "artifacts" / job).rglob(name)
    return found.read_text()


def job_dotenv(work, job):
    """The dotenv report a job left ({name: value})."""
    return dict(line.split("=", 1) for line in job_artifact(work, job, "deploy.env").splitlines()
                if line)


@pytest.fixture
def pipeline(cluster, tmp_path):
    p = Pipeline(cluster, tmp_path)
    yield p
    p.close()


def assert_images(images, sha):
    assert images == {name: images[name] for name in APP}
    for name, image in images.items():
        assert image.endswith(f"/{name}:{sha[:8]}"), image


def staging_replicas():
    values = yaml.safe_load((ROOT / "deploy" / "staging.yaml").read_text())
    return {name: values[name]["replicaCount"] for name in APP}


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
    if pipeline.publish:  # pods that run: their node reports each image's digest
        assert all(re.search(r"`sha256:[0-9a-f]{64}`", row) for row in rows), notes
    else:  # kwok runs nothing, and says so
        assert all(row.endswith("| not reported by the node |") for row in rows), notes
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


def stop_job_project(tmp_path, branch):
    """A project with .gitlab-ci.yml and nothing else, on `branch`: what the stop job sees with
    GIT_STRATEGY none (no ci/, no chart), where gitlab-ci-local runs in the project folder."""
    work = tmp_path / "bare"
    work.mkdir()
    (work / ".gitlab-ci.yml").write_text((ROOT / ".gitlab-ci.yml").read_text())
    git(work, "init", "-q", "-b", "main")
    git(work, "-c", "user.email=ci@example.com", "-c", "user.name=tests", "add", ".gitlab-ci.yml")
    git(work, "-c", "user.email=ci@example.com", "-c", "user.name=tests", "commit", "-q", "-m", "ci")
    git(work, "remote", "add", "origin", "https://gitlab.example.com/dockercoins/dockercoins.git")
    git(work, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(work, "remote", "set-head", "origin", "main")
    git(work, "checkout", "-q", "-b", branch)
    return work


# GitLab names the context of an agent `<agent's project path>:<agent name>`; gitlab-ci-local
# takes the project path from the clone's origin URL (helpers.gitlab_local.clone).
AGENT_CONTEXT = "dockercoins/dockercoins:dockercoins"


def agent_kubeconfig(cluster, path):
    """A kubeconfig shaped like the one GitLab gives a job that the agent admits: the cluster under
    the agent's context name, and beside it a current context that reaches nothing (127.0.0.1:9,
    the discard port), so a job that forgets KUBE_CONTEXT fails instead of passing by luck."""
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    [context] = [c for c in config["contexts"] if c["name"] == config["current-context"]]
    context["name"] = AGENT_CONTEXT
    config["clusters"].append({"name": "elsewhere", "cluster": {"server": "https://127.0.0.1:9"}})
    config["contexts"].append({"name": "elsewhere",
                               "context": {"cluster": "elsewhere", "user": context["context"]["user"]}})
    config["current-context"] = "elsewhere"
    path.write_text(yaml.safe_dump(config))
    return path




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
        check_url = getattr(p.cluster, "check_environment_url", None)
        if check_url:  # a cluster whose pods run: the URL answers /json
            check_url(url)

        # The Stop button, from a project folder with no repository files in it.
        bare = stop_job_project(tmp_path, "feature/x")
        p.job("stop-review", work=bare)
        wait_until(lambda: namespace not in p.namespaces(), 120, f"namespace {namespace} deleted")
        # It may run again (auto-stop after a manual stop): nothing left is no error.
        p.job("stop-review", work=bare)
    finally:
        p.close()
