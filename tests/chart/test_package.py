"""helm package, helm push to an OCI registry on loopback (Debian's docker-registry, the
distribution registry, started here on a free port), helm pull: the chart round-trips."""
import hashlib
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request

import pytest
import yaml

from chart_support import CHART, helm

REGISTRY = "/usr/bin/docker-registry"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def registry(tmp_path):
    if not shutil.which(REGISTRY):
        pytest.fail(f"{REGISTRY} is missing: run ci/tools.sh (it apt-installs docker-registry)")
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    log = open(tmp_path / "registry.log", "w")
    process = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("docker-registry did not start:\n" + (tmp_path / "registry.log").read_text())
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


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
