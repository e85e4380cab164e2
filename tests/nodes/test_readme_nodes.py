"""docs/node.md's three-node block as typed, the issue's "done when": `ci/cluster.sh up --nodes 3`,
`helm install` with `rng.kind=DaemonSet`, PreferSameNode and 15 workers spread, about 30 hashes/s on
/json, then `ci/cluster.sh down`. It runs last, after the session's nodes are down (one node
cluster at a time on this machine), in a cluster directory of its own."""
from helpers import figures
from helpers.node import Release, block_as_typed, steady_speed
from dockercoins_lab.scaling import model


def test_the_nodes_block_as_typed(nodes_cluster, tmp_path):
    with block_as_typed(nodes_cluster, tmp_path, "ci/cluster.sh up --nodes 3") as (proc, cluster):
        assert proc.stdout.count(" Ready ") == 3, proc.stdout   # kubectl get nodes
        assert '"hashes"' in proc.stdout   # the block's last command printed /json
        # The figure the block promises: one rng per node, each worker on its own node's rng.
        speed = steady_speed(Release(cluster, "default"), settle=10)
        figures.record("node", "nodes_block_hashes_per_second", round(speed, 1))
        assert speed >= 0.9 * model(15, 3)
