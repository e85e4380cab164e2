"""kubeconform -strict (built from source by ci/tools.sh) on every scenario and on k8s/, for
Kubernetes 1.29 to 1.34, with the strict schemas that kubernetes-validate bundles: no network.

kubernetes-validate's schemas carry `$id: https://kubernetes.io/api/...` and refer to
`/api/_definitions.json`, which kubeconform would try to download. The fixture copies them with
the `$id`s dropped and the references made relative to the file, so they resolve on disk."""
import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from helpers.chart import CRD_KINDS, K8S_VERSIONS, ROOT, SCENARIOS, render, render_text, tool

BUNDLED = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"


def localise(node):
    if isinstance(node, dict):
        node.pop("$id", None)
        return {key: (value.replace("/api/_definitions.json#", "_definitions.json#")
                      if key == "$ref" and isinstance(value, str) else localise(value))
                for key, value in node.items()}
    if isinstance(node, list):
        return [localise(item) for item in node]
    return node


@pytest.fixture(scope="module")
def schema_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("kubeconform-schemas")
    for version in K8S_VERSIONS:
        source = BUNDLED / f"v{version}.0-local-strict"
        assert source.is_dir(), f"kubernetes-validate has no schemas for {version}"
        target = out / source.name
        target.mkdir()
        for path in source.glob("*.json"):
            (target / path.name).write_text(json.dumps(localise(json.loads(path.read_text()))))
    return out


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    out = tmp_path_factory.mktemp("rendered")
    files = []
    for scenario in SCENARIOS:
        path = out / f"{scenario}.yaml"
        # ServiceMonitor and PodMonitor have no built-in schema; the real API server checks
        # them against the real CRDs in tests/cluster.
        path.write_text(yaml.safe_dump_all(
            [doc for doc in render(scenario) if doc["kind"] not in CRD_KINDS]))
        files.append(path)
    files.append(ROOT / "k8s" / "dockercoins.yaml")
    return files


def kubeconform(schema_dir, version, files):
    location = f"{schema_dir}/{{{{ .NormalizedKubernetesVersion }}}}-local-strict/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json"
    return subprocess.run(
        [tool("kubeconform"), "-strict", "-summary", "-output", "json",
         "-kubernetes-version", f"{version}.0", "-schema-location", location, *map(str, files)],
        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubeconform_strict(schema_dir, manifests, version):
    result = kubeconform(schema_dir, version, manifests)
    report = json.loads(result.stdout)
    summary = report["summary"]
    problems = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert result.returncode == 0 and not problems, problems
    assert summary["invalid"] == 0 and summary["errors"] == 0 and summary["skipped"] == 0
    assert summary["valid"] >= 90


def test_kubeconform_rejects_an_unknown_field(schema_dir, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(render_text().replace("  revisionHistoryLimit: 5", "  revisionHistoryLimt: 5", 1))
    result = kubeconform(schema_dir, K8S_VERSIONS[-1], [broken])
    assert result.returncode != 0
    assert "revisionHistoryLimt" in result.stdout
