"""helm package, helm push to an OCI registry on loopback (Debian's docker-registry, the
distribution registry, started here on a free port), helm pull: the chart round-trips."""
import hashlib
import tarfile

import pytest
import yaml

from helpers.chart import CHART, helm
from helpers.registry import docker_registry


@pytest.fixture
def registry(tmp_path):
    with docker_registry(tmp_path) as address:
        yield address


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_package_push_pull_round_trip(registry, tmp_path):
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    name, version = chart["name"], chart["version"]
    packaged = tmp_path / "packaged"
    helm("package", CHART, "--destination", packaged)
    archive = packaged / f"{name}-{version}.tgz"
    assert archive.is_file()
    with tarfile.open(archive) as tar:
        members = set(tar.getnames())
    assert f"{name}/values.schema.json" in members and f"{name}/templates/NOTES.txt" in members
    assert f"{name}/extras/prometheus-adapter-values.yaml" in members
    assert not [m for m in members if m.startswith(f"{name}/ci/") or m.startswith(f"{name}/tests/")]

    pushed = helm("push", archive, f"oci://{registry}/charts", "--plain-http")
    assert f"Pushed: {registry}/charts/{name}:{version}" in pushed.stdout + pushed.stderr

    pulled = tmp_path / "pulled"
    pulled.mkdir()
    helm("pull", f"oci://{registry}/charts/{name}", "--version", version, "--plain-http",
         "--destination", pulled)
    assert sha256(pulled / f"{name}-{version}.tgz") == sha256(archive)

    shown = helm("show", "chart", f"oci://{registry}/charts/{name}", "--version", version, "--plain-http")
    assert yaml.safe_load(shown.stdout)["appVersion"] == chart["appVersion"]
    # The pulled chart renders like the source.
    rendered = helm("template", "dockercoins", pulled / f"{name}-{version}.tgz", "--namespace", "dockercoins")
    assert "name: worker" in rendered.stdout
