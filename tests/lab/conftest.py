"""Fixtures for dockercoins-lab against the real control plane of `ci/cluster.sh up` (kwok nodes:
the API server, scheduler and controllers are real, the pods are not run): one cluster per
session in a directory of its own, the chart installed in a fresh namespace per test.
test_install.py needs none of them."""
import pytest

from helpers import kube
from helpers.kube import run_lab


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    with kube.started_cluster(tmp_path_factory.mktemp("lab-cluster"), extras=False) as c:
        yield c


@pytest.fixture
def namespace(cluster):
    yield from kube.namespace_for_test(cluster, "lab")


@pytest.fixture
def release(cluster, namespace):
    """The chart installed as release `dockercoins` in the test's namespace."""
    cluster.helm("install", "dockercoins", kube.CHART, "-n", namespace, "--wait", "--timeout", "3m")
    return namespace


@pytest.fixture
def lab(cluster):
    """dockercoins-lab against the session's cluster (its KUBECONFIG, helm on PATH)."""
    return lambda *args, **kw: run_lab(cluster.env, *args, **kw)


@pytest.fixture
def lab_with():
    """dockercoins-lab with another environment: lab_with(env, *args)."""
    return run_lab
