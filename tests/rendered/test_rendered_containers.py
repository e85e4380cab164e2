"""The chart against the images: each app container that `helm template` renders with the default
values (rng, hasher, worker, webui) runs its real image, built by ci/build-images.sh, in podman
with what the chart renders for it: the user, groups, read-only root, capabilities and writable
mounts of every container, and the drain on SIGTERM within the grace period. What the real node
proves for real is not proven again here (tests/node/test_app.py: every pod Ready by its
rendered probes from the chart's image references, the worker reaching rng, hasher and redis
by the rendered URLs, mining at one worker's rate).

What is taken from the render, for each container:
- the image (global.image.registry/tag pointed at the local build), `command` and `args`;
- every `env:` entry (plain values only; the default render has no valueFrom);
- the container ports, published on free 127.0.0.1 ports;
- runAsUser:runAsGroup (pod securityContext merged with the container's), fsGroup as a
  supplementary group, runAsNonRoot, readOnlyRootFilesystem (`--read-only`, and
  `--read-only-tmpfs=false` so podman adds no writable /tmp, /run or /var/tmp of its own: only
  what the chart mounts is writable), capabilities (`--cap-drop`/`--cap-add`),
  allowPrivilegeEscalation: false (`no-new-privileges`), seccomp RuntimeDefault (podman's
  default profile), the memory limit;
- a tmpfs for each emptyDir volumeMount (with its sizeLimit), as the kubelet makes one;
- the liveness, readiness and startup probes: httpGet (named ports resolved against the
  container's ports) from the host on the published port, tcpSocket the same way, exec inside
  the container with `podman exec`;
- terminationGracePeriodSeconds: on SIGTERM each app container drains (readiness 503 while
  SHUTDOWN_DELAY_SECONDS run) and exits 0 before the kubelet would SIGKILL it.

Discovery: every container joins one podman network with the names of the rendered Services
that select it as aliases (rng, hasher, redis, webui), so DNS works as on Kubernetes. A Service
also maps its port to the pod's targetPort (rng and hasher listen on 80 -> `http` -> 8080), which
network aliases cannot do. So a URL in the env is resolved the way the Service would route it:
its host must be a rendered Service, its port (or the scheme's default) one of that Service's
ports, and only the port is replaced by the targetPort it resolves to on the selected container
(`http://rng/32` -> `http://rng:8080/32`; `redis://redis:6379/0` stays). Nothing else is changed.

redis: the chart renders the official image, which cannot be pulled here, so its container runs
the local stand-in `localhost/redis-test:bookworm` (Debian's redis-server) with everything else
as rendered (command, args, user, read-only root, capabilities, the /data emptyDir), plus
`--protected-mode no`: the official image is built with protected mode off by default, Debian's
is not, and with it on redis refuses clients from other containers.
"""
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import podman as pm
from localapp import SERVICES

COMPONENTS = ("redis", *SERVICES)   # redis first: the others need it
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
DEFAULT_PORTS = {"http": 80, "https": 443, "redis": 6379, "rediss": 6379}
# How long a probe may take to start passing here (a limit to wait for on 2 busy cores, not a
# figure the test asserts).
PROBE_WAIT_SECONDS = 60
# Official redis: protected mode is compiled off; the Debian stand-in needs it said.
REDIS_STAND_IN_ARGS = ("--protected-mode", "no")

# Straight to 127.0.0.1, whatever proxy the environment names.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- the render ----------------------------------------------------------------------------
def component_of(doc):
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


