"""The chart's objects whose kinds come from other projects' CRDs, on the real API server: KEDA's
ScaledObject (rng.autoscaling.provider=keda, KEDA v2.21.0's CRD) and the Gateway API's HTTPRoute
(webui.httpRoute, the v1.4.1 standard channel), pinned in tests/cluster/crds/optional/ by
ci/cluster/optional-crds.sh. Without the CRD the chart refuses the install with its own message;
with it, the server accepts the object under strict field validation (no unknown or dropped
field) and keeps it as rendered. Only KEDA's path is meant for the local cluster: prometheus-
adapter is not served here, and no KEDA operator runs yet, so this proves what the server accepts,
not the scaling itself."""
import pytest
import yaml

from helpers.kube import CHART, CRDS

RELEASE = "dockercoins"
CASES = {
    "keda": dict(crd="keda.sh_scaledobjects.yaml", name="scaledobjects.keda.sh",
                 kind="ScaledObject", api="keda.sh/v1alpha1/ScaledObject",
                 sets=["rng.autoscaling.enabled=true", "rng.autoscaling.provider=keda",
                       "rng.autoscaling.minReplicas=2"],
                 message="rng.autoscaling.provider=keda renders a KEDA ScaledObject (keda.sh/v1alpha1), "
                         "and this cluster does not serve it"),
    "httproute": dict(crd="gateway.networking.k8s.io_httproutes.yaml",
                      name="httproutes.gateway.networking.k8s.io", kind="HTTPRoute",
                      api="gateway.networking.k8s.io/v1/HTTPRoute",
                      sets=["webui.httpRoute.enabled=true", "webui.httpRoute.parentRefs[0].name=gw",
                            "webui.httpRoute.parentRefs[0].sectionName=http"],
                      message="webui.httpRoute.enabled renders a Gateway API HTTPRoute "
                              "(gateway.networking.k8s.io/v1), and this cluster does not serve it"),
}


def kept(stored, wanted):
    """Every field of `wanted` is in `stored` with its value (the server may add its defaults)."""
    if isinstance(wanted, dict):
        return isinstance(stored, dict) and all(k in stored and kept(stored[k], v)
                                                for k, v in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(stored, list) and len(stored) == len(wanted)
                and all(kept(s, w) for s, w in zip(stored, wanted)))
    return stored == wanted


def set_args(sets):
    return [arg for item in sets for arg in ("--set", item)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_with_and_without_the_crd(cluster, namespace, case):
    c = CASES[case]
    refused = cluster.run(["helm", "install", RELEASE, CHART, "-n", namespace, *set_args(c["sets"])],
                          check=False)
    assert refused.returncode != 0
    assert c["message"] in refused.stderr, refused.stderr
    assert not cluster.get("all", "-n", namespace)["items"], "a refused install left objects"
    cluster.run(["helm", "uninstall", RELEASE, "-n", namespace], check=False)

    cluster.kubectl("apply", "--server-side", "-f", CRDS / "optional" / c["crd"])
    try:
        cluster.wait_established(c["name"])
        rendered = cluster.helm("template", RELEASE, CHART, "-n", namespace, "--api-versions",
                                c["api"], *set_args(c["sets"]))
        wanted = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == c["kind"])
        # Strict: a field the CRD's schema does not know fails instead of being pruned.
        cluster.kubectl("create", "--dry-run=server", "--validate=strict", "-f", "-",
                        input=yaml.safe_dump(wanted))
        cluster.helm("install", RELEASE, CHART, "-n", namespace, "--wait", "--timeout", "3m",
                     *set_args(c["sets"]))
        stored = cluster.get(c["kind"].lower(), wanted["metadata"]["name"], "-n", namespace)
        assert kept(stored["spec"], wanted["spec"]), (stored["spec"], wanted["spec"])
    finally:
        cluster.run(["helm", "uninstall", RELEASE, "-n", namespace, "--wait"], check=False)
        cluster.kubectl("delete", "crd", c["name"], "--wait=true")
