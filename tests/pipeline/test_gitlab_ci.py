"""The GitLab pipeline, offline: gitlab-ci-local evaluates .gitlab-ci.yml as GitLab would (its JSON
schema, extends, rules, needs, parallel:matrix) and gives the plan of each pipeline source, job by
job; gitlab-ci-verify runs shellcheck on every script line; checkov runs its gitlab_ci checks. The
job scripts run for real here where they need no cluster (lint, the chart push to a registry on
loopback, their input errors); the deploy jobs run against the real node in
tests/node/test_pipeline_on_node.py."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from helpers.gitlab_local import ROOT, clone, commit, plan, run, run_job, source_args

TOOLS = ROOT / ".tools" / "bin"
SERVICES = sorted(p.parent.name for p in (ROOT / "images").glob("*/Dockerfile"))
BUILDS = {f"build: [{service}]" for service in SERVICES}
SCANS = {f"container-scanning: [{service}]" for service in SERVICES}
# The tiers of tests/tiers.txt a shared runner runs (no root on the host, no node), and those it
# cannot.
SHARED_RUNNER_TIERS = ["fast", "cluster"]
OWN_MACHINE_TIERS = {"images", "node", "nodes"}
TESTS = {f"test: [{tier}]" for tier in SHARED_RUNNER_TIERS}
JOBS = {"lint", "test", "build", "sbom", "container-scanning", "chart", "staging", "gate-staging",
        "review", "gate-review", "stop-review", "production", "release", "rollback"}
RELEASE_TAG = "v1.2.3"
# (source, ref, checkout branch) of each pipeline the plan tests look at.
SOURCES = {
    "main": ("push", "main", "main"),
    "branch": ("push", "feature/x", "feature/x"),
    "merge_request": ("merge_request_event", "feature/x", "feature/x"),
    "release_tag": ("tag", RELEASE_TAG, "main"),
    "other_tag": ("tag", "nightly-2026-11-30", "main"),
}


@pytest.fixture(scope="module")
def clones(tmp_path_factory):
    """One clone per checkout branch, shared by the plan tests (they only read)."""
    return {branch: clone(tmp_path_factory.mktemp(branch.replace("/", "-")), branch)
            for branch in ("main", "feature/x")}


@pytest.fixture(scope="module")
def plans(clones):
    return {name: plan(clones[branch], *source_args(source, ref))
            for name, (source, ref, branch) in SOURCES.items()}


@pytest.fixture(scope="module")
def preview(clones):
    """The pipeline as GitLab merges it (extends and defaults expanded)."""
    result = run(clones["main"], "--preview")
    assert result.returncode == 0, result.stderr + result.stdout
    return yaml.safe_load(result.stdout)


def runs(jobs):
    """{job: (when, allow_failure)} of the jobs that run in that pipeline."""
    return {name: (job["when"], job["allow_failure"]) for name, job in jobs.items()
            if job["when"] != "never"}


def needs(job):
    return {need["job"] if isinstance(need, dict) else need for need in job["needs"] or []}


# ---- the plan of each pipeline source ---------------------------------------------------------
def test_one_build_job_per_service_image():
    assert SERVICES == ["hasher", "rng", "webui", "worker"]


def test_main_runs_lint_test_builds_chart_push_and_staging(plans):
    jobs = plans["main"]
    automatic = ("on_success", False)
    assert runs(jobs) == {name: automatic for name in {
        "lint", *TESTS, *BUILDS, "sbom", *SCANS, "chart", "staging", "gate-staging"}}
    assert needs(jobs["staging"]) == {"lint", "test", "build", "chart"}
    assert needs(jobs["gate-staging"]) == {"staging"}  # the physics gate after the deploy
    assert needs(jobs["chart"]) == {"lint"}


@pytest.mark.parametrize("source", ["branch", "merge_request"])
def test_other_branches_and_merge_requests_get_a_review_app(plans, source):
    jobs = plans[source]
    automatic = ("on_success", False)
    expected = {name: automatic for name in {"lint", *TESTS, *BUILDS, "sbom", *SCANS, "review",
                                             "gate-review"}}
    expected["stop-review"] = ("manual", True)  # the Stop button; it never blocks the pipeline
    assert runs(jobs) == expected
    assert needs(jobs["review"]) == {"lint", "test", "build"}
    assert needs(jobs["gate-review"]) == {"review"}
    assert all(needs(jobs[scan]) == {"build"} for scan in SCANS)


def test_release_tag_runs_only_production_and_rollback_by_hand(plans):
    # No build: production deploys the images staging ran, built from this same commit.
    # production blocks the pipeline until someone runs it; rollback is there if needed.
    # The release follows production by itself (a later stage), with what production ran.
    assert runs(plans["release_tag"]) == {"production": ("manual", False),
                                          "release": ("on_success", False),
                                          "rollback": ("manual", True)}


def test_other_tags_run_nothing(plans):
    assert runs(plans["other_tag"]) == {}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_dependency_chain_is_valid(clones, name):
    source, ref, branch = SOURCES[name]
    result = run(clones[branch], "--validate-dependency-chain", *source_args(source, ref))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "All job dependencies are valid" in result.stdout + result.stderr


# ---- how the jobs are made ----------------------------------------------------------------------
def test_preview_merges_templates_into_every_job(preview):
    assert preview["stages"][1:-1] == ["lint", "test", "build", "staging", "production", "release",
                                       "cleanup"]
    jobs = {name: job for name, job in preview.items() if isinstance(job, dict) and "script" in job}
    assert set(jobs) == JOBS
    for name, job in jobs.items():
        assert "extends" not in job and job.get("rules"), name
        assert "only" not in job and "except" not in job, name  # rules instead
    for name in ("staging", "review", "production", "rollback"):
        assert jobs[name]["before_script"][0] == "ci/tools.sh helm kubectl", name  # pinned Helm 3
        assert jobs[name]["interruptible"] is False, name  # never cancelled mid-rollout


def test_environments_and_resource_groups(preview):
    # Each deploy's URL is the address ci/deploy.sh found (its dotenv report), and GitLab's
    # Kubernetes dashboard of the environment reads the agent and the namespace.
    kubernetes = {"agent": "$CI_PROJECT_PATH:dockercoins", "namespace": "$NAMESPACE"}
    url = {"url": "$ENVIRONMENT_URL", "kubernetes": kubernetes}
    assert preview["staging"]["environment"] == {"name": "staging", **url}
    assert preview["review"]["environment"] == {
        "name": "review/$CI_COMMIT_REF_SLUG", "on_stop": "stop-review", "auto_stop_in": "1 week",
        **url}
    assert preview["stop-review"]["environment"] == {
        "name": "review/$CI_COMMIT_REF_SLUG", "action": "stop"}
    assert preview["production"]["environment"] == {"name": "production", **url}
    assert preview["rollback"]["environment"] == {"name": "production", "action": "access",
                                                  "kubernetes": kubernetes}
    # The gates work on the environment they check, without recording a deployment.
    assert preview["gate-staging"]["environment"] == {"name": "staging", "action": "verify"}
    assert preview["gate-review"]["environment"] == {"name": "review/$CI_COMMIT_REF_SLUG",
                                                     "action": "verify"}
    # One deploy at a time per environment: the stop job queues behind its review deploy.
    # A gate queues with its environment's deploys, so no deploy changes the app it measures.
    groups = {name: preview[name]["resource_group"]
              for name in ("staging", "gate-staging", "review", "gate-review", "stop-review",
                           "production", "rollback")}
    assert groups == {"staging": "staging", "gate-staging": "staging",
                      "review": "review/$CI_COMMIT_REF_SLUG",
                      "gate-review": "review/$CI_COMMIT_REF_SLUG",
                      "stop-review": "review/$CI_COMMIT_REF_SLUG", "production": "production",
                      "rollback": "production"}
    # Each environment has a namespace of its own.
    namespaces = {name: preview[name]["variables"]["NAMESPACE"]
                  for name in ("staging", "gate-staging", "review", "gate-review", "stop-review",
                               "production", "rollback")}
    assert namespaces["staging"] == namespaces["gate-staging"] == "$STAGING_NAMESPACE"
    assert (namespaces["review"] == namespaces["gate-review"] == namespaces["stop-review"]
            == "$NAMESPACE_PREFIX-$CI_ENVIRONMENT_SLUG")
    assert namespaces["production"] == namespaces["rollback"] == "$NAMESPACE_PREFIX-production"


def test_stop_job_needs_no_repository(preview):
    stop = preview["stop-review"]
    assert stop["variables"]["GIT_STRATEGY"] == "none"
    assert "before_script" not in stop  # nothing from ci/
    assert stop["image"] == {"name": "$HELM_KUBECTL_IMAGE"}
    script = "\n".join(stop["script"])
    for repo_path in ("ci/", "charts/", "deploy/"):
        assert repo_path not in script
    # The image's helm is the pinned Helm 3, like ci/tools.sh's.
    tools = (ROOT / "ci" / "tools.sh").read_text()
    helm_version = tools.split('HELM_VERSION="v', 1)[1].split('"', 1)[0]
    assert preview["variables"]["HELM_KUBECTL_IMAGE"] == f"dtzar/helm-kubectl:{helm_version}"


def test_production_checks_staging_before_it_deploys(preview):
    assert preview["production"]["script"] == ["ci/passed-staging.sh check",
                                               "ci/deploy.sh production",
                                               "ci/release-notes.sh >out/release.md"]
    assert preview["staging"]["script"] == ["ci/deploy.sh staging", "ci/passed-staging.sh record"]
    assert preview["rollback"]["script"] == ["ci/rollback.sh"]


def test_images_are_pinned(preview):
    images = {key: value for key, value in preview["variables"].items() if key.endswith("_IMAGE")}
    assert set(images) == {"PYTHON_IMAGE", "GO_IMAGE", "BUILDAH_IMAGE", "HELM_KUBECTL_IMAGE",
                           "TRIVY_IMAGE", "GLAB_IMAGE"}
    for image in images.values():
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and any(c.isdigit() for c in tag), image
    jobs = [job for job in preview.values() if isinstance(job, dict) and "script" in job]
    assert all(job["image"]["name"] in {f"${key}" for key in images} for job in jobs)


def test_reports_each_job_leaves_for_the_merge_request(preview):
    reports = {name: job.get("artifacts", {}).get("reports") for name, job in preview.items()
               if isinstance(job, dict) and "script" in job}
    assert reports == {
        "lint": None, "chart": None, "build": None, "stop-review": None, "release": None,
        "rollback": None,
        "test": {"junit": "out/junit/*.xml"},
        "gate-staging": {"junit": "out/gate/junit.xml"},
        "gate-review": {"junit": "out/gate/junit.xml"},
        "sbom": {"cyclonedx": "out/sbom/*.cdx.json"},
        "container-scanning": {"container_scanning": "gl-container-scanning-report-$SERVICE.json"},
        "staging": {"dotenv": "out/deploy.env"}, "review": {"dotenv": "out/deploy.env"},
        "production": {"dotenv": "out/deploy.env"}}
    # Test reports are kept when the tests fail: that is when the merge request needs them.
    for name in ("test", "gate-staging", "gate-review"):
        assert preview[name]["artifacts"]["when"] == "always", name
    assert preview["test"]["script"] == ['ci/test.sh "$TIER" --junitxml="out/junit/$TIER.xml"']
    assert preview["gate-review"]["artifacts"]["paths"] == ["out/gate/"]  # the table, as a file
    # Every image is scanned, by the Trivy that ci/tools.sh pins.
    tools = (ROOT / "ci" / "tools.sh").read_text()
    trivy = tools.split('TRIVY_VERSION="', 1)[1].split('"', 1)[0]
    assert preview["variables"]["TRIVY_IMAGE"] == f"aquasec/trivy:{trivy}"
    scan = preview["container-scanning"]
    [matrix] = scan["parallel"]["matrix"]
    assert sorted(matrix["SERVICE"]) == SERVICES
    assert scan["variables"]["IMAGE"] == "$REGISTRY/$SERVICE:$TAG"  # what build pushed
    assert scan["variables"]["REPORT"] == "gl-container-scanning-report-$SERVICE.json"
    assert scan["script"][0] == ('trivy image --exit-code 0 --format template --template '
                                 '"@/contrib/gitlab.tpl" --output "$REPORT" "$IMAGE"')


def test_the_gate_runs_after_each_deploy(preview):
    for gate, deploy in (("gate-review", "review"), ("gate-staging", "staging")):
        job = preview[gate]
        assert needs(job) == {deploy}, gate
        assert job["stage"] == preview[deploy]["stage"]
        assert job["script"] == ["ci/gate.sh"]
        assert job["interruptible"] is False  # it scales the environment, then puts it back


def test_release_job_lists_what_production_runs(preview):
    release = preview["release"]
    assert release["image"] == {"name": "$GLAB_IMAGE"}  # GitLab 18: the release keyword runs glab
    name, _, version = preview["variables"]["GLAB_IMAGE"].rpartition(":")
    assert name == "registry.gitlab.com/gitlab-org/cli" and version.startswith("v1.")
    assert release["release"] == {"tag_name": "$CI_COMMIT_TAG", "name": "DockerCoins $CI_COMMIT_TAG",
                                  "description": "out/release.md"}
    # A stage after production's: production is manual and blocks the pipeline until it passed.
    stages = preview["stages"]
    assert stages.index(release["stage"]) == stages.index(preview["production"]["stage"]) + 1
    assert release["dependencies"] == ["production"] and "needs" not in release
    assert "out/release.md" in preview["production"]["artifacts"]["paths"]
    assert release["variables"]["GIT_STRATEGY"] == "none"


def test_the_agent_config_admits_this_project():
    """.gitlab/agents/<name>/config.yaml: the agent's name is its folder's; its ci_access names the
    project whose path makes the context name that the jobs select (KUBE_CONTEXT)."""
    [config_file] = (ROOT / ".gitlab" / "agents").glob("*/config.yaml")
    agent = config_file.parent.name
    config = yaml.safe_load(config_file.read_text())
    [project] = config["ci_access"]["projects"]
    assert project["id"] == "dockercoins/dockercoins"  # the path gitlab-ci-local's clones have
    assert f"{project['id']}:{agent}" == "dockercoins/dockercoins:dockercoins"
    pipeline = (ROOT / ".gitlab-ci.yml").read_text()
    assert f"agent: $CI_PROJECT_PATH:{agent}" in pipeline
    assert project["default_namespace"] == "dockercoins-staging"


def tiers():
    """{tier: [folder, ...]} as `ci/test.sh --tiers` prints tests/tiers.txt."""
    out = subprocess.run([str(ROOT / "ci" / "test.sh"), "--tiers"], capture_output=True,
                         text=True, check=True).stdout
    return {tier: folders.split() for tier, folders in
            (line.split(":", 1) for line in out.splitlines())}


def test_every_test_folder_is_in_exactly_one_tier():
    folders = sorted(f"tests/{p.name}" for p in (ROOT / "tests").iterdir()
                     if p.is_dir() and any(p.glob("test_*.py")))
    assert sorted(f for named in tiers().values() for f in named) == folders


def test_test_file_basenames_are_unique():
    # pytest collects tests/ with one rootdir and no __init__.py: two test files of one name in
    # two folders pass alone and refuse to collect together.
    names = [p.name for p in (ROOT / "tests").glob("*/test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


def test_the_test_job_runs_every_tier_a_shared_runner_can(preview):
    assert set(tiers()) == set(SHARED_RUNNER_TIERS) | OWN_MACHINE_TIERS
    assert list(tiers())[:2] == SHARED_RUNNER_TIERS   # the cheapest first
    assert preview["test"]["parallel"]["matrix"] == [{"TIER": SHARED_RUNNER_TIERS}]
    docs = (ROOT / "docs" / "pipeline.md").read_text().split(
        "## Tiers only a machine like this runs", 1)[1]
    for tier in OWN_MACHINE_TIERS:
        assert f"`{tier}`" in docs, tier
        for folder in tiers()[tier]:
            assert f"`{folder}`" in docs, folder


def test_an_unknown_tier_is_refused_with_the_list():
    proc = subprocess.run([str(ROOT / "ci" / "test.sh"), "fsat"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "no tier named 'fsat'; the tiers: fast cluster images node nodes" in proc.stderr


def test_every_values_file_is_in_git_per_environment():
    assert sorted(p.name for p in (ROOT / "deploy").glob("*.yaml")) == [
        "production.yaml", "review.yaml", "staging.yaml"]
    # Staging has production's shape, so what passed there is what production gets.
    assert (yaml.safe_load((ROOT / "deploy" / "staging.yaml").read_text())
            == yaml.safe_load((ROOT / "deploy" / "production.yaml").read_text()))


# ---- linters on the pipeline ------------------------------------------------------------------
def test_shellcheck_finds_nothing_in_script_lines():
    # It does find things: on `echo $FOO` it reports SC2086 in its JSON list.
    verify = Path(sys.executable).parent / "gitlab-ci-verify"  # from requirements.txt
    result = subprocess.run([str(verify), "--no-lint-api", "--format", "json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_shellcheck_sees_an_unquoted_variable(tmp_path):
    """The check above can fail: the same tool on a pipeline with `echo $FOO`."""
    verify = Path(sys.executable).parent / "gitlab-ci-verify"
    (tmp_path / ".gitlab-ci.yml").write_text("job:\n  script:\n    - echo $FOO\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    result = subprocess.run([str(verify), "--no-lint-api", "--format", "json"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "SC2086" in result.stdout, result.stdout + result.stderr


def test_checkov_gitlab_ci_checks_pass(tmp_path):
    result = subprocess.run(
        [str(TOOLS / "checkov"), "--file", str(ROOT / ".gitlab-ci.yml"), "--framework", "gitlab_ci",
         "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    report = json.loads(result.stdout)
    summary = report["summary"]
    assert summary["failed"] == 0 and summary["skipped"] == 0, report["results"]["failed_checks"]
    # Not a pass by scanning nothing (checkov reads no file with YAML tags such as !reference):
    # every job was checked.
    checked = {c["resource"] for c in report["results"]["passed_checks"]
               if c["check_id"] == "CKV_GITLABCI_1"}
    # Each script where it is written: the two gate jobs take theirs from the .gate template.
    assert checked == JOBS - {"gate-review", "gate-staging"} | {".gate"}


# ---- the job scripts, where they need no cluster ------------------------------------------------
def test_lint_job_passes(tmp_path):
    result = subprocess.run([str(ROOT / "ci" / "lint.sh")], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for check in ("helm lint --strict (deploy/production.yaml)",
                  "kubernetes-validate --strict 1.34.0 (deploy/staging.yaml)", "ruff", "hadolint",
                  "yamllint", "shellcheck"):
        assert f"--- {check}" in result.stderr
    assert "lint: all passed" in result.stderr


def test_lint_job_fails_on_a_typo_in_the_values(tmp_path):
    work = clone(tmp_path)
    staging = work / "deploy" / "staging.yaml"
    staging.write_text(staging.read_text().replace("worker:\n  replicaCount", "worker:\n  replicas"))
    result = subprocess.run([str(work / "ci" / "lint.sh")], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 1
    assert "lint failed: helm lint --strict (deploy/staging.yaml);" in result.stderr


def helm(*args):
    return subprocess.run([str(TOOLS / "helm"), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_an_all_digit_sha_needs_set_string():
    """Why the pipeline passes tags and SHAs with --set-string: --set makes 12345678 a number."""
    chart = ROOT / "charts" / "dockercoins"
    broken = helm("template", "x", chart, "--set", "global.image.tag=12345678")
    assert broken.returncode != 0 and "/global/image/tag': got number" in broken.stderr
    fine = helm("template", "x", chart, "--set-string", "global.image.tag=12345678")
    assert fine.returncode == 0 and "/worker:12345678\"" in fine.stdout
    for script in ("deploy.sh", "push-chart.sh", "rollback.sh"):
        code = [line for line in (ROOT / "ci" / script).read_text().splitlines()
                if not line.lstrip().startswith("#")]
        assert not [line for line in code if "--set " in line or "--set=" in line], script


def run_script(script, env, *args):
    return subprocess.run(["bash", str(ROOT / "ci" / script), *args], capture_output=True,
                          text=True, timeout=60,
                          env={k: v for k, v in {**os.environ, **env}.items() if v is not None})


def test_deploy_explains_a_missing_kubeconfig():
    result = run_script("deploy.sh", {"KUBECONFIG": None}, "staging")
    assert result.returncode == 1
    assert "File-type CI/CD variable" in result.stderr


def test_deploy_explains_a_kubeconfig_given_as_content():
    # The pitfall: a Variable-type KUBECONFIG holds the YAML itself, not a path.
    result = run_script("deploy.sh", {"KUBECONFIG": "apiVersion: v1\nkind: Config\n"}, "staging")
    assert result.returncode == 1
    assert "must be a path to a file" in result.stderr


def test_deploy_refuses_an_environment_without_values(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    result = run_script("deploy.sh", {"KUBECONFIG": str(kubeconfig), "NAMESPACE": "x"}, "qa")
    assert result.returncode == 1
    assert "usage: ci/deploy.sh review|staging|production" in result.stderr


def test_passed_staging_wants_a_full_sha():
    result = run_script("passed-staging.sh", {"STAGING_NAMESPACE": "dockercoins-staging"},
                        "check", "1a2b3c4d")
    assert result.returncode == 1
    assert "'1a2b3c4d' is not a full commit SHA" in result.stderr


@pytest.mark.parametrize("all_digit", [False, True], ids=["hex-sha", "all-digit-sha"])
def test_chart_job_pushes_the_chart_with_version_and_sha(tmp_path, registry, all_digit):
    """The `chart` job for real, through gitlab-ci-local, into a registry on loopback."""
    work = clone(tmp_path)
    sha = commit(work, "a commit to package", all_digit_short_sha=all_digit)[:8]
    version = yaml.safe_load((work / "charts" / "dockercoins" / "Chart.yaml").read_text())["version"]
    image = f"{registry}/dockercoins/dockercoins"
    result = run_job(work, "chart", {"CI_REGISTRY": registry, "CI_REGISTRY_IMAGE": image,
                                     "CI_REGISTRY_USER": "gitlab-ci-token",
                                     "CI_REGISTRY_PASSWORD": "not-checked-on-loopback"},
                     "--ignore-predefined-vars", "CI_REGISTRY,CI_REGISTRY_IMAGE")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"Pushed: {image}/charts/dockercoins:{version}_{sha}" in output
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    fetched = helm("pull", f"oci://{image}/charts/dockercoins", "--version", f"{version}+{sha}",
                   "--plain-http", "--destination", pulled)
    assert fetched.returncode == 0, fetched.stderr
    with tarfile.open(pulled / f"dockercoins-{version}+{sha}.tgz") as tar:
        chart = yaml.safe_load(tar.extractfile("dockercoins/Chart.yaml"))
    assert chart["version"] == f"{version}+{sha}"
    assert chart["appVersion"] == sha  # a string, also when all digits
    # The packaged chart deploys this commit's images with no --set at all.
    rendered = helm("template", "x", pulled / f"dockercoins-{version}+{sha}.tgz")
    assert rendered.returncode == 0, rendered.stderr
    assert f'/worker:{sha}"' in rendered.stdout