class Render:
    """The rendered workloads and Services, and the routing a Service would do."""

    def __init__(self, docs):
        self.workloads = {}
        for doc in docs:
            if doc["kind"] in WORKLOAD_KINDS:
                comp = component_of(doc)
                assert comp not in self.workloads, f"two workloads for {comp}"
                self.workloads[comp] = doc
        self.services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}

    def pod_spec(self, comp):
        return self.workloads[comp]["spec"]["template"]["spec"]

    def container(self, comp):
        spec = self.pod_spec(comp)
        assert not spec.get("initContainers"), f"{comp}: init containers are not run here"
        containers = spec["containers"]
        assert len(containers) == 1, f"{comp}: expected one container, got {len(containers)}"
        return containers[0]

    def selected_by(self, service):
        selector = service["spec"].get("selector") or {}
        assert selector, f"Service {service['metadata']['name']} has no selector"
        return [comp for comp, doc in self.workloads.items()
                if selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()]

    def aliases(self, comp):
        """The names of the Services that route to comp: its DNS names on the network."""
        return sorted(name for name, svc in self.services.items()
                      if comp in self.selected_by(svc))

    def target_port(self, service_name, port):
        """(component, container port) that `service_name:port` routes to."""
        assert service_name in self.services, (
            f"{service_name!r} is not a rendered Service ({sorted(self.services)})")
        service = self.services[service_name]
        backends = self.selected_by(service)
        assert len(backends) == 1, f"Service {service_name} selects {backends}"
        entries = [p for p in service["spec"]["ports"] if p["port"] == port]
        assert entries, f"Service {service_name} has no port {port}"
        target = entries[0].get("targetPort", port)
        return backends[0], container_port(self.container(backends[0]), target)

    def resolve_url(self, url):
        """The URL with its port replaced by the targetPort its Service routes to."""
        parts = urllib.parse.urlsplit(url)
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        _, target = self.target_port(parts.hostname, port)
        netloc = f"{parts.hostname}:{target}"
        if parts.username or parts.password:
            netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def container_port(container, port):
    """A probe's or Service's port (number or name) as the container's port number."""
    if isinstance(port, int):
        return port
    if str(port).isdigit():
        return int(port)
    named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert named, f"{container['name']}: no container port named {port!r}"
    return named[0]


def is_url(value):
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in DEFAULT_PORTS and bool(parts.hostname)


def quantity_bytes(quantity):
    """A Kubernetes memory quantity (256Mi, 1G, 1000) in bytes."""
    text = str(quantity)
    for suffix, factor in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("Ti", 2**40),
                           ("k", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12)):
        if text.endswith(suffix):
            return int(float(text[:-len(suffix)]) * factor)
    return int(float(text))


def downward_api_value(workload, entry):
    """What the kubelet puts in an env entry's valueFrom.fieldRef. Only the pod's own namespace
    is supported (webui's POD_NAMESPACE); anything else fails here, naming the entry, so a new
    kind of env entry cannot pass unrun."""
    field = (entry["valueFrom"].get("fieldRef") or {}).get("fieldPath")
    assert field == "metadata.namespace", (
        f"env {entry['name']}: only fieldRef metadata.namespace is run here, got {entry}")
    return workload["metadata"]["namespace"]  # the chart names it on every object


def security_context(pod_spec, container):
    """The pod's securityContext with the container's over it, as the kubelet merges them."""
    merged = dict(pod_spec.get("securityContext") or {})
    merged.update(container.get("securityContext") or {})
    return merged


