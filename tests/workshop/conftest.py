"""The workshop's cluster, for the README's and docs/workshop.md's blocks as typed: the local
control plane of ci/cluster.sh (kwok nodes) by default, or any cluster given by
WORKSHOP_KUBECONFIG. The kubectl side whose pods must run (logs, httping on a ClusterIP) is
proven on the real node: tests/node/test_workshop_on_node.py."""
import os
import shutil

import pytest

from helpers import kube


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A kube.Cluster: kwok's, or the one WORKSHOP_KUBECONFIG names."""
    given = os.environ.get("WORKSHOP_KUBECONFIG")
    if given:
        c = kube.Cluster(tmp_path_factory.mktemp("given"))
        shutil.copy(given, c.kubeconfig)
        yield c
        return
    with kube.started_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c
