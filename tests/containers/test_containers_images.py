"""Each image, alone: the Dockerfile rules, the built image's metadata, and a real start under
the chart's security settings (read-only root, no capabilities, the image's own user)."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import podman as pm
from helpers import figures

DOCKERFILES = [pm.ROOT / "images" / svc / "Dockerfile" for svc in pm.SERVICES]
SIZE_GOAL_MB = pm.SIZE_GOAL_MB  # 150 MB; webui more: it carries the kubernetes client (cluster view)
READY_GOAL_SECONDS = 2.0


def test_dockerfiles_are_hadolint_clean():
    hadolint = (shutil.which("hadolint")
                or shutil.which("hadolint", path=str(Path(sys.executable).parent)))
    assert hadolint, "hadolint is missing: pip install -r tests/requirements.txt"
    result = subprocess.run([hadolint, *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("svc", pm.SERVICES)
def test_dockerfile_pins_base_and_runs_unprivileged(svc):
    text = (pm.ROOT / "images" / svc / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base, "the base must be the build ARG PYTHON_IMAGE"
    # A real version and a digest, never `latest` or a floating minor tag.
    assert re.fullmatch(r"python:3\.12\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base[1])
    assert text.count("FROM ${PYTHON_IMAGE}") == 2, "a build stage and a runtime stage"
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    cmd = re.findall(r"^CMD (.*)$", text, re.M)
    assert len(cmd) == 1 and cmd[0].startswith("["), "exec-form CMD, so SIGTERM reaches python"


@pytest.mark.parametrize("svc", pm.SERVICES)
def test_image_metadata(images, svc):
    config = pm.image_config(images[svc])["Config"]
    assert config["User"] == pm.APP_USER
    assert "8080/tcp" in config["ExposedPorts"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == pm.TEST_TAG
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"]
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", labels["org.opencontainers.image.revision"])
    expected = (["python", "/app/worker.py"] if svc == "worker" else
                ["gunicorn", "-c", "/app/gunicorn.conf.py", f"{svc}:create_app()"])
    assert config["Cmd"] == expected


@pytest.mark.parametrize("svc", pm.SERVICES)
def test_image_starts_hardened_answers_healthz_and_stops(images, pod, svc):
    """Alone, read-only, no capabilities, the image's user: /healthz 200 on 8080, ready fast,
    a clean exit on SIGTERM. The worker's ops port is up even before rng, hasher and redis."""
    ref = images[svc]
    container = pod.run(f"alone-{svc}", ref)
    ready_path = pm.ready_path_alone(ref)  # webui's /readyz needs redis: /healthz alone
    ready = container.wait_http(ready_path)
    status, _ = pm.http_get(container.url("/healthz"))
    assert status == 200
    assert container.exec("id", "-u").strip() == "10001"
    # No capabilities at all, and nothing under / is writable.
    assert "CapEff:\t0000000000000000" in container.exec("cat", "/proc/1/status")
    probe = subprocess.run(["podman", "exec", container.name, "python", "-c",
                            "open('/app/probe', 'w')"], capture_output=True, text=True)
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr
    stop = container.stop()
    logs = container.logs()
    if svc != "worker":  # alone, the worker has no redis for its final flush
        assert container.exit_code() == 0, logs[-3000:]
    assert stop < 3.0, f"{svc} took {stop:.1f} s to stop on SIGTERM"
    if ready > READY_GOAL_SECONDS:
        # A cold first start (page cache, a busy core) is not the image's speed: try again.
        again = pod.run(f"again-{svc}", ref)
        first, ready = ready, min(ready, again.wait_http(ready_path))
        again.stop()
        print(f"{svc}: first start took {first:.2f} s to be ready, the second {ready:.2f} s")
    size_mb = pm.image_size(ref) / 1e6
    figures.record("container images", f"{svc}_image", {
        "size_mb": round(size_mb, 1), "ready_seconds": round(ready, 3),
        "stop_seconds": round(stop, 3)})
    print(f"{svc}: {size_mb:.1f} MB, start-to-ready {ready:.2f} s, stop {stop:.2f} s")
    assert size_mb <= SIZE_GOAL_MB[svc], f"{ref} is {size_mb:.0f} MB (goal {SIZE_GOAL_MB[svc]})"
    assert ready <= READY_GOAL_SECONDS, f"{ref} took {ready:.2f} s to be ready"


# Run in the webui container: the cluster view's client parts that the watch uses (a Deployment
# list into the client's models, a list call that meets a closed port on the container's own
# loopback), then each module loaded from the app or the venv must have its .pyc beside it.
CLIENT_CHECK = """
import importlib.util, json, os, sys
import kubernetes, webui, clusterwatch
from cluster import replicas
from clusterwatch import api_problem
listing = kubernetes.client.ApiClient().deserialize(json.dumps({
    "kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {"resourceVersion": "7"},
    "items": [{"metadata": {"name": "dc-worker"}, "status": {"readyReplicas": 2}, "spec": {
        "replicas": 3, "selector": {}, "template": {"spec": {"containers": [{"name": "w"}]}}}}]}),
    "V1DeploymentList", "application/json")
config = kubernetes.client.Configuration(host="https://127.0.0.1:9")
config.retries = 0
try:
    kubernetes.client.AppsV1Api(kubernetes.client.ApiClient(config)).list_namespaced_deployment(
        "dc", _request_timeout=2)
    problem = None
except Exception as error:
    problem = api_problem(error)
files = [m.__file__ for m in list(sys.modules.values()) if (getattr(m, "__file__", None) or "")
         .startswith(("/app/", "/opt/venv/")) and m.__file__.endswith(".py")]
print(json.dumps({"replicas": replicas("Deployment", listing.items[0]), "problem": problem,
    "kubernetes_modules": sum(f.count("/kubernetes/") for f in files),
    "no_pyc": [f for f in files if not os.path.exists(importlib.util.cache_from_source(f))]}))
"""


def test_webui_runs_the_cluster_view_client_byte_compiled(images, pod):
    container = pod.run("client-webui", images["webui"])
    container.wait_http("/healthz")
    found = json.loads(container.exec("python", "-c", CLIENT_CHECK))
    assert found["replicas"] == [3, 2], found
    assert found["problem"].startswith("Kubernetes API unreachable: "), found
    assert "refused" in found["problem"].lower(), found
    assert found["kubernetes_modules"] > 50, found  # the models a Deployment list needs, at least
    assert found["no_pyc"] == [], found
