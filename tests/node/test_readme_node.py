"""docs/node.md's block as typed (the real node, linked from the README): `ci/cluster.sh up --node`, `helm install ... -f
.cluster/node-values.yaml --wait`, `kubectl scale deployment worker --replicas=10`, the plateau on
/json, and `ci/cluster.sh down`. It runs after the session's node is down (one node at a time on
this machine; see conftest.py), in a cluster directory of its own."""
import pytest

from helpers.node import Release, block_as_typed, steady_speed
from dockercoins_lab.scaling import model


def test_the_node_block_as_typed(node_cluster, tmp_path):
    with block_as_typed(node_cluster, tmp_path, "ci/cluster.sh up --node") as (proc, cluster):
        assert '"hashes"' in proc.stdout   # the block's last command printed /json
        # The plateau the block promises: ten workers on one rng give ~10 hashes/s.
        app = Release(cluster, "default")
        app.kubectl("rollout", "status", "deployment/worker", "--timeout=180s")
        assert steady_speed(app, settle=10) == pytest.approx(model(10, 1), rel=0.15)
