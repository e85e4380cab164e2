"""Fixtures for the tests against a real Kubernetes control plane (ci/cluster.sh): one cluster per
session, in a directory of its own, on free loopback ports; a fresh namespace per test."""
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import kube  # noqa: E402

CRDS = Path(__file__).parent / "crds"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """`ci/cluster.sh up` (building the binaries if `ci/cluster.sh build` has not), then `down`.
    The CRDs the chart can use (ServiceMonitor, PodMonitor) are installed as on a real cluster
    with the prometheus-operator, and a default StorageClass stands for the cloud's."""
    c = kube.Cluster(tmp_path_factory.mktemp("cluster"))
    started = time.monotonic()
    try:
        c.script("up")
    except kube.Failed:
        c.script("down")
        raise
    kube.FIGURES["cluster_up_seconds"] = round(time.monotonic() - started, 1)
    try:
        for crd in sorted(CRDS.glob("*.yaml")):
            c.kubectl("apply", "--server-side", "-f", crd)
        c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        c.apply(kube.DEFAULT_STORAGE_CLASS)
        yield c
    finally:
        c.script("down")


@pytest.fixture
def namespace(cluster):
    name = cluster.new_namespace()
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_terminal_summary(terminalreporter):
    if kube.FIGURES:
        terminalreporter.section("cluster")
        for key, value in kube.FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")
