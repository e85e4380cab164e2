"""The GitLab pipeline, evaluated offline by gitlab-ci-local (rules, needs, parallel:matrix,
unknown keywords) and gitlab-ci-verify (shellcheck on every script line)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support import ROOT

GITLAB_CI_LOCAL = ROOT / ".tools" / "bin" / "gitlab-ci-local"
SERVICES = sorted(p.parent.name for p in (ROOT / "images").glob("*/Dockerfile"))


def clone_on_branch(tmp_path, branch):
    """A clone of this commit on `branch`, with origin's HEAD at main, as GitLab has it."""
    work = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(work)], check=True)
    # The uncommitted .gitlab-ci.yml and scripts under test, not just HEAD's.
    for name in (".gitlab-ci.yml", "ci/deploy.sh"):
        shutil.copy(ROOT / name, work / name)
    subprocess.run(["git", "-C", str(work), "remote", "set-head", "origin", "main"], check=True)
    if branch != "main":
        subprocess.run(["git", "-C", str(work), "checkout", "-q", "-b", branch], check=True)
    return work


def jobs(work, *extra):
    result = subprocess.run([str(GITLAB_CI_LOCAL), "--list-json", *extra], cwd=work,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    return {job["name"]: job for job in json.loads(result.stdout)}


@pytest.fixture(scope="module")
def main_jobs(tmp_path_factory):
    return jobs(clone_on_branch(tmp_path_factory.mktemp("main"), "main"))


def test_one_build_job_per_service_image(main_jobs):
    builds = sorted(name for name in main_jobs if name.startswith("build:"))
    assert builds == sorted(f"build: [{service}]" for service in SERVICES)
    assert SERVICES == ["hasher", "rng", "webui", "worker"]


def test_deploy_on_main_waits_for_builds_and_tests(main_jobs):
    deploy = main_jobs["deploy:lke"]
    assert deploy["when"] == "on_success"
    assert {need["job"] for need in deploy["needs"]} == {"build", "test:services",
                                                         "test:chart"}
    assert main_jobs["stop:lke"]["when"] == "manual"


def test_no_deploy_from_a_feature_branch(tmp_path):
    listed = jobs(clone_on_branch(tmp_path, "feature/x"))
    assert listed["deploy:lke"]["when"] == "never"
    assert listed["stop:lke"]["when"] == "never"
    assert listed["build: [rng]"]["when"] == "on_success"


def test_pipeline_conventions():
    pipeline = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    deploy = pipeline["deploy:lke"]
    assert deploy["environment"]["name"] == "production"
    assert deploy["environment"]["on_stop"] == "stop:lke"
    assert pipeline["stop:lke"]["environment"]["action"] == "stop"
    images = [pipeline["variables"]["PYTHON_IMAGE"], pipeline["build"]["image"]]
    assert all(":" in image and not image.endswith(":latest") for image in images)
    jobs_defined = [job for job in pipeline.values() if isinstance(job, dict)]
    assert not any("only" in job or "except" in job for job in jobs_defined)  # rules instead
    assert "CI_JOB_TOKEN" not in (ROOT / "ci" / "deploy.sh").read_text().replace(
        "not CI_JOB_TOKEN", "")


def test_shellcheck_finds_nothing_in_script_lines():
    # It does find things: on `echo $FOO` it reports SC2086 in its JSON list.
    verify = Path(sys.executable).parent / "gitlab-ci-verify"  # from requirements.txt
    result = subprocess.run([str(verify), "--no-lint-api", "--format", "json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def run_deploy(env):
    return subprocess.run(["bash", str(ROOT / "ci" / "deploy.sh")], capture_output=True,
                          text=True, timeout=60,
                          env={k: v for k, v in {**os.environ, **env}.items() if v is not None})


def test_deploy_explains_a_missing_kubeconfig():
    result = run_deploy({"KUBECONFIG": None})
    assert result.returncode == 1
    assert "File-type CI/CD variable" in result.stderr


def test_deploy_explains_a_kubeconfig_given_as_content():
    # The pitfall: a Variable-type KUBECONFIG holds the YAML itself, not a path.
    result = run_deploy({"KUBECONFIG": "apiVersion: v1\nkind: Config\n"})
    assert result.returncode == 1
    assert "must be a path to a file" in result.stderr
