"""The cluster view's watch (CLUSTER_VIEW=kubernetes): the release's Deployments, DaemonSets and
EndpointSlices (the controller copies the Services' labels onto them) kept current in memory
through the official `kubernetes` client, so a page view never calls the API. One thread per
kind: a list, then a watch from the list's resourceVersion (renewed every CLUSTER_WATCH_SECONDS,
which re-checks the permission too), a new list on 410 Gone, a backoff after any error. Any
failure hides the panel with a one-line reason until a list works again."""
import json
import logging
import threading

import kubernetes
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from cluster import (COMPONENT_LABEL, INSTANCE_LABEL, SERVICE_NAME_LABEL, one_line, ready_endpoints,
                     replicas, services, workloads)

# kind -> (API, list method)
KINDS = {"Deployment": ("apps", "list_namespaced_deployment"),
         "DaemonSet": ("apps", "list_namespaced_daemon_set"),
         "EndpointSlice": ("discovery", "list_namespaced_endpoint_slice")}
REQUEST_SECONDS = 5.0  # a list or the start of a watch that takes longer: the API is unreachable
BACKOFF_SECONDS = (1.0, 30.0)  # after an error: from the first, doubling up to the second
WAITING = "waiting for the first answer from the Kubernetes API"
log = logging.getLogger("webui")


def apis(kubeconfig=None):
    """{"apps": the apps/v1 API, "discovery": discovery.k8s.io/v1}. In a pod, the
    ServiceAccount's token (reloaded as it rotates); elsewhere the kubeconfig `kubeconfig` (a
    path, or several joined by ':'; None: ~/.kube/config). Raises ConfigException when neither
    is there."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.retries = 0  # the watch loop retries, with a backoff
    client = kubernetes.client.ApiClient(configuration)
    return {"apps": kubernetes.client.AppsV1Api(client),
            "discovery": kubernetes.client.DiscoveryV1Api(client)}


class WatchedView:
    """The release's workloads and its Services' ready endpoints, as the last list and the
    watch events since then left them."""

    def __init__(self, api, namespace, release, watch_seconds):
        self.api, self.namespace, self.watch_seconds = api, namespace, watch_seconds
        self.selector = f"{INSTANCE_LABEL}={release}"
        self.lock = threading.Lock()
        self.objects = {}  # (kind, name) -> (component, desired, ready)
        self.slices = {}  # EndpointSlice name -> (component, Service name, ready endpoints)
        self.problems = {kind: WAITING for kind in KINDS}  # None once listed and watching
        self.stopped = threading.Event()

    def start(self):
        for kind in KINDS:
            threading.Thread(target=self.run, args=(kind,), name=f"watch-{kind}", daemon=True).start()

    def stop(self):
        self.stopped.set()

    def data(self, workers):
        with self.lock:
            problem = next((p for p in self.problems.values() if p), None)
            objects, slices = dict(self.objects), dict(self.slices)
        if problem:
            return {"source": "kubernetes", "hidden": problem}
        return {"source": "kubernetes", "workloads": workloads(objects),
                "services": services(slices.values())}

    def run(self, kind):
        delay = BACKOFF_SECONDS[0]
        while not self.stopped.is_set():
            try:
                version = self.relist(kind)
                while not self.stopped.is_set():
                    version = self.watch(kind, version)  # ends after watch_seconds: watch again
                    delay = BACKOFF_SECONDS[0]
            except ApiException as error:
                if error.status == 410:  # the version is too old: list again, at once
                    continue
                self.failed(kind, error)
            except Exception as error:  # unreachable, timeouts, bad answers: retry, never die
                self.failed(kind, error)
            self.stopped.wait(delay)
            delay = min(2 * delay, BACKOFF_SECONDS[1])

    def lister(self, kind):
        api, method = KINDS[kind]
        return getattr(self.api[api], method)

    def relist(self, kind):
        listing = self.lister(kind)(
            self.namespace, label_selector=self.selector, _request_timeout=REQUEST_SECONDS)
        with self.lock:
            if kind == "EndpointSlice":
                self.slices.clear()
            for key in [key for key in self.objects if key[0] == kind]:
                del self.objects[key]
            for obj in listing.items:
                self.put(kind, obj)
            self.problems[kind] = None
        return listing.metadata.resource_version

    def watch(self, kind, version):
        """Applies events from `version` on until the server ends the watch; the last version."""
        stream = kubernetes.watch.Watch().stream(
            self.lister(kind), self.namespace, label_selector=self.selector,
            resource_version=version, allow_watch_bookmarks=True,
            timeout_seconds=self.watch_seconds,
            _request_timeout=(REQUEST_SECONDS, self.watch_seconds + REQUEST_SECONDS))
        for event in stream:
            if event["type"] == "ERROR":  # a Status in the stream: 410 Gone, 403 Forbidden...
                status = event["raw_object"]
                raise ApiException(status=status.get("code"), reason=status.get("reason"),
                                   body=json.dumps(status))
            if event["type"] == "BOOKMARK":  # only a newer version; left a dict by the client
                version = event["raw_object"]["metadata"]["resourceVersion"]
                continue
            obj = event["object"]
            version = obj.metadata.resource_version
            with self.lock:
                if event["type"] == "DELETED":
                    self.objects.pop((kind, obj.metadata.name), None)
                    if kind == "EndpointSlice":
                        self.slices.pop(obj.metadata.name, None)
                else:
                    self.put(kind, obj)
            if self.stopped.is_set():
                break
        return version

    def put(self, kind, obj):
        labels = obj.metadata.labels or {}
        component = labels.get(COMPONENT_LABEL)
        if kind == "EndpointSlice":
            self.slices[obj.metadata.name] = (component, labels.get(SERVICE_NAME_LABEL),
                                              ready_endpoints(obj))
        else:
            self.objects[(kind, obj.metadata.name)] = (component, *replicas(kind, obj))

    def failed(self, kind, error):
        problem = api_problem(error)
        with self.lock:
            changed, self.problems[kind] = self.problems[kind] != problem, problem
        if changed:
            log.warning("cluster view hidden: %s", problem)


def api_problem(error):
    """A one-line reason from a failed call: the API's own message when it answered."""
    if isinstance(error, ApiException):
        try:
            message = json.loads(error.body)["message"]
        except (TypeError, ValueError, KeyError):
            message = error.reason
        if error.status == 403:
            return one_line(f"no permission to read the release's workloads: {message}")
        return one_line(f"Kubernetes API error {error.status}: {message}")
    if isinstance(error, (HTTPError, OSError)):
        if isinstance(getattr(error, "reason", None), Exception):
            error = error.reason  # urllib3's MaxRetryError: the connection's own error says more
        return one_line(f"Kubernetes API unreachable: {type(error).__name__}: {error}")
    return one_line(f"cluster view failed: {type(error).__name__}: {error}")
