"""Generated files are current: the README parameter table (readme-generator-for-helm, from the
`## @param` comments of values.yaml) and k8s/ (ci/render-k8s.sh, from the chart)."""
import difflib
import shutil
import subprocess

import yaml

from helpers.chart import CHART, ROOT


def diff(expected, actual, name):
    return "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                        f"{name} (committed)", f"{name} (generated)"))


def test_readme_parameter_table_is_current(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(CHART / "README.md", readme)
    subprocess.run([ROOT / "ci" / "chart-readme.sh", readme], check=True, timeout=120)
    committed = (CHART / "README.md").read_text()
    generated = readme.read_text()
    assert committed == generated, ("charts/dockercoins/README.md is stale: run ci/chart-readme.sh\n"
                                    + diff(committed, generated, "README.md"))
    assert "| `rng.autoscaling.enabled`" in committed


def test_readme_generator_rejects_an_undocumented_value(tmp_path):
    """The generator really checks: a value without its @param comment fails it."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    values = chart / "values.yaml"
    values.write_text(values.read_text() + "undocumented: 1\n")
    result = subprocess.run([ROOT / ".tools" / "bin" / "readme-generator", "--values", values,
                             "--readme", chart / "README.md"], capture_output=True, text=True)
    assert result.returncode != 0
    assert "Missing metadata for key: undocumented" in result.stdout + result.stderr


def test_k8s_manifests_match_the_chart(tmp_path):
    subprocess.run([ROOT / "ci" / "render-k8s.sh", tmp_path], check=True, timeout=120)
    generated = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in (ROOT / "k8s").iterdir())
    assert committed == generated, f"k8s/ holds {committed}, ci/render-k8s.sh makes {generated}"
    for name in generated:
        want = (tmp_path / name).read_text()
        have = (ROOT / "k8s" / name).read_text()
        assert have == want, (f"k8s/{name} drifted from the chart: run ci/render-k8s.sh\n"
                              + diff(have, want, f"k8s/{name}"))


def test_k8s_manifests_are_namespace_free_without_test_pods():
    """k8s/ goes into any namespace (`kubectl apply -k k8s/ -n NS`): no object names a namespace
    or is cluster-scoped, and k8s/Kustomization lists the manifests."""
    docs = [d for d in yaml.safe_load_all((ROOT / "k8s" / "dockercoins.yaml").read_text()) if d]
    assert not [d for d in docs if "namespace" in d["metadata"]]
    assert not [d for d in docs if d["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding")]
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert [s.get("namespace") for s in binding["subjects"]] == [None]  # the binding's own
    assert not [d for d in docs if d["kind"] == "Pod"], "helm test pods belong to helm only"
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", n) for n in ("worker", "rng", "hasher", "webui", "redis")} <= names
    kustomization = yaml.safe_load((ROOT / "k8s" / "Kustomization").read_text())
    assert kustomization == {"apiVersion": "kustomize.config.k8s.io/v1beta1",
                             "kind": "Kustomization", "resources": ["dockercoins.yaml"]}
