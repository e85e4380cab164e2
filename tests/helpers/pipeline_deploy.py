"""The pipeline's deploy jobs, run by gitlab-ci-local with the shell executor against a real API
server: each job's own script (ci/tools.sh, ci/deploy.sh, ci/passed-staging.sh, ci/rollback.sh,
the stop job's inline lines), with KUBECONFIG given as a File-type variable, as GitLab gives it.
tests/node/test_pipeline_on_node.py drives them on the real node, where the pods and the `helm
test` pods run.

`Pipeline` uses nothing but the kubeconfig of the cluster it is given. The images are
<PIPELINE_TEST_REGISTRY>/<service>:<short SHA>; the default is what the pipeline uses
(CI_REGISTRY_IMAGE, here gitlab-ci-local's). A cluster that runs pods gives its registry and
values (`pipeline_variables`) and pushes the images under each test commit's short SHA
(`publish_images`). Every test works in namespaces of its own prefix."""
import os
import uuid
from pathlib import Path

import yaml

from helpers.gitlab_local import clone, git, run_job, source_args
from localapp import ROOT, SERVICES as APP


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
        # The cluster runs pods (tests/node): it says where its images are, and publishes the
        # app's images under each commit's short SHA before a job deploys that commit.
        self.variables.update(cluster.pipeline_variables)
        self.publish = cluster.publish_images
        self.staging = f"{self.prefix}-staging"
        self.production = f"{self.prefix}-production"

    def job(self, name, *args, work=None, expect_success=True, variables=None):
        """Runs job NAME; VARIABLES override the project's for this run only."""
        if work is None:
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


def assert_images(images, sha):
    assert images == {name: images[name] for name in APP}
    for name, image in images.items():
        assert image.endswith(f"/{name}:{sha[:8]}"), image


def staging_replicas():
    values = yaml.safe_load((ROOT / "deploy" / "staging.yaml").read_text())
    return {name: values[name]["replicaCount"] for name in APP}


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
