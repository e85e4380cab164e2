"""k8s/ as a kustomization on the real API server: `kubectl apply -k k8s/ -n NS` into two
namespaces, as docs/helm.md types it. The copies never collide (no object is cluster-scoped or
names a namespace), each one's objects are all in its own namespace, and each webui's
RoleBinding grants its own ServiceAccount, in its own namespace only."""
import yaml

from helpers.kube import DEPLOYMENTS, ROOT, SERVICES, component
from localapp import wait_until

K8S = ROOT / "k8s"


def test_two_copies_in_two_namespaces(cluster):
    built = [d for d in yaml.safe_load_all(cluster.kubectl("kustomize", K8S)) if d]
    cluster_scoped = set(cluster.kubectl("api-resources", "--namespaced=false", "-o", "name").split())
    kinds = {d["kind"] for d in built}
    assert not [d for d in built if "namespace" in d["metadata"]]
    namespaces = [cluster.new_namespace("kustomize") for _ in range(2)]
    try:
        for ns in namespaces:
            cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
            cluster.kubectl("apply", "-k", K8S, "-n", ns)
        for ns in namespaces:
            for doc in built:
                got = cluster.get(doc["kind"], doc["metadata"]["name"], "-n", ns)
                assert got["metadata"]["namespace"] == ns
            assert {d["metadata"]["name"] for d in cluster.get("deploy", "-n", ns)["items"]} == \
                set(DEPLOYMENTS)
            assert {s["metadata"]["name"] for s in cluster.get("svc", "-n", ns)["items"]} == \
                set(SERVICES)
            wait_until(lambda: len(cluster.running_ready_pods(ns, component("worker"))) == 1, 60,
                       f"the worker of {ns} Running")
            # The binding without a subject namespace is its own namespace's.
            for other in namespaces:
                allowed = cluster.run(["kubectl", "auth", "can-i", "list", "deployments", "-n", other,
                                       f"--as=system:serviceaccount:{ns}:webui"], check=False)
                assert allowed.stdout.strip() == ("yes" if other == ns else "no"), (ns, other)
        assert not {k.lower() + "s" for k in kinds} & {r.split(".")[0] for r in cluster_scoped}
        cluster.kubectl("delete", "-k", K8S, "-n", namespaces[0], "--wait=true")
        assert not cluster.get("deploy", "-n", namespaces[0])["items"]
        assert len(cluster.get("deploy", "-n", namespaces[1])["items"]) == len(DEPLOYMENTS)
    finally:
        for ns in namespaces:
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_plain_apply_of_the_folder(cluster):
    """`kubectl apply -f k8s/` (the plain-manifests way) reads the manifests alone: the
    kustomization's file name has no .yaml, so kubectl does not take it for an object."""
    ns = cluster.new_namespace("plain")
    try:
        cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
        cluster.kubectl("apply", "-f", K8S, "-n", ns)
        assert {d["metadata"]["name"] for d in cluster.get("deploy", "-n", ns)["items"]} == \
            set(DEPLOYMENTS)
        cluster.kubectl("delete", "-f", K8S, "-n", ns, "--wait=true")
        assert not cluster.get("deploy", "-n", ns)["items"]
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
