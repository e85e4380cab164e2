"""Fixtures for ci/lab.py against the real control plane of `ci/cluster.sh up` (kwok nodes: the
API server, scheduler and controllers are real, the pods are not run): one cluster per session
in a directory of its own, the chart installed in a fresh namespace per test."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "cluster"))
import kube  # noqa: E402

LAB = kube.ROOT / "ci" / "lab.py"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    c = kube.Cluster(tmp_path_factory.mktemp("lab-cluster"))
    try:
        c.script("up")
    except kube.Failed:
        c.script("down")
        raise
    try:
        yield c
    finally:
        c.script("down")


@pytest.fixture
def namespace(cluster):
    name = cluster.new_namespace("lab")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def release(cluster, namespace):
    """The chart installed as release `dockercoins` in the test's namespace."""
    cluster.helm("install", "dockercoins", kube.CHART, "-n", namespace, "--wait", "--timeout", "3m")
    return namespace


def run_lab(env, *args, timeout=300):
    """ci/lab.py as a user runs it, with ENV: (exit status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, str(LAB), *map(str, args)], env=env, text=True,
                          capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def lab(cluster):
    """ci/lab.py against the session's cluster (its KUBECONFIG, helm on PATH)."""
    return lambda *args, **kw: run_lab(cluster.env, *args, **kw)


@pytest.fixture
def lab_with():
    """ci/lab.py with another environment: lab_with(env, *args)."""
    return run_lab
