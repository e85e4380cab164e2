"""Fixtures for the container tests: podman present, the images built once per session, and a
Podman object whose containers and networks are removed even when a test fails."""
import json
import os
import time

import pytest

import podman as pm  # harness/podman.py

FIGURES = pm.FIGURES


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
    FIGURES["build_seconds"] = round(time.monotonic() - started, 1)
    return refs


@pytest.fixture(scope="module")
def pod(podman_ready):
    pod = pm.Podman()
    yield pod
    pod.cleanup()


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("container images")
    if "build_seconds" in FIGURES:
        write(f"build of all four images: {FIGURES['build_seconds']} s")
    for svc, fig in sorted(FIGURES.get("images", {}).items()):
        write(f"{svc:7s} {fig['size_mb']:6.1f} MB   start-to-ready {fig['ready_seconds']:.2f} s"
              f"   stop {fig['stop_seconds']:.2f} s")
    for key in ("app_start_to_ready_seconds", "worker_rate", "worker_stop_seconds",
                "compose"):
        if key in FIGURES:
            write(f"{key}: {FIGURES[key]}")
    out = pm.ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "containers.json").write_text(json.dumps(FIGURES, indent=2) + "\n")
