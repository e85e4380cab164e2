"""The cluster view: desired and ready replicas of the release's worker, rng and hasher, shown
beside the speed graph ("worker 10/10 · rng 1/1 · hasher 1/1") with the model line
min(3.33 x workers, 10 x rng). Beside them, the ready endpoints of the rng and hasher Services:
a Service whose selector was edited (`kubectl edit service rng`) has none while its pods run,
and mining stops; the page then names the Service.

CLUSTER_VIEW=kubernetes (the chart): a background watch (clusterwatch.py) of the Deployments and
DaemonSets labelled with the release's instance, in its namespace. Credentials: the pod's
ServiceAccount token in a cluster, else the kubeconfig in KUBECONFIG. Any failure (403, API
unreachable) hides the panel with a one-line reason; the speed never waits on the API.
CLUSTER_VIEW=local (ci/up.sh): the worker count from the heartbeats, rng and hasher from env.
CLUSTER_VIEW=off: hidden.
webui.make_view picks one; this module holds the shapes the views share, and imports neither
webui nor clusterwatch (which imports it)."""
COMPONENTS = ("worker", "rng", "hasher")
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # set by the EndpointSlice controller
SERVICES = ("rng", "hasher")  # the worker calls these by Service name


class Hidden:
    def __init__(self, reason):
        self.reason = reason

    def data(self, workers):
        return {"hidden": self.reason}


class LocalView:
    """ci/up.sh: the workers that send heartbeats, and the rng and hasher it started."""

    def __init__(self, rng, hasher):
        self.fixed = {name: n for name, n in (("rng", rng), ("hasher", hasher)) if n is not None}

    def data(self, workers):
        counts = {"worker": workers, **self.fixed}
        return {"source": "heartbeats", "workloads": {
            name: {"kind": "process", "desired": n, "ready": n} for name, n in counts.items()}}


def replicas(kind, obj):
    """(desired, ready) of a Deployment or DaemonSet, as the client's model objects give them."""
    status = obj.status
    if kind == "DaemonSet":
        return (status and status.desired_number_scheduled) or 0, (status and status.number_ready) or 0
    desired = 1 if obj.spec.replicas is None else obj.spec.replicas
    return desired, (status and status.ready_replicas) or 0


def workloads(objects):
    """{component: {kind, desired, ready}} from {(kind, name): (component, desired, ready)}.
    An rng that is both a Deployment and a DaemonSet (during a switch) counts both."""
    shaped = {}
    for (kind, _), (component, desired, ready) in sorted(objects.items()):
        if component not in COMPONENTS:
            continue
        entry = shaped.setdefault(component, {"kind": kind, "desired": 0, "ready": 0})
        if kind not in entry["kind"].split("+"):
            entry["kind"] += "+" + kind
        entry["desired"] += desired
        entry["ready"] += ready
    return {name: shaped[name] for name in COMPONENTS if name in shaped}


def ready_endpoints(endpoint_slice):
    """The ready endpoints of an EndpointSlice, as the client's model object gives them (a
    missing `ready` means ready, as kube-proxy reads it)."""
    return sum(1 for endpoint in endpoint_slice.endpoints or []
               if not endpoint.conditions or endpoint.conditions.ready is not False)


def services(slices):
    """{component: {"name": its Service, "ready": ready endpoints}} for rng and hasher, from
    (component, Service name, ready endpoints) of each EndpointSlice; a Service has several
    slices past 100 endpoints, and one with no endpoint at all."""
    shaped = {}
    for component, service, ready in slices:
        if component in SERVICES and service:
            entry = shaped.setdefault(component, {"name": service, "ready": 0})
            entry["ready"] += ready
    return shaped


def one_line(text, limit=200):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
