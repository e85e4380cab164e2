"""Fixtures for the container tests: podman present, the images built once per session, and a
Podman object whose containers and networks are removed even when a test fails."""
import os
import time

import pytest

import podman as pm  # harness/podman.py
from helpers import figures


@pytest.fixture(scope="session")
def podman_ready():
    reason = pm.available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"container tests cannot run: {reason}")
        pytest.skip(reason)
    pm.sweep_stale()
    with pm.unwinding_on_sigterm():
        yield


@pytest.fixture(scope="session")
def images(podman_ready):
    started = time.monotonic()
    refs = pm.build_images()
    figures.record("container images", "build_seconds", round(time.monotonic() - started, 1))
    return refs


@pytest.fixture(scope="module")
def pod(podman_ready):
    pod = pm.Podman()
    yield pod
    pod.cleanup()

