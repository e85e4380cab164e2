"""compose.yaml, for people with Docker: valid for Debian's docker-compose, shaped like the
seed's, and really run with `--scale worker=3` through podman's Docker-compatible socket."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

import podman as pm
from helpers import figures
from localapp import COMPONENTS, SERVICES, free_port

COMPOSE_FILE = pm.ROOT / "compose.yaml"
RNG_CEILING = 10.0  # one rng, 0.1 s per request, one at a time


def docker_compose():
    found = shutil.which("docker-compose")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing (ci/podman-setup.sh installs it)")
        pytest.skip("docker-compose is missing (ci/podman-setup.sh installs it)")
    return found


# compose.yaml reads these; the caller's shell must not change what the tests see.
COMPOSE_VARS = ("REGISTRY", "TAG", "REDIS_IMAGE", "HOST_IP", "WEBUI_PORT", "RNG_PORT",
                "HASHER_PORT", "DOCKER_HOST", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE")


def compose(*args, env=None, timeout=120):
    base = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARS}
    return subprocess.run([docker_compose(), "-f", str(COMPOSE_FILE), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})})


def published_port(port):
    """The host port of a long-form ({published: ...}) or short-form (ip:host:container)
    port entry."""
    if isinstance(port, dict):
        return int(port["published"])
    return int(str(port).split(":")[-2])


def test_compose_config_is_valid_and_shaped_like_the_seed():
    result = compose("config")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == set(COMPONENTS)
    published = {name: [published_port(p) for p in svc.get("ports", [])]
                 for name, svc in services.items()}
    assert published == {"webui": [8000], "rng": [8001], "hasher": [8002],
                         "worker": [], "redis": []}
    for name in COMPONENTS:
        svc = services[name]
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"], name
    # --scale needs no fixed name and no host port on the worker.
    assert "container_name" not in services["worker"]
    # The official redis image, pinned to a version.
    image = services["redis"]["image"]
    assert image.startswith("redis:") and image.split(":")[1][0].isdigit(), image
    assert "latest" not in image
    for name in SERVICES:
        assert services[name]["build"]["dockerfile"] == f"{name}/Dockerfile"
        assert Path(services[name]["build"]["context"]) == pm.ROOT / "images"


@pytest.fixture
def podman_socket(podman_ready):
    """podman's Docker-compatible API on a private socket, stopped afterwards."""
    folder = tempfile.mkdtemp(prefix="dctest-sock-")
    path = f"{folder}/podman.sock"
    # --time=120: were this test killed, the service still ends after two idle minutes.
    service = subprocess.Popen(["podman", "system", "service", "--time=120", f"unix://{path}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        pm.wait_until(lambda: os.path.exists(path), 20, what="podman socket")
        yield f"unix://{path}"
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        try:
            service.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()
        shutil.rmtree(folder, ignore_errors=True)


def test_compose_up_with_three_workers(images, podman_socket):
    """`docker-compose up --scale worker=3` on the images just built (and the local redis
    stand-in): three workers mine together, up to one rng's ceiling of 10 hashes/s."""
    project = f"dctest{os.getpid()}compose"
    ports = {"WEBUI_PORT": free_port(), "RNG_PORT": free_port(), "HASHER_PORT": free_port()}
    env = {"DOCKER_HOST": podman_socket, "REGISTRY": pm.TEST_REGISTRY, "TAG": pm.TEST_TAG,
           "REDIS_IMAGE": pm.LOCAL_REDIS_IMAGE, "HOST_IP": "127.0.0.1",
           **{k: str(v) for k, v in ports.items()}}
    try:
        up = compose("-p", project, "up", "-d", "--no-build", "--scale", "worker=3", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        webui = f"http://127.0.0.1:{ports['WEBUI_PORT']}"
        for port in ports.values():
            pm.wait_until(lambda: pm.http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
                          30, what=f"compose service on {port}")
        running = pm.podman("ps", "--filter", f"label=com.docker.compose.project={project}",
                            "--filter", "label=com.docker.compose.service=worker",
                            "--format", "{{.Names}}").split()
        assert len(running) == 3, running

        def flush_after(count):
            return pm.wait_until(
                lambda: (lambda n: n if n["hashes"] > count else None)(
                    pm.http_json(f"{webui}/json")), 30, what="a flush")
        first = flush_after(0)
        time.sleep(3)  # the three workers' first flushes are in
        start = flush_after(pm.http_json(f"{webui}/json")["hashes"])
        time.sleep(15)
        end = flush_after(pm.http_json(f"{webui}/json")["hashes"])
        rate = (end["hashes"] - start["hashes"]) / (end["now"] - start["now"])
        expected = min(3 / 0.3, RNG_CEILING)
        figures.record("container images", "compose", {
            "workers": 3, "hashes_per_second": round(rate, 2),
            "ratio_to_10": round(rate / expected, 3)})
        print(f"compose, 3 workers: {rate:.2f} hashes/s (first flush {first['hashes']})")
        assert 0.8 <= rate / expected <= 1.05
    finally:
        down = compose("-p", project, "down", "-t", "5", "--remove-orphans", env=env)
        # Whatever down missed (a run killed half-way, an API difference) goes too.
        leftovers = pm.podman("ps", "-a", "-q", "--filter",
                              f"label=com.docker.compose.project={project}", check=False).split()
        if leftovers:
            pm.podman("rm", "-f", "-t", "0", *leftovers, check=False)
        pm.podman("network", "rm", "-f", f"{project}_default", check=False)
        if down.returncode != 0:
            print(f"docker-compose down: {down.stderr[-2000:]}")
