"""The scaling chapter's kubectl side on the real node: helpers/workshop_kubectl.py's tests, with
this folder's cluster. Here the pods run, so `kubectl logs -l app=worker` shows the
workers' lines, and httping, run from a pod with `kubectl run` as the workshop does, times rng's
and hasher's ClusterIPs: rng waits behind its one-at-a-time cap, hasher answers at once."""
import statistics

import pytest

from helpers.httping import PING_LINE, culprit
from helpers.workshop import one_off_pod
from helpers.workshop_kubectl import (  # noqa: F401  (collected here, with this folder's cluster)
    test_logs_and_httping_from_inside_the_cluster, test_select_scale_and_roll_out_as_typed,
    workshop)


@pytest.fixture
def cluster(node_cluster, monkeypatch):
    """The `cluster` those tests use: the real node, with httping from its registry."""
    # The commands run with the cluster's environment (helpers.workshop.shell).
    monkeypatch.setitem(node_cluster.env, "HTTPING_IMAGE",
                        f"{node_cluster.registry}/dockercoins/httping:bookworm")
    return node_cluster


def test_httping_from_a_pod_finds_rng(workshop):  # noqa: F811  (the imported fixture)
    """The workshop's culprit hunt on real pods: with 10 workers on one rng, httping on the two
    ClusterIPs, from a pod, singles out rng from its figures alone."""
    workshop("kubectl scale deployment worker --replicas=10")
    workshop("kubectl rollout status deployment worker --timeout=3m")
    out = workshop("""
RNG=$(kubectl get svc rng -o go-template={{.spec.clusterIP}})
HASHER=$(kubectl get svc hasher -o go-template={{.spec.clusterIP}})
""" + one_off_pod("echo rng; httping -c 3 $RNG; echo hasher; httping -c 3 $HASHER"))
    rng_part, hasher_part = out.split("\nhasher\n")
    latencies = {name: statistics.median(float(ms) / 1000 for ms in PING_LINE.findall(part))
                 for name, part in (("rng", rng_part), ("hasher", hasher_part))}
    assert culprit(latencies) == "rng", (latencies, out)
