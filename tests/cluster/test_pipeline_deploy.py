"""The pipeline's deploy job, run by gitlab-ci-local against the real control plane: the job's
own script (ci/tools.sh, ci/deploy.sh: helm upgrade --install --atomic --wait, helm test),
with KUBECONFIG given as a File-type variable, as GitLab gives it."""
import os
import shutil
import subprocess

import kube
from kube import DEPLOYMENTS, ROOT

GITLAB_CI_LOCAL = ROOT / ".tools" / "bin" / "gitlab-ci-local"


def run_job(work, job, variables, timeout=600):
    # Project CI/CD variables; a value that is a path to a file makes a File-type variable:
    # the job gets the path of a copy, like GitLab's File variables.
    lines = [f"{key}: '{value}'" for key, value in variables.items()]
    (work / ".gitlab-ci-local-variables.yml").write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}  # only the job's own
    return subprocess.run([str(GITLAB_CI_LOCAL), "--force-shell-executor", "--no-color", job],
                          cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


def clone(tmp_path):
    """This commit on main, with origin's HEAD at main, as a GitLab runner checks it out."""
    work = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "remote", "set-head", "origin", "main"], check=True)
    shutil.copytree(ROOT / ".tools", work / ".tools", symlinks=True)  # ci/tools.sh: cached
    return work


def test_deploy_job_installs_the_release_and_runs_helm_test(cluster, namespace, tmp_path):
    work = clone(tmp_path)
    result = run_job(work, "deploy:lke", {"KUBECONFIG": cluster.kubeconfig,
                                          "NAMESPACE": namespace})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Phase:          Succeeded" in output or "Phase: Succeeded" in output, output[-4000:]

    # CI_COMMIT_SHORT_SHA, the pipeline's TAG: GitLab's first 8 characters of the commit.
    sha = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"],
                         capture_output=True, text=True, check=True).stdout.strip()[:8]
    deployments = cluster.get("deployments", "-n", namespace)["items"]
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(DEPLOYMENTS)
    for d in deployments:
        name = d["metadata"]["name"]
        assert d["status"].get("readyReplicas") == d["spec"]["replicas"], name
        if name != "redis":  # the four app images carry the pipeline's tag
            image = d["spec"]["template"]["spec"]["containers"][0]["image"]
            assert image.endswith(f"/{name}:{sha}"), image
    history = cluster.helm("history", "dockercoins", "-n", namespace)
    assert "deployed" in history


def test_stop_job_uninstalls(cluster, namespace, tmp_path):
    work = clone(tmp_path)
    cluster.helm("install", "dockercoins", kube.CHART, "-n", namespace, "--wait")
    # stop:lke is manual (the environment's Stop button); naming it runs it.
    result = run_job(work, "stop:lke", {"KUBECONFIG": cluster.kubeconfig,
                                        "NAMESPACE": namespace})
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert cluster.helm("list", "-n", namespace, "-q").strip() == ""
