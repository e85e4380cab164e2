"""docs/node.md's three-node block as typed, the issue's "done when": `ci/cluster.sh up --nodes 3`,
`helm install` with `rng.kind=DaemonSet`, PreferSameNode and 15 workers spread, about 30 hashes/s on
/json, then `ci/cluster.sh down`. It runs last, after the session's nodes are down (one node
cluster at a time on this machine), in a cluster directory of its own."""
import subprocess

from helpers.node import FIGURES, NodeCluster, Release, host_state, leftovers, steady_speed
from localapp import ROOT
from scaling import model
from workshop import readme


def test_the_nodes_block_as_typed(nodes_cluster, tmp_path):
    nodes_cluster.script("down")   # a no-op when test_down_leaves_nothing already ran
    block = readme.block_starting("ci/cluster.sh up --nodes 3", "docs/node.md")
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
        assert proc.stdout.count(" Ready ") == 3, proc.stdout   # kubectl get nodes
        assert '"hashes"' in proc.stdout   # the block's last command printed /json
        # The figure the block promises: one rng per node, each worker on its own node's rng.
        speed = steady_speed(Release(cluster, "default"), settle=10)
        FIGURES["nodes_block_hashes_per_second"] = round(speed, 1)
        assert speed >= 0.9 * model(15, 3)
    finally:
        cluster.script(*lines[-1].split("#")[0].split()[1:])   # ci/cluster.sh down
    assert leftovers(before, host_state()) == {}
