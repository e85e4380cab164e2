"""The workshop's cluster: the local control plane of ci/cluster.sh (kwok nodes) by default, or
any cluster given by WORKSHOP_KUBECONFIG (a real node: there the pods run, so the steps that
need running containers, such as `kubectl logs` and httping on a ClusterIP, run too)."""
import os
import shutil

import pytest

from helpers import kube


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A kube.Cluster whose pods may or may not run (see helpers.workshop.runs_containers)."""
    given = os.environ.get("WORKSHOP_KUBECONFIG")
    if given:
        c = kube.Cluster(tmp_path_factory.mktemp("given"))
        shutil.copy(given, c.kubeconfig)
        yield c
        return
    with kube.started_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c
