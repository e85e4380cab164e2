"""gitlab-ci-local (pinned by ci/gitlab-ci-local/package-lock.json) on a throwaway clone of this
checkout, as GitLab would see the pipeline for one source: a push to main or to another branch,
a merge request, or a tag. tests/pipeline lists the plans; tests/cluster runs the deploy jobs.

gitlab-ci-local sets CI_COMMIT_BRANCH from the checkout and never sets CI_COMMIT_TAG, so a merge
request or tag pipeline is made the way GitLab makes it: with the source's predefined variables,
and without CI_COMMIT_BRANCH (GitLab sets it only for branch pipelines)."""
import glob
import json
import os
import shutil
import subprocess

import yaml

from localapp import ROOT
GITLAB_CI_LOCAL = ROOT / ".tools" / "bin" / "gitlab-ci-local"
# What the jobs run, taken from this worktree as it is (committed or not) into each clone.
PIPELINE_FILES = (".gitlab-ci.yml", "ci", "deploy", "charts")
FILE_VARIABLES = {"KUBECONFIG", "STAGING_KUBECONFIG"}


def git(work, *args):
    return subprocess.run(["git", "-C", str(work), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def clone(tmp_path, branch="main"):
    """A clone of this checkout with this worktree's pipeline files committed on `branch`, and
    origin's HEAD at main (GitLab's CI_DEFAULT_BRANCH). Its origin URL is a GitLab-style one, so
    gitlab-ci-local derives the project path from it; nothing is ever fetched from it."""
    work = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(work)], check=True)
    git(work, "checkout", "-q", "-B", "main")
    git(work, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(work, "remote", "set-head", "origin", "main")
    git(work, "remote", "set-url", "origin", "https://gitlab.example.com/dockercoins/dockercoins.git")
    git(work, "config", "user.email", "ci@example.com")
    git(work, "config", "user.name", "tests/pipeline")
    for name in PIPELINE_FILES:
        source, target = ROOT / name, work / name
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    commit(work, "the pipeline under test")
    if branch != "main":
        git(work, "checkout", "-q", "-b", branch)
    # The pinned helm and kubectl (ci/tools.sh finds them here and installs nothing).
    (work / ".tools").symlink_to(ROOT / ".tools")
    return work


def commit(work, message, all_digit_short_sha=False):
    """A new commit (empty if nothing changed); returns its full SHA. With all_digit_short_sha,
    the message gets a counter until the first 8 hex digits are all decimal digits, the short SHA
    that `--set` would turn into a number (about 1 try in 43)."""
    git(work, "add", "-A", "--", *PIPELINE_FILES)
    git(work, "commit", "-q", "--allow-empty", "-m", message)
    attempt = 0
    while all_digit_short_sha and not git(work, "rev-parse", "HEAD")[:8].isdigit():
        attempt += 1
        git(work, "commit", "-q", "--amend", "--allow-empty", "-m", f"{message} ({attempt})")
    return git(work, "rev-parse", "HEAD")


def source_args(source, ref="feature/x"):
    """gitlab-ci-local arguments for a pipeline source: "push" (the checkout's branch),
    "merge_request_event" (from `ref` into main) or "tag" (`ref` is the tag)."""
    if source == "push":
        return []
    if source == "merge_request_event":
        variables = {"CI_PIPELINE_SOURCE": "merge_request_event",
                     "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": ref,
                     "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main", "CI_MERGE_REQUEST_IID": "1"}
    elif source == "tag":
        slug = "".join(c if c.isalnum() else "-" for c in ref.lower())
        variables = {"CI_COMMIT_TAG": ref, "CI_COMMIT_REF_NAME": ref, "CI_COMMIT_REF_SLUG": slug}
    else:
        raise ValueError(source)
    args = ["--unset-variable", "CI_COMMIT_BRANCH",
            # These are GitLab's to set; here they are set on purpose, so no warning.
            "--ignore-predefined-vars", ",".join(variables)]
    for key, value in variables.items():
        args += ["--variable", f"{key}={value}"]
    return args


def env():
    """The environment gitlab-ci-local runs in: no KUBECONFIG of ours leaks into a job, and the
    pinned tools are on PATH (the shell executor uses no image, so they stand in for the stop
    job's helm + kubectl image)."""
    keep = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "HELM_PLUGINS")}
    keep["PATH"] = f"{ROOT / '.tools' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return keep


# gitlab-ci-local writes each job's File-type variables to this folder, hard-coded under /tmp
# (not $TMPDIR), and never removes it.
FILE_VARIABLES_DIRS = "/tmp/gitlab-ci-local-file-variables-*"


def run(work, *args, timeout=120):
    """gitlab-ci-local in `work`; removes the File-variable folders that this run left in /tmp."""
    before = set(glob.glob(FILE_VARIABLES_DIRS))
    try:
        return subprocess.run([str(GITLAB_CI_LOCAL), "--no-color", *args], cwd=work, env=env(),
                              capture_output=True, text=True, timeout=timeout)
    finally:
        for folder in set(glob.glob(FILE_VARIABLES_DIRS)) - before:
            shutil.rmtree(folder, ignore_errors=True)


def plan(work, *args):
    """{job name: gitlab-ci-local's --list-json entry} (when, allow_failure, needs...)."""
    result = run(work, "--list-json", *args)
    assert result.returncode == 0, result.stderr + result.stdout
    return {job["name"]: job for job in json.loads(result.stdout)}


def write_variables(work, variables):
    """Project CI/CD variables, in gitlab-ci-local's file. KUBECONFIG and STAGING_KUBECONFIG are
    File-type (the value is the path of a file; the job gets the path of a copy, as with GitLab's
    File variables); the others are plain variables, even when they hold a path."""
    entries = {key: str(value) if key in FILE_VARIABLES
               else {"type": "variable", "values": {"*": str(value)}}
               for key, value in variables.items()}
    (work / ".gitlab-ci-local-variables.yml").write_text(yaml.safe_dump(entries))


def run_job(work, job, variables, *args, timeout=900):
    """Runs one job with the shell executor (the job's image is not used: the tools on PATH are).
    Naming a manual job runs it, as pressing its play button does."""
    write_variables(work, variables)
    return run(work, "--force-shell-executor", job, *args, timeout=timeout)
