"""Fixtures for the tests against a real Kubernetes control plane (ci/cluster.sh): one cluster per
session, in a directory of its own, on free loopback ports; a fresh namespace per test."""
import pytest

from helpers import kube


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """`ci/cluster.sh up`, with the chart's CRDs and a default StorageClass, then `down`."""
    with kube.started_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


@pytest.fixture
def namespace(cluster):
    yield from kube.namespace_for_test(cluster)

