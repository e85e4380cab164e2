"""docs/node.md's block as typed (the real node, linked from the README): `ci/cluster.sh up --node`, `helm install ... -f
.cluster/node-values.yaml --wait`, `kubectl scale deployment worker --replicas=10`, the plateau on
/json, and `ci/cluster.sh down`. It runs after the session's node is down (one node at a time on
this machine; see conftest.py), in a cluster directory of its own."""
import subprocess

import pytest

from helpers.node import NodeCluster, Release, host_state, leftovers, steady_speed
from localapp import ROOT
from scaling import model
from workshop import readme


def test_the_node_block_as_typed(node_cluster, tmp_path):
    node_cluster.script("down")   # a no-op when test_down_leaves_nothing already ran
    block = readme.block_starting("ci/cluster.sh up --node", "docs/node.md")
    directory = tmp_path / "cluster"
    lines = block.lines()
    assert lines[-1].startswith("ci/cluster.sh down")
    # As typed, but with this test's cluster directory in place of the default .cluster/.
    script = "\n".join(lines[:-1]).replace(".cluster/", f"{directory}/")
    cluster = NodeCluster(directory)
    env = {k: v for k, v in cluster.env.items() if k != "KUBECONFIG"}   # the block's eval sets it
    before = host_state()
    try:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert '"hashes"' in proc.stdout   # the block's last command printed /json
        # The plateau the block promises: ten workers on one rng give ~10 hashes/s.
        app = Release(cluster, "default")
        app.kubectl("rollout", "status", "deployment/worker", "--timeout=180s")
        assert steady_speed(app, settle=10) == pytest.approx(model(10, 1), rel=0.15)
    finally:
        cluster.script(*lines[-1].split("#")[0].split()[1:])   # ci/cluster.sh down
    assert leftovers(before, host_state()) == {}
