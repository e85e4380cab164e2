"""The scaling lab on any cluster, through the official `kubernetes` Python client.

  dockercoins-lab [--namespace NS] [--release R] scale worker|rng N [--timeout S] [--no-wait]
  dockercoins-lab rng-kind DaemonSet|Deployment    (helm upgrade --reset-then-reuse-values)
  dockercoins-lab measure [--seconds S]            hashes/s from webui's /json
  dockercoins-lab experiment [--workers 1,2,3,5,10] [--rng 3 | --daemonset] [--seconds S]
                  [--out PNG]
  dockercoins-lab experiment --autoscale [--workers 10] [--hold S] [--interval S] [--csv F]
                  the autoscaling chapter: 1 -> 10 -> 1 workers, rng scaled by its HPA
  dockercoins-lab gate [--junit XML] [--table MD]  the pipeline's physics check, W=1 and W=10 on 1 rng
  dockercoins-lab drain NODE [--seconds S]         kubectl drain NODE while mining, uncordon, counts

The cluster is the current context of KUBECONFIG (~/.kube/config by default; in a pod, its own
ServiceAccount). The release's objects are found by their labels (app.kubernetes.io/instance and
app.kubernetes.io/component), so any namePrefix works. rng-kind and experiment --daemonset
upgrade the release with the chart of the checkout the lab runs in (the current folder or a
parent of it), or --chart. Errors say what to fix and exit 1 (2 for bad arguments), never with
a traceback. See docs/lab.md."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dockercoins_lab import scaling

PROG = "dockercoins-lab"


def checkout(start=None):
    """The DockerCoins checkout the lab runs in: START (the current folder) or the nearest of its
    parents that holds the chart; START itself when none does (the chart is then --chart's)."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "charts" / "dockercoins" / "Chart.yaml").is_file():
            return folder
    return start


ROOT = checkout()
CHART = ROOT / "charts" / "dockercoins"
REQUEST_TIMEOUT = 15   # seconds for one API call: an unreachable server fails, never hangs
# What scale, measure and experiment need in the release's namespace (docs/lab.md has the Role).
ROLE_RULES = ("deployments, deployments/scale, daemonsets (apps): get, list, patch; "
              "pods, events, services: get, list; services/proxy: get; "
              "horizontalpodautoscalers (autoscaling): get, list")
# rng-kind (and experiment --daemonset) run `helm upgrade`, which creates, patches and deletes
# every kind of object the chart renders and writes Helm's release Secrets: the namespace's
# built-in `admin` ClusterRole grants exactly that, bound in the namespace only.
HELM_RULES = ("the namespace's built-in `admin` ClusterRole (helm upgrade creates, updates and "
              "deletes every kind of object of the release, and Helm's release Secrets)")


STOPPED = 0.05  # hashes/s: below this, measure looks for a Service with no ready endpoint

# The physics gate (dockercoins-lab gate, the pipeline's gate jobs): how far a cell may be off the
# model.
GATE_TOLERANCE = 0.15
GATE_CELLS = ((1, 1), (10, 1))   # (W, R): one worker's 3.33/s, and rng's plateau at 10/s

# How the table and the plot mark the step where rng is a DaemonSet (R = its ready pods).
DAEMONSET_MARK = "(rng DS, 1 per node)"


class LabError(Exception):
    """A failure with the fix in its message: printed as is, exit status 1."""


class Progress:
    """One status line on stderr: rewritten in place with \\r on a terminal. Otherwise (a CI log)
    plain lines: one when the STATE changes, and at most one per EVERY seconds in between."""

    def __init__(self, stream=sys.stderr, every=10.0):
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every
        self.state = self.printed_at = None

    def __call__(self, text, state=None):
        state = text if state is None else state
        if self.tty:
            self.stream.write(f"\r{text}\x1b[K")
            self.stream.flush()
        elif state != self.state or time.monotonic() - self.printed_at >= self.every:
            print(text, file=self.stream, flush=True)
            self.printed_at = time.monotonic()
        self.state = state

    def done(self):
        """End the line so the next output starts on its own."""
        if self.tty and self.state is not None:
            self.stream.write("\n")
            self.stream.flush()
        self.state = None


def forbidden_fix(namespace, message, helm=False):
    """An RBAC 403 message of the API server, with the verb and resource it names and the rights
    needed: the lab's Role, or with HELM (rng-kind, experiment --daemonset) the `admin`
    ClusterRole that helm upgrade needs, bound in the namespace."""
    match = re.search(r'cannot (\w+) resource "([^"]+)"', message)
    what = f"{match.group(1)} {match.group(2)}"
    user = re.search(r'User "([^"]+)"', message)
    user = user.group(1) if user else "NAME"
    sa = re.fullmatch(r"system:serviceaccount:([^:]+):(.+)", user)
    subject = f"--serviceaccount {sa.group(1)}:{sa.group(2)}" if sa else f"--user {user}"
    if helm:
        fix = (f"Fix: this command runs helm upgrade, which needs {HELM_RULES}: kubectl -n "
               f"{namespace} create rolebinding dockercoins-lab-admin --clusterrole admin "
               f"{subject}; or use a kubeconfig that has it.")
    else:
        fix = (f"Fix: bind a Role in {namespace} to this user or ServiceAccount granting "
               f"{ROLE_RULES} (docs/lab.md has one; then kubectl -n {namespace} create "
               f"rolebinding dockercoins-lab --role dockercoins-lab {subject}), or use a "
               "kubeconfig that has it.")
    return f"forbidden: the API server denies {what} in namespace {namespace} ({message}).\n{fix}"


class Lab:
    """One release of the chart in one namespace of the cluster in the kubeconfig."""

    def __init__(self, namespace="dockercoins", release="dockercoins", kubeconfig=None,
                 progress=None, helm=False):
        try:
            from kubernetes import client, config
        except ImportError:
            raise LabError("the `kubernetes` Python client is not installed for "
                           f"{sys.executable}.\nFix: install the lab with its extra, in the "
                           "checkout: pip install -c ci/requirements.txt '.[lab]' "
                           "(docs/lab.md).") from None
        self.ns = namespace
        self.release = release
        self.kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
        self.progress = progress or Progress()
        self.helm = helm   # this command runs helm upgrade: an RBAC error names helm's rights
        try:
            if self.kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                api = config.new_client_from_config(config_file=self.kubeconfig)
            else:
                config.load_incluster_config()
                api = client.ApiClient()
        except (config.ConfigException, OSError, ValueError, TypeError) as e:
            where = self.kubeconfig or "~/.kube/config"
            raise LabError(f"no cluster: cannot load the kubeconfig {where} ({e}).\n"
                           "Fix: set KUBECONFIG (or --kubeconfig) to the file of a running "
                           "cluster, e.g. the one `ci/cluster.sh up` writes.") from None
        self.host = api.configuration.host
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)

    # --- every API call goes through call(): one timeout, errors that name the fix -------------
    def call(self, method, *args, **kw):
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError
        try:
            return method(*args, _request_timeout=REQUEST_TIMEOUT, **kw)
        except ApiException as e:
            try:
                message = json.loads(e.body)["message"]
            except (TypeError, ValueError, KeyError):   # not a Status: a proxied page, say
                body = e.body or e.reason or ""
                message = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
                message = message.strip()[:300]
            # RBAC's 403 names the verb and resource; the service proxy's own 403 does not.
            if e.status == 403 and re.search(r"cannot \w+ resource", message):
                raise LabError(forbidden_fix(self.ns, message, self.helm)) from None
            if e.status == 401:
                raise LabError(f"unauthorized by the API server at {self.host} ({message}).\n"
                               "Fix: renew the kubeconfig's credentials (token or "
                               "certificate).") from None
            raise LabError(f"the API server at {self.host} answered {e.status} {e.reason}: "
                           f"{message}") from None
        except (HTTPError, OSError) as e:
            raise LabError(f"no cluster: the API server at {self.host} does not answer ({e}).\n"
                           "Fix: start the cluster (`ci/cluster.sh up`) or point KUBECONFIG at "
                           "one that runs.") from None

    # --- the release's objects ---------------------------------------------------------------
    def selector(self, component):
        return f"app.kubernetes.io/instance={self.release},app.kubernetes.io/component={component}"

    def workload(self, component):
        """(kind, object) of a component: 'Deployment' or 'DaemonSet'. LabError if the release
        has none in the namespace."""
        for kind, lister in (("Deployment", self.apps.list_namespaced_deployment),
                             ("DaemonSet", self.apps.list_namespaced_daemon_set)):
            items = self.call(lister, self.ns, label_selector=self.selector(component)).items
            if items:
                return kind, items[0]
        raise LabError(
            f"release {self.release!r} not found in namespace {self.ns!r}: no {component} "
            f"Deployment or DaemonSet labelled app.kubernetes.io/instance={self.release}.\n"
            f"Fix: pass --namespace and --release of an installed release (`helm list -A`), or "
            f"install one: helm install {self.release} charts/dockercoins -n {self.ns} "
            "--create-namespace")

    def deployment(self, component):
        kind, obj = self.workload(component)
        if kind != "Deployment":
            raise LabError(f"{component} is a {kind} in {self.ns}, which has no replica count.\n"
                           f"Fix: {PROG} -n {self.ns} rng-kind Deployment")
        return obj

    def pods(self, component):
        """The component's pods that are not terminating."""
        items = self.call(self.core.list_namespaced_pod, self.ns,
                          label_selector=self.selector(component)).items
        return [p for p in items if not p.metadata.deletion_timestamp]

    def replicas(self, component):
        """(ready, desired) of a component, as the workload's status says."""
        kind, obj = self.workload(component)
        if kind == "DaemonSet":
            return obj.status.number_ready or 0, obj.status.desired_number_scheduled or 0
        return obj.status.ready_replicas or 0, obj.spec.replicas or 0

    # --- scale and wait --------------------------------------------------------------------
    def scale(self, component, replicas):
        """Set a Deployment's replicas through its scale subresource."""
        if replicas < 0:
            raise LabError(f"replicas must be 0 or more, not {replicas}")
        obj = self.deployment(component)
        self.call(self.apps.patch_namespaced_deployment_scale, obj.metadata.name, self.ns,
                  {"spec": {"replicas": replicas}})

    def rolled_out(self, component):
        """(done, status text) of a component's rollout: every pod updated, ready, and the
        terminating ones gone."""
        kind, obj = self.workload(component)
        st = obj.status
        if kind == "DaemonSet":
            want = st.desired_number_scheduled or 0
            have = (st.updated_number_scheduled or 0, st.number_ready or 0)
        else:
            want = obj.spec.replicas or 0
            have = (st.updated_replicas or 0, st.ready_replicas or 0)
        fresh = (st.observed_generation or 0) >= (obj.metadata.generation or 0)
        pods = len(self.pods(component))
        done = fresh and have == (want, want) and pods == want
        text = f"{component} {have[1]}/{want} ready"
        if have[0] != want:
            text += f", {have[0]}/{want} updated"
        if pods != want:
            text += f", {pods} pods"
        return done, text

    def wait(self, components, timeout=180.0):
        """Wait until each component's rollout is done. LabError after TIMEOUT seconds, with the
        pods' waiting reasons and events that say why."""
        started = time.monotonic()
        while True:
            states = [self.rolled_out(c) for c in components]
            elapsed = time.monotonic() - started
            status = ", ".join(s for _, s in states)
            self.progress(f"waiting for the rollout: {status} ({elapsed:.0f} s)", status)
            if all(done for done, _ in states):
                self.progress.done()
                return
            if elapsed > timeout:
                self.progress.done()
                late = [c for c, (done, _) in zip(components, states) if not done]
                raise LabError(f"rollout of {', '.join(late)} not ready after {timeout:.0f} s "
                               f"({'; '.join(s for _, s in states)}).\n"
                               + "\n".join(self.why(c) for c in late)
                               + "\nFix: the reasons above (an image name or tag, a registry "
                               "pull secret, resources), or a longer --timeout.")
            time.sleep(1)

    def why(self, component):
        """Why a component's pods are not ready: their containers' waiting reasons and the
        namespace's recent Warning events about them (or about the workload itself)."""
        lines = []
        pods = self.pods(component)
        for pod in pods:
            ready = any(c.type == "Ready" and c.status == "True"
                        for c in pod.status.conditions or [])
            if ready:
                continue
            statuses = ((pod.status.init_container_statuses or [])
                        + (pod.status.container_statuses or []))
            for cs in statuses:
                waiting = cs.state.waiting if cs.state else None
                if waiting and waiting.reason:
                    lines.append(f"  pod {pod.metadata.name}: {cs.name} {waiting.reason}: "
                                 f"{waiting.message or ''}".rstrip(": "))
        names = {p.metadata.name for p in pods}
        events = self.call(self.core.list_namespaced_event, self.ns).items
        for ev in sorted(events, key=lambda e: str(e.last_timestamp or e.event_time or "")):
            obj = ev.involved_object
            if ev.type == "Warning" and (obj.name in names or obj.name.startswith(component)):
                lines.append(f"  event {obj.kind}/{obj.name}: {ev.reason}: {ev.message}")
        if not lines:
            lines.append(f"  {component}: no pod waiting reason or Warning event yet")
        return "\n".join(lines[-15:])

    # --- rng's kind, through helm ----------------------------------------------------------
    def rng_kind(self, kind, chart=CHART, timeout=180.0):
        """Make rng a DaemonSet or a Deployment with `helm upgrade --reset-then-reuse-values`
        (plain --reuse-values brings back a replicaCount set to null: a Helm bug). The worker
        count scaled by hand is passed on, so the upgrade does not reset it."""
        if kind not in ("DaemonSet", "Deployment"):
            raise LabError(f"rng-kind takes DaemonSet or Deployment, not {kind!r}")
        self.helm_upgrade(f"rng.kind={kind}", "rng.replicaCount=null", chart=chart, timeout=timeout)

    def traffic_distribution(self, value, chart=CHART, timeout=180.0):
        """rng's Service `spec.trafficDistribution` (PreferSameNode; "" for none) with `helm
        upgrade`, as rng_kind does."""
        self.helm_upgrade(f"rng.service.trafficDistribution={value}", chart=chart, timeout=timeout)

    def helm_upgrade(self, *sets, chart=CHART, timeout=180.0):
        """`helm upgrade --reset-then-reuse-values --set SET...` of the release (plain
        --reuse-values brings back a replicaCount set to null: a Helm bug). The worker count
        scaled by hand is passed on, so the upgrade does not reset it."""
        self.helm = True
        if not (Path(chart) / "Chart.yaml").is_file():
            raise LabError(f"no chart at {chart}.\nFix: run {PROG} in the DockerCoins checkout "
                           "(or a folder inside it), or pass --chart.")
        workers = self.deployment("worker").spec.replicas or 0
        helm = shutil.which("helm") or shutil.which("helm", path=str(ROOT / ".tools" / "bin"))
        if not helm:
            raise LabError("helm not found on PATH.\nFix: install Helm 3.14+ "
                           "(`ci/tools.sh helm` puts it in .tools/bin).")
        argv = [helm, "upgrade", self.release, str(chart), "-n", self.ns,
                "--reset-then-reuse-values"]
        for value in (*sets, f"worker.replicaCount={workers}"):
            argv += ["--set", value]
        if self.kubeconfig:
            argv += ["--kubeconfig", self.kubeconfig]
        self.progress(f"helm upgrade {self.release}: " + ", ".join(sets))
        proc = subprocess.run(argv, capture_output=True, text=True)
        self.progress.done()
        if proc.returncode != 0:
            denied = re.search(r'User "[^"]+" cannot \w+ resource "[^"]+"[^\n]*', proc.stderr)
            if denied:
                raise LabError(forbidden_fix(self.ns, denied.group(0), helm=True))
            raise LabError(f"helm upgrade failed:\n{proc.stderr.strip()}\n"
                           "Fix: the error above; helm needs rights on the release's objects "
                           "and its Secrets in the namespace.")
        self.wait(["rng", "worker"], timeout)

    # --- the nodes --------------------------------------------------------------------------
    def nodes(self):
        """(Ready nodes, all nodes), or None when the credentials may not list nodes (nodes
        are cluster-wide, beyond the namespace's Role)."""
        try:
            items = self.call(self.core.list_node).items
        except LabError as e:
            if "forbidden:" in str(e):
                return None
            raise
        ready = [n for n in items if any(c.type == "Ready" and c.status == "True"
                                         for c in n.status.conditions or [])]
        return len(ready), len(items)

    def nodes_line(self):
        counted = self.nodes()
        if counted is None:
            return "nodes: not known (listing nodes is beyond the namespace's rights)"
        return f"nodes: {counted[0]} Ready of {counted[1]}"

    def drain(self, node, seconds=20.0, timeout=180.0):
        """`kubectl drain NODE --ignore-daemonsets --delete-emptydir-data` while the workers
        mine, then `kubectl uncordon NODE`. Returns the figures: the speed before and after
        (hashes/s), the drain's seconds, the longest time `hashes` did not rise during it, and
        the `hashes` counter before and after. Needs rights on nodes and evictions (a
        cluster admin's)."""
        kubectl = (shutil.which("kubectl")
                   or shutil.which("kubectl", path=str(ROOT / ".tools" / "bin")))
        if not kubectl:
            raise LabError("kubectl not found on PATH.\nFix: `ci/tools.sh kubectl` puts it in "
                           ".tools/bin.")
        config = ["--kubeconfig", self.kubeconfig] if self.kubeconfig else []
        figures = {"before": self.measure(seconds), "hashes before": self.hashes()}
        self.progress(f"draining {node}")
        started = time.monotonic()
        proc = subprocess.Popen([kubectl, *config, "drain", node, "--ignore-daemonsets",
                                 "--delete-emptydir-data", f"--timeout={int(timeout)}s"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rises, last = [started], figures["hashes before"]
        while proc.poll() is None:
            try:
                now = self.hashes()
            except LabError:
                now = last   # a webui pod moving: the next sample tells
            if now > last:
                rises.append(time.monotonic())
            last = now
            time.sleep(0.5)
        figures["drain seconds"] = time.monotonic() - started
        rises.append(time.monotonic())
        figures["longest stop seconds"] = max(b - a for a, b in zip(rises, rises[1:]))
        self.progress.done()
        _, err = proc.communicate()
        uncordon = subprocess.run([kubectl, *config, "uncordon", node], capture_output=True,
                                  text=True)
        if proc.returncode != 0 or uncordon.returncode != 0:
            raise LabError(f"kubectl drain {node} failed:\n{(err or uncordon.stderr).strip()}\n"
                           "Fix: the error above (a drain needs rights on nodes and on "
                           "pods/eviction; a PodDisruptionBudget with no room holds it).")
        self.wait(["worker"], timeout)
        figures["after"] = self.measure(seconds)
        figures["hashes after"] = self.hashes()
        return figures

    # --- the speed ------------------------------------------------------------------------
    def webui(self):
        """NAME:PORT of the release's webui Service, as the service proxy takes it."""
        self.workload("webui")   # the release is there
        services = self.call(self.core.list_namespaced_service, self.ns,
                             label_selector=self.selector("webui")).items
        if not services:
            raise LabError(f"no webui Service of release {self.release!r} in {self.ns!r}.\n"
                           "Fix: install the chart with webui (the default).")
        svc = services[0]
        return f"{svc.metadata.name}:{svc.spec.ports[0].port}"

    def hashes(self, service=None):
        """The `hashes` counter of webui's /json, through the API server's service proxy."""
        service = service or self.webui()
        try:
            raw = self.call(self.core.connect_get_namespaced_service_proxy_with_path, service,
                            self.ns, "json", _preload_content=False)
        except LabError as e:
            if "forbidden:" in str(e) or "no cluster" in str(e):
                raise
            raise LabError(f"cannot read webui's /json through the service proxy ({service}): "
                           f"{e}\nFix: webui needs a ready pod the API server can reach (a "
                           "real node; kwok's pods do not run).") from None
        try:
            return json.loads(raw.data)["hashes"]
        except (ValueError, KeyError, TypeError):
            raise LabError(f"webui's /json through the service proxy ({service}) is not the "
                           f"app's JSON: {raw.data[:200]!r}") from None

    def measure(self, seconds=20.0):
        """Hashes/s: the least-squares slope of `hashes` over a window of SECONDS."""
        service = self.webui()

        def tick(elapsed, samples):
            first, last = samples[0], samples[-1]
            rate = (last[1] - first[1]) / (last[0] - first[0]) if len(samples) > 1 else 0.0
            self.progress(f"measuring: {elapsed:.0f}/{seconds:.0f} s, about {rate:.1f} hashes/s",
                          "measuring")
        speed = scaling.slope(lambda: self.hashes(service), seconds, tick=tick)
        self.progress.done()
        if speed < STOPPED:
            for problem in self.unreachable_services():
                print(f"{PROG}: {problem}", file=sys.stderr)
        return speed

    def unreachable_services(self):
        """A problem, with its fix, for each rng or hasher Service that no ready pod backs:
        mining stops. The usual cause is an edited selector (the DaemonSet chapter's
        `active: "yes"`), which outlives `helm upgrade` (docs/workshop.md)."""
        problems = []
        for component in ("rng", "hasher"):
            ready = [p.metadata.labels or {} for p in self.pods(component) if is_ready(p)]
            for svc in self.call(self.core.list_namespaced_service, self.ns,
                                 label_selector=self.selector(component)).items:
                wanted = svc.spec.selector or {}
                unmatched = sorted(k for k, v in wanted.items()
                                   if not any(labels.get(k) == v for labels in ready))
                if ready and wanted and not unmatched:
                    continue
                name = svc.metadata.name
                if not ready:
                    why = f"no {component} pod is ready"
                    fix = f"kubectl describe pods -n {self.ns} -l app={component}"
                else:
                    why = (f"its selector's {', '.join(f'{k}={wanted[k]}' for k in unmatched)} "
                           f"matches none of the ready {component} pods ({len(ready)})")
                    fix = (f"put the selector back: {undo_patch(name, self.ns, unmatched)}, or "
                           f"helm upgrade {self.release} <chart> -n {self.ns} --reuse-values "
                           "--force (see docs/workshop.md)")
                problems.append(f"Service {name} has no ready endpoint: {why}, so the workers "
                                f"cannot reach it and mining stops.\nFix: {fix}")
        return problems

    def step(self, workers, rng, seconds, settle, timeout):
        """Scale to (WORKERS, RNG) (RNG None: a DaemonSet, left as it is), wait, let the new
        workers' first loops and flushes pass, measure. Returns scaling.row()."""
        self.scale("worker", workers)
        if rng is not None:
            self.scale("rng", rng)
        self.wait(["worker", "rng"], timeout)
        if settle:
            self.progress(f"settling {settle:.0f} s")
            time.sleep(settle)
        speed = self.measure(seconds)
        ready_rng = self.replicas("rng")[0]
        return scaling.row(workers, ready_rng, speed)

    def experiment(self, workers=(1, 2, 3, 5, 10), rng=3, daemonset=False, seconds=20.0,
                   settle=10.0, timeout=180.0, chart=CHART, balancing=("random",)):
        """The workshop: WORKERS on one rng, then the most workers on RNG rng (or an rng
        DaemonSet, once per BALANCING: random, PreferSameNode). Returns the rows, one per step
        (scaling.row()); a DaemonSet step's R is its ready rng pods followed by DAEMONSET_MARK
        (and the balancing when it is not random)."""
        if self.workload("rng")[0] == "DaemonSet":
            self.rng_kind("Deployment", chart, timeout)
        rows = []
        for w in workers:
            rows.append(self.step(w, 1, seconds, settle, timeout))
            print(f"W={w} R=1: {rows[-1][2]:.2f} hashes/s", file=sys.stderr)
        top = max(workers)
        if daemonset:
            self.rng_kind("DaemonSet", chart, timeout)
            rows += self.daemonset_rows(top, balancing, seconds, settle, timeout, chart)
        else:
            rows.append(self.step(top, rng, seconds, settle, timeout))
        print(f"W={top} R={rows[-1][1]}: {rows[-1][2]:.2f} hashes/s", file=sys.stderr)
        return rows


    def daemonset_rows(self, workers, balancing, seconds, settle, timeout, chart):
        """The DaemonSet step once per balancing mode; rng's Service is left with none set."""
        rows = []
        for mode in balancing:
            self.traffic_distribution("" if mode == "random" else mode, chart, timeout)
            w, r, *rest = self.step(workers, None, seconds, settle, timeout)
            mark = DAEMONSET_MARK + ("" if mode == "random" else f" {mode}")
            rows.append((w, f"{r} {mark}", *rest))
            print(f"W={w} R={rows[-1][1]}: {rows[-1][2]:.2f} hashes/s", file=sys.stderr)
        if balancing != ("random",):
            self.traffic_distribution("", chart, timeout)
        return rows

    # --- the autoscaling chapter ------------------------------------------------------------
    def hpa(self):
        """The HorizontalPodAutoscaler that scales rng (KEDA's or the chart's own). LabError
        with the fix when rng's autoscaling is off."""
        target = self.deployment("rng").metadata.name
        for hpa in self.call(self.autoscaling.list_namespaced_horizontal_pod_autoscaler,
                             self.ns).items:
            ref = hpa.spec.scale_target_ref
            if ref.kind == "Deployment" and ref.name == target:
                return hpa
        raise LabError(f"no HorizontalPodAutoscaler scales Deployment {target} in {self.ns}: "
                       "rng's autoscaling is off.\nFix: helm upgrade "
                       f"{self.release} <chart> -n {self.ns} --reuse-values --set "
                       "rng.autoscaling.enabled=true --set rng.autoscaling.provider=keda "
                       "(with KEDA and Prometheus installed: docs/autoscaling.md)")

    def autoscale(self, peak=10, hold=300.0, interval=10.0, timeout=600.0):
        """The autoscaling chapter: 1 worker, then PEAK workers, held for HOLD s after rng's HPA
        first adds a pod, then 1 worker until rng is back at the HPA's minimum (TIMEOUT s at
        most per phase; LabError if rng never scales). Returns the timeline, a row per INTERVAL
        s: (s since the workers' scale-up, workers, ready rng pods, webui's `hashes`, the HPA's
        current metric per pod, or None before its first reading)."""
        minimum = self.hpa().spec.min_replicas or 1
        service = self.webui()
        timeline = []
        origin = time.monotonic()

        from kubernetes.utils import parse_quantity

        def sample(workers):
            time.sleep(interval)
            metrics = self.hpa().status.current_metrics or []
            value = None
            for metric in metrics:
                source = metric.external or metric.pods or metric.object
                if source and source.current:
                    current = source.current.average_value or source.current.value
                    value = float(parse_quantity(current)) if current is not None else None
            row = (round(time.monotonic() - origin, 1), workers, self.replicas("rng")[0],
                   self.hashes(service), value)
            timeline.append(row)
            self.progress(f"{row[0]:.0f} s: {workers} workers, {row[2]} rng pods, metric "
                          f"{value if value is not None else '-'}", f"{workers}")
            return row

        self.scale("worker", 1)
        self.wait(["worker"], timeout)
        for _ in range(3):
            sample(1)
        # Time 0 is the workers' scale-up: the baseline's rows are before it.
        shift, origin = time.monotonic() - origin, time.monotonic()
        timeline[:] = [(round(t - shift, 1), *rest) for t, *rest in timeline]
        self.scale("worker", peak)
        first_added = None
        while True:
            t, _, rng, _, _ = sample(peak)
            if first_added is None and rng > minimum:
                first_added = t
            if first_added is not None and t - first_added >= hold:
                break
            if first_added is None and t > timeout:
                raise LabError(f"rng's HPA added no pod in {timeout:.0f} s at {peak} workers "
                               f"(rng {rng} pods).\nFix: kubectl -n {self.ns} describe hpa: "
                               "its metric and events (is Prometheus scraping rng?)")
        self.scale("worker", 1)
        down = timeline[-1][0]
        while sample(1)[2] > minimum and timeline[-1][0] - down < timeout:
            pass
        self.progress.done()
        return timeline

    def gate(self, seconds=20.0, settle=10.0, timeout=180.0):
        """The pipeline's physics check: GATE_CELLS measured, then the worker and rng replicas
        put back as they were. Returns (rows, checks): scaling.row()s, and one (name, failure
        message or None) per cell."""
        if self.workload("rng")[0] == "DaemonSet":
            raise LabError("the gate measures one rng pod, and rng is a DaemonSet here.\n"
                           f"Fix: {PROG} rng-kind Deployment, or run the gate on a release "
                           "with rng as a Deployment (the chart's default).")
        before = {c: self.deployment(c).spec.replicas for c in ("worker", "rng")}
        try:
            rows = [self.step(w, r, seconds, settle, timeout) for w, r in GATE_CELLS]
        finally:
            for component, replicas in before.items():
                self.scale(component, replicas)
        return rows, gate_checks(rows)


def print_drain(lab, node, figures):
    """The drain's figures, one line each."""
    print(lab.nodes_line())
    print(f"before: {figures['before']:.2f} hashes/s")
    print(f"drain of {node}: {figures['drain seconds']:.1f} s, mining stopped at most "
          f"{figures['longest stop seconds']:.1f} s")
    print(f"after uncordon: {figures['after']:.2f} hashes/s")
    print(f"hashes: {figures['hashes before']} before the drain, {figures['hashes after']} after")


def speeds(timeline):
    """Hashes/s between consecutive rows of Lab.autoscale()'s timeline (None for the first)."""
    return [None] + [(b[3] - a[3]) / (b[0] - a[0]) for a, b in zip(timeline, timeline[1:])]


def autoscale_report(timeline):
    """The timeline as a Markdown table, then what the chapter shows: when rng's first pod was
    added after the workers' scale-up, the speed before and after, and when rng was back."""
    lines = ["| t (s) | workers | rng pods | hashes/s | metric per pod |", "|---|---|---|---|---|"]
    for (t, workers, rng, _, metric), speed in zip(timeline, speeds(timeline)):
        lines.append(f"| {t:.0f} | {workers} | {rng} | "
                     f"{'-' if speed is None else f'{speed:.1f}'} | "
                     f"{'-' if metric is None else f'{metric:.2f}'} |")
    start = timeline[0][2]
    up = [row for row in timeline if row[0] >= 0 and row[1] == max(r[1] for r in timeline)]
    added = next((row[0] for row in up if row[2] > start), None)
    down = next(row[0] for row in timeline if row[0] > 0 and row[1] < up[0][1])
    back = next((row[0] for row in timeline if row[0] > down and row[2] <= start), None)
    peak_speed = max(v for row, v in zip(timeline, speeds(timeline)) if v is not None
                     and row in up)
    lines += ["", f"workers {timeline[0][1]} -> {up[0][1]} at 0 s; first rng pod added at "
              f"{added:.0f} s; top speed {peak_speed:.1f} hashes/s with {max(r[2] for r in up)} "
              f"rng pods; workers back to {timeline[-1][1]} at {down:.0f} s; rng back to "
              f"{start} pod(s) at " + (f"{back:.0f} s" if back is not None else "(not yet)")]
    return "\n".join(lines)


def gate_checks(rows):
    """[(check name, failure message or None)] for the rows of GATE_CELLS, in hashes/s."""
    speeds = {(w, r): measured for w, r, measured, *_ in rows}
    checks = []
    one = speeds[(1, 1)]
    off = abs(one - scaling.PER_WORKER) / scaling.PER_WORKER
    checks.append(("W=1 R=1: one worker mines 3.33 hashes/s", None if off <= GATE_TOLERANCE else (
        f"1 worker on 1 rng mined {one:.2f} hashes/s, {off:.0%} off the model's 3.33 (more than "
        f"{GATE_TOLERANCE:.0%}): the worker's loop is not 0.1 s sleep + rng + hasher at 0.1 s "
        "each (WORKER_SLEEP_SECONDS, extra latency or failures on rng or hasher)")))
    ten = speeds[(10, 1)]
    off = abs(ten - scaling.PER_RNG) / scaling.PER_RNG
    if off <= GATE_TOLERANCE:
        why = None
    elif ten > scaling.PER_RNG:
        why = (f"10 workers on 1 rng mined {ten:.2f} hashes/s, not a plateau near 10 ({off:.0%} "
               "over): rng has lost its cap of one request at a time (RNG_CONCURRENCY or the "
               "chart's rng.concurrency above 1, or a server that runs requests in parallel)")
    else:
        why = (f"10 workers on 1 rng mined {ten:.2f} hashes/s, {off:.0%} under the plateau of 10: "
               "rng is slower than 0.1 s per request, or the workers did not all run")
    checks.append(("W=10 R=1: 10 workers plateau at one rng's 10 hashes/s", why))
    return checks


def junit(checks, rows, seconds):
    """The gate as a JUnit XML document (GitLab's artifacts:reports:junit): one test case per
    check, the table in system-out."""
    from xml.etree import ElementTree as ET
    failed = sum(1 for _, why in checks if why)
    suite = ET.Element("testsuite", name="dockercoins physics gate", tests=str(len(checks)),
                       failures=str(failed), errors="0", time=f"{seconds:.1f}")
    for name, why in checks:
        case = ET.SubElement(suite, "testcase", classname="ci.lab.gate", name=name)
        if why:
            ET.SubElement(case, "failure", message=why).text = why
    ET.SubElement(suite, "system-out").text = scaling.table(rows)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def is_ready(pod):
    return not pod.metadata.deletion_timestamp and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status and pod.status.conditions) or [])


