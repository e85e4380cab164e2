"""Fixtures for the chart against the images (each rendered container on its real image): the chart rendered by the real helm
(ci/tools.sh), and the real images built by ci/build-images.sh from the local base
(ci/podman-setup.sh), run with podman through harness/podman.py.

With CI set, missing tools fail the run instead of skipping it, as in tests/containers."""
import os
import shutil
import subprocess

import pytest
import yaml

import podman as pm  # harness/podman.py
from localapp import ROOT

CHART = ROOT / "charts" / "dockercoins"
RELEASE = "dockercoins"
NAMESPACE = "dockercoins"
# Our own image names, so a concurrent tests/containers run retagging
# localhost/dockercoins-test/*:test cannot swap an image under this test. The build cache is
# shared, so a warm build costs the same.
CONTRACT_REGISTRY = "localhost/dockercoins-rendered"
CONTRACT_TAG = "test"


def _unavailable(reason):
    if os.environ.get("CI"):
        pytest.fail(f"tests/rendered cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def helm_bin():
    path = shutil.which("helm") or str(ROOT / ".tools" / "bin" / "helm")
    if not os.path.exists(path):
        _unavailable("helm is missing (run ci/tools.sh)")
    return path


@pytest.fixture(scope="session")
def rendered(helm_bin, tmp_path_factory):
    """Every object `helm template` renders with the default values, the app images pointed
    at the locally built ones by global.image.registry and global.image.tag only."""
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ, HELM_CONFIG_HOME=str(home / "config"),
               HELM_CACHE_HOME=str(home / "cache"), HELM_DATA_HOME=str(home / "data"))
    argv = [helm_bin, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "--set", f"global.image.registry={CONTRACT_REGISTRY}",
            "--set", f"global.image.tag={CONTRACT_TAG}"]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"helm template failed ({result.returncode}):\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def podman_ready():
    reason = pm.available()
    if reason:
        _unavailable(reason)
    if subprocess.run(["podman", "image", "exists", pm.LOCAL_REDIS_IMAGE]).returncode != 0:
        _unavailable(f"{pm.LOCAL_REDIS_IMAGE} is missing (run ci/podman-setup.sh)")
    pm.sweep_stale()
    with pm.unwinding_on_sigterm():
        yield


@pytest.fixture(scope="session")
def images(podman_ready):
    """{service: reference} of the four app images, built by ci/build-images.sh."""
    return pm.build_images(registry=CONTRACT_REGISTRY, tag=CONTRACT_TAG)


@pytest.fixture(scope="module")
def pod(podman_ready):
    pod = pm.Podman(prefix=f"dcrendered-{os.getpid()}")
    yield pod
    pod.cleanup()
