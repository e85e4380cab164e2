"""The workshop's cluster: the local control plane of ci/cluster.sh (kwok nodes) by default, or
any cluster given by WORKSHOP_KUBECONFIG (a real node: there the pods run, so the steps that
need running containers, such as `kubectl logs` and httping on a ClusterIP, run too)."""
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cluster"))
import kube  # noqa: E402

CRDS = Path(__file__).resolve().parent.parent / "cluster" / "crds"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A kube.Cluster whose pods may or may not run (see `runs_containers`)."""
    given = os.environ.get("WORKSHOP_KUBECONFIG")
    if given:
        c = kube.Cluster(tmp_path_factory.mktemp("given"))
        shutil.copy(given, c.kubeconfig)
        yield c
        return
    c = kube.Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.script("up")
        for crd in sorted(CRDS.glob("*.yaml")):
            c.kubectl("apply", "--server-side", "-f", crd)
        c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        c.apply(kube.DEFAULT_STORAGE_CLASS)
        yield c
    finally:
        c.script("down")