def undo_patch(service, namespace, keys):
    """The kubectl command that removes these keys from a Service's selector (JSON Pointer
    escapes ~ and / in label keys)."""
    ops = [{"op": "remove", "path": "/spec/selector/" + k.replace("~", "~0").replace("/", "~1")}
           for k in keys]
    return f"kubectl patch service {service} -n {namespace} --type=json -p '{json.dumps(ops)}'"


def counts(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of counts: {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"worker counts must be 1 or more: {text!r}")
    return values


def parser():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--namespace", default="dockercoins", help="the release's namespace")
    p.add_argument("--release", default="dockercoins", help="the Helm release name")
    p.add_argument("--kubeconfig", help="default: $KUBECONFIG, then ~/.kube/config")
    p.add_argument("--timeout", type=float, default=180.0,
                   help="seconds a rollout may take before it is an error (default 180)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scale", help="set the worker or rng replicas and wait for the rollout")
    s.add_argument("component", choices=("worker", "rng"))
    s.add_argument("replicas", type=int)
    s.add_argument("--no-wait", action="store_true", help="do not wait for the rollout")
    k = sub.add_parser("rng-kind", help="make rng a DaemonSet or a Deployment (helm upgrade)")
    k.add_argument("kind", choices=("DaemonSet", "Deployment"))
    k.add_argument("--chart", default=str(CHART), help="the chart to upgrade with")
    m = sub.add_parser("measure", help="hashes/s over a window, from webui's /json")
    m.add_argument("--seconds", type=float, default=20.0)
    e = sub.add_parser("experiment", help="the workshop's cells, the table and the plot")
    e.add_argument("--workers", type=counts, default=[1, 2, 3, 5, 10],
                   help="worker counts on one rng (default 1,2,3,5,10)")
    e.add_argument("--rng", type=int, default=3, help="rng replicas of the last step (default 3)")
    e.add_argument("--daemonset", action="store_true", help="last step: rng as a DaemonSet")
    e.add_argument("--seconds", type=float, default=20.0, help="window per step (default 20)")
    e.add_argument("--settle", type=float, default=10.0,
                   help="seconds between a ready rollout and its window (default 10)")
    e.add_argument("--out", help="the plot (PNG; default out/lab.png, with --autoscale "
                   "out/autoscale.png)")
    e.add_argument("--autoscale", action="store_true",
                   help="the autoscaling chapter instead: 1 worker, then the most of --workers "
                   "(default 10) while rng's HPA scales it, then 1 again; a timeline")
    e.add_argument("--hold", type=float, default=300.0,
                   help="with --autoscale: seconds at the peak after rng's first added pod")
    e.add_argument("--interval", type=float, default=10.0,
                   help="with --autoscale: seconds between the timeline's rows (default 10)")
    e.add_argument("--csv", help="with --autoscale: write the timeline here (CSV)")
    e.add_argument("--chart", default=str(CHART), help="the chart, for --daemonset")
    e.add_argument("--balancing", choices=("random", "PreferSameNode", "both"), default="random",
                   help="with --daemonset: rng's Service trafficDistribution for the DaemonSet "
                   "row (both: a row for each)")
    d = sub.add_parser("drain", help="kubectl drain a node while mining, uncordon it, and print "
                       "the speed, the longest stop and the counts")
    d.add_argument("node")
    d.add_argument("--seconds", type=float, default=20.0, help="window before and after")
    g = sub.add_parser("gate", help="the pipeline's physics check: fails unless 1 worker mines "
                       "3.33/s and 10 workers on 1 rng plateau at 10/s (within 15%%)")
    g.add_argument("--seconds", type=float, default=20.0, help="window per cell (default 20)")
    g.add_argument("--settle", type=float, default=10.0,
                   help="seconds between a ready rollout and its window (default 10)")
    g.add_argument("--junit", help="write the checks as JUnit XML here")
    g.add_argument("--table", help="write the table (Markdown) here")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        helm = args.command == "rng-kind" or (args.command == "experiment" and args.daemonset)
        lab = Lab(args.namespace, args.release, args.kubeconfig, helm=helm)
        if args.command == "scale":
            lab.scale(args.component, args.replicas)
            if not args.no_wait:
                lab.wait([args.component], args.timeout)
            print(f"{args.component}: {args.replicas} replicas")
        elif args.command == "rng-kind":
            lab.rng_kind(args.kind, args.chart, args.timeout)
            print(f"rng: {args.kind}")
        elif args.command == "measure":
            print(f"{lab.measure(args.seconds):.2f} hashes/s")
        elif args.command == "drain":
            print_drain(lab, args.node, lab.drain(args.node, args.seconds, args.timeout))
        elif args.command == "gate":
            started = time.monotonic()
            rows, checks = lab.gate(args.seconds, args.settle, args.timeout)
            print(scaling.table(rows))
            for path, text in ((args.table, scaling.table(rows) + "\n"),
                               (args.junit, junit(checks, rows, time.monotonic() - started))):
                if path:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                    Path(path).write_text(text)
            failures = [why for _, why in checks if why]
            for name, why in checks:
                print(f"{'FAIL' if why else 'ok'}: {name}" + (f": {why}" if why else ""))
            if failures:
                print(f"{PROG}: the physics gate failed: " + "; ".join(failures),
                      file=sys.stderr)
                return 1
        elif args.autoscale:
            timeline = lab.autoscale(max(args.workers), args.hold, args.interval,
                                     max(args.timeout, 600.0))
            print(autoscale_report(timeline))
            if args.csv:
                Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
                Path(args.csv).write_text("seconds,workers,rng_pods,hashes,metric\n" + "".join(
                    ",".join("" if v is None else str(v) for v in row) + "\n" for row in timeline))
            out = args.out or str(ROOT / "out" / "autoscale.png")
            scaling.plot_timeline(timeline, speeds(timeline), out,
                                  f"DockerCoins: rng scaled by its HPA ({lab.release} in {lab.ns})")
            print(f"\nplot: {out}")
        else:
            balancing = (("random", "PreferSameNode") if args.balancing == "both"
                         else (args.balancing,))
            rows = lab.experiment(args.workers, args.rng, args.daemonset, args.seconds,
                                  args.settle, args.timeout, args.chart, balancing)
            print(lab.nodes_line())
            print(scaling.table(rows))
            # The plot's bar labels are short: "W=10 R=1 DS".
            short = [(w, str(r).replace(DAEMONSET_MARK, "DS"), *rest) for w, r, *rest in rows]
            scaling.plot(short, args.out or str(ROOT / "out" / "lab.png"),
                         "DockerCoins: measured against the model "
                         f"({lab.release} in {lab.ns})")
            print(f"\nplot: {args.out or ROOT / 'out' / 'lab.png'}")
    except LabError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