# --- from the render to `podman run` ------------------------------------------------------
def podman_options(render, comp):
    """Keyword arguments for Podman.run that reproduce the rendered container, and what was
    rewritten (URL env), as (kwargs, rewrites)."""
    spec, container = render.pod_spec(comp), render.container(comp)
    sc = security_context(spec, container)
    args = []

    # User and groups.
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    assert uid is not None, f"{comp}: no runAsUser rendered"
    if sc.get("runAsNonRoot"):
        assert uid != 0, f"{comp}: runAsNonRoot with runAsUser 0"
    user = f"{uid}:{gid}" if gid is not None else str(uid)
    groups = list(spec.get("securityContext", {}).get("supplementalGroups") or [])
    if spec.get("securityContext", {}).get("fsGroup") is not None:
        groups.append(spec["securityContext"]["fsGroup"])
    for group in dict.fromkeys(groups):
        args += ["--group-add", str(group)]

    # Root filesystem, capabilities, privileges, seccomp.
    assert not sc.get("privileged"), f"{comp}: privileged containers are not run here"
    if sc.get("readOnlyRootFilesystem"):
        args += ["--read-only", "--read-only-tmpfs=false"]
    caps = sc.get("capabilities") or {}
    for cap in caps.get("drop") or []:
        args += ["--cap-drop", cap]
    for cap in caps.get("add") or []:
        args += ["--cap-add", cap]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    seccomp = (sc.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    else:
        assert seccomp == "RuntimeDefault", f"{comp}: seccomp {seccomp} is not run here"

    # Volumes: an emptyDir is a fresh, world-writable directory; a tmpfs is one here.
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume, f"{comp}: only emptyDir volumes are run here: {volume}"
        assert not mount.get("subPath"), f"{comp}: subPath mounts are not run here"
        options = ["ro" if mount.get("readOnly") else "rw", "mode=0777"]
        size = (volume["emptyDir"] or {}).get("sizeLimit")
        if size:
            options.append(f"size={quantity_bytes(size)}")
        args += ["--tmpfs", f"{mount['mountPath']}:{','.join(options)}"]

    # Resources: the memory limit (the CPU limit changes nothing a probe can see, and this
    # machine's cgroups do not enforce it).
    memory = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if memory:
        args += ["--memory", str(quantity_bytes(memory))]
    if container.get("workingDir"):
        args += ["--workdir", container["workingDir"]]

    # Command and args, with Kubernetes' meaning: command replaces ENTRYPOINT, args CMD.
    command = list(container.get("args") or [])
    if container.get("command"):
        args += ["--entrypoint", _json_list(container["command"])]

    # Env: the rendered values, URLs routed as their Service would.
    env, rewrites = {}, {}
    for entry in container.get("env", []):
        if "valueFrom" in entry:
            env[entry["name"]] = downward_api_value(render.workloads[comp], entry)
            continue
        assert "value" in entry, f"{comp}: env {entry['name']} has neither value nor valueFrom"
        value = str(entry["value"])
        if is_url(value):
            resolved = render.resolve_url(value)
            if resolved != value:
                rewrites[entry["name"]] = (value, resolved)
            value = resolved
        env[entry["name"]] = value
    assert not container.get("envFrom"), f"{comp}: envFrom is not run here"

    ports = tuple(p["containerPort"] for p in container.get("ports", []))
    kwargs = dict(env=env, publish=ports, hardened=False, user=user, args=args, command=command,
                  aliases=render.aliases(comp))
    return kwargs, rewrites


def _json_list(items):
    return json.dumps([str(item) for item in items])


# --- probes -------------------------------------------------------------------------------
def http_get(url, headers, timeout):
    request = urllib.request.Request(url, headers=headers)
    try:
        with _http.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def run_probe(running, probe):
    """One attempt of a rendered probe: (passed, what was seen)."""
    container, spec = running.container, running.spec
    timeout = probe.get("timeoutSeconds", 1)
    if "httpGet" in probe:
        get = probe["httpGet"]
        assert get.get("scheme", "HTTP") == "HTTP" and not get.get("host"), get
        port = container_port(spec, get["port"])
        url = container.url(get.get("path", "/"), port)
        headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
        try:
            status, body = http_get(url, headers, timeout)
        except OSError as error:
            return False, f"GET {url}: {error}"
        # The kubelet accepts 200-399; the chart asks for a plain 200 here.
        return status == 200, f"GET {url} -> {status} {body[:120]!r}"
    if "tcpSocket" in probe:
        port = container_port(spec, probe["tcpSocket"]["port"])
        address = ("127.0.0.1", container.port(port))
        try:
            socket.create_connection(address, timeout=timeout).close()
            return True, f"TCP {address} connected"
        except OSError as error:
            return False, f"TCP {address}: {error}"
    if "exec" in probe:
        argv = probe["exec"]["command"]
        result = subprocess.run(["podman", "exec", container.name, *argv],
                                capture_output=True, text=True, timeout=60)
        return result.returncode == 0, (f"exec {argv} -> {result.returncode} "
                                        f"{(result.stdout + result.stderr).strip()[-200:]!r}")
    raise AssertionError(f"{spec['name']}: probe kind not run here: {probe}")


def wait_probe(running, probe, deadline):
    """Run the probe until it passes or the deadline (monotonic) goes by, at least once;
    the last (passed, seen)."""
    while True:
        passed, seen = run_probe(running, probe)
        if passed or time.monotonic() >= deadline:
            return passed, seen
        if not running.container.running():
            return False, f"{seen}; the container exited:\n{running.container.logs()[-3000:]}"
        time.sleep(0.1)


# --- fixtures -----------------------------------------------------------------------------
class Running:
    def __init__(self, comp, container, pod_spec, spec, options, rewrites):
        self.comp, self.container, self.pod_spec, self.spec = comp, container, pod_spec, spec
        self.options, self.rewrites = options, rewrites


@pytest.fixture(scope="module")
def render(rendered):
    return Render(rendered)


@pytest.fixture(scope="module")
def app(render, images, pod):
    """redis and the four app containers, each run as rendered, on one network."""
    net = pod.network("rendered")
    running = {}
    for comp in COMPONENTS:  # redis first: webui's readiness and the worker need it
        options, rewrites = podman_options(render, comp)
        image = render.container(comp)["image"]
        if comp == "redis":
            image = pm.LOCAL_REDIS_IMAGE
            options["command"] = [*options["command"], *REDIS_STAND_IN_ARGS]
        container = pod.run(comp, image, network=net, **options)
        running[comp] = Running(comp, container, render.pod_spec(comp), render.container(comp),
                               options, rewrites)
    for item in running.values():
        for name, (old, new) in item.rewrites.items():
            print(f"{item.comp}: {name}={old} -> {new} (the Service's targetPort)")
    return running


@pytest.mark.parametrize("comp", COMPONENTS)
def test_container_runs_as_rendered(app, comp):
    """The container really has the rendered user, groups, read-only root, capabilities and
    no-new-privileges, its env, and a writable tmpfs at each emptyDir mount and nowhere else."""
    running = app[comp]
    container, spec = running.container, running.spec
    sc = security_context(running.pod_spec, spec)
    user = running.options["user"]
    assert container.inspect("{{.Config.User}}") == user
    status = container.exec("cat", "/proc/1/status")
    uid, _, gid = user.partition(":")
    assert f"\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n" in status, status
    if gid:
        assert f"\nGid:\t{gid}\t{gid}\t{gid}\t{gid}\n" in status, status
    if sc.get("readOnlyRootFilesystem"):
        assert container.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
        mounts = {m["mountPath"] for m in spec.get("volumeMounts", []) if not m.get("readOnly")}
        for path in sorted({"/", "/tmp", "/run", "/var/tmp", "/app", "/home", *mounts}):
            mounted = path in mounts
            writable = _writable(container, path)
            assert writable == mounted, (
                f"{comp}: {path} is {'' if writable else 'not '}writable, "
                f"and {'is' if mounted else 'is not'} a rendered volumeMount")
    if "ALL" in ((sc.get("capabilities") or {}).get("drop") or []):
        assert "\nCapEff:\t0000000000000000\n" in status
        assert "\nCapPrm:\t0000000000000000\n" in status
    if sc.get("allowPrivilegeEscalation") is False:
        assert "\nNoNewPrivs:\t1\n" in status
    env = container.exec("cat", "/proc/1/environ").split("\0")
    for name, value in running.options["env"].items():
        assert f"{name}={value}" in env, (name, value)


def _writable(container, path):
    probe = f"{path.rstrip('/')}/.rendered-write-{os.getpid()}"
    result = subprocess.run(["podman", "exec", container.name, "sh", "-c",
                             f'[ -d "{path}" ] || exit 2; : > "{probe}" && rm -f "{probe}"'],
                            capture_output=True, text=True, timeout=60)
    return result.returncode == 0


def test_sigterm_drains_and_exits_within_the_grace_period(app):
    """A pod deletion as the kubelet does it: SIGTERM, and SIGKILL once the rendered
    terminationGracePeriodSeconds are over. Each app container answers its rendered readiness
    probe 503 while it drains (those given a SHUTDOWN_DELAY_SECONDS), and exits 0 on its own
    within the grace period. Runs last: it stops the containers."""
    deadline = time.monotonic() + PROBE_WAIT_SECONDS  # ready first, so 503 means draining
    for comp in SERVICES:
        passed, seen = wait_probe(app[comp], app[comp].spec["readinessProbe"], deadline)
        assert passed, f"{comp} never ready: {seen}"
    started = time.monotonic()
    for comp in SERVICES:
        pm.podman("kill", "--signal", "TERM", app[comp].container.name)
    for comp in SERVICES:
        running = app[comp]
        if int(running.options["env"].get("SHUTDOWN_DELAY_SECONDS", "0")) <= 0:
            continue

        def unready(comp=comp, running=running, probe=running.spec["readinessProbe"]):
            if not running.container.running():
                raise AssertionError(f"{comp} exited before it answered readiness 503")
            return not run_probe(running, probe)[0]
        pm.wait_until(unready, PROBE_WAIT_SECONDS, interval=0.05, what=f"{comp} unready")
    for comp in SERVICES:
        running = app[comp]
        grace = running.pod_spec.get("terminationGracePeriodSeconds", 30)
        left = grace - (time.monotonic() - started)
        try:
            subprocess.run(["podman", "wait", running.container.name], capture_output=True,
                           timeout=max(left, 1), check=True)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{comp} still runs {grace} s after SIGTERM: the kubelet "
                                 f"would SIGKILL it\n{running.container.logs()[-3000:]}")
        code = running.container.exit_code()
        assert code == 0, f"{comp} exited {code}\n{running.container.logs()[-3000:]}"
