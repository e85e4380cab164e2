"""Build and run the DockerCoins images with podman, for tests and ci/bench.sh.

Everything a test starts is labelled with this process's id and removed by `Podman.cleanup()`
(called from fixtures, and from atexit as a last resort); `sweep_stale()` removes what a killed
run left behind. Ports are published on 127.0.0.1 only, on free ports podman picks.

Needs `ci/podman-setup.sh` first on a fresh machine (podman, runc, the dnsname plugin and the
local base image). Used by ci/bench.py and by tests/containers and tests/rendered (`import podman
as pm`, with harness/ on the path through pytest.ini), and from the shell:
`python harness/podman.py measure REF...` prints each image's size and start-to-ready time as JSON.
"""
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from localapp import ROOT, SERVICES, metric_value, wait_until  # noqa: F401  (pm.metric_value in tests)

HTTP_SERVICES = ("rng", "hasher", "webui")
# Uncompressed size goals (MB, as `podman images` counts), for the tests and ci/bench.sh. webui
# carries the kubernetes client for the cluster view (59 MB once its asyncio half is left out).
SIZE_GOAL_MB = {"rng": 150, "hasher": 150, "worker": 150, "webui": 230}
# Made by ci/podman-setup.sh, since no registry can be pulled here.
LOCAL_BASE_IMAGE = os.environ.get("DOCKERCOINS_BASE_IMAGE", "localhost/python-base:bookworm")
LOCAL_REDIS_IMAGE = os.environ.get("DOCKERCOINS_REDIS_IMAGE", "localhost/redis-test:bookworm")
TEST_REGISTRY = "localhost/dockercoins-test"
TEST_TAG = "test"
LABEL = "io.dockercoins.test"
APP_USER = "10001:10001"

# Straight to 127.0.0.1, whatever proxy the environment names.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url, timeout=2.0):
    """(status, body bytes); HTTP errors are answers, not exceptions."""
    try:
        with _http.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_json(url, timeout=2.0):
    status, body = http_get(url, timeout)
    if status != 200:
        raise RuntimeError(f"GET {url} -> {status}: {body[:200]!r}")
    return json.loads(body)


def available():
    """Why podman cannot run containers here, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed (run ci/podman-setup.sh)"
    probe = subprocess.run(["podman", "image", "exists", LOCAL_BASE_IMAGE])
    if probe.returncode != 0:
        return f"{LOCAL_BASE_IMAGE} is missing (run ci/podman-setup.sh)"
    return None


def build_images(registry=TEST_REGISTRY, tag=TEST_TAG, base_image=LOCAL_BASE_IMAGE,
                 services=SERVICES, timeout=900):
    """Build the images with ci/build-images.sh (buildah, or podman), from the local base.
    pip inside the build gets the host's CA bundle and pip config, since this machine's
    egress re-signs TLS. Returns {service: reference}."""
    builder = "buildah" if shutil.which("buildah") else "podman"
    extra = []
    for path in ("/etc/ssl/certs", "/etc/pip.conf"):
        if os.path.exists(path):
            extra += ["--volume", f"{path}:{path}:ro"]
    argv = [str(ROOT / "ci" / "build-images.sh"), "--builder", builder,
            "--registry", registry, "--tag", tag,
            "--build-arg", f"PYTHON_IMAGE={base_image}"]
    for svc in services:
        argv += ["--only", svc]
    argv += ["--", *extra]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"build failed ({result.returncode}):\n{result.stderr[-6000:]}")
    refs = result.stdout.split()
    return dict(zip(services, refs))


def image_size(ref):
    """Uncompressed size in bytes, as `podman images` counts it."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", ref).strip())


def image_config(ref):
    return json.loads(podman("image", "inspect", ref))[0]


def podman(*args, timeout=120, check=True, capture=True):
    result = subprocess.run(["podman", *args], capture_output=capture, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} -> {result.returncode}: "
                           f"{(result.stderr or '').strip()[-2000:]}")
    return result.stdout if capture else ""


class Container:
    def __init__(self, name, image, started_at):
        self.name = name
        self.image = image
        self.started_at = started_at  # monotonic time of `podman run`
        self._ports = {}

    def port(self, container_port=8080):
        """The 127.0.0.1 port that container_port is published on."""
        if container_port not in self._ports:
            out = podman("port", self.name, f"{container_port}/tcp").strip()
            self._ports[container_port] = int(out.splitlines()[0].rsplit(":", 1)[1])
        return self._ports[container_port]

    def url(self, path="/", container_port=8080):
        return f"http://127.0.0.1:{self.port(container_port)}{path}"

    def wait_http(self, path="/readyz", timeout=30, container_port=8080):
        """Wait for a 200 on path; returns seconds since `podman run` was called."""
        url = self.url(path, container_port)

        def ok():
            if not self.running():
                raise AssertionError(f"{self.name} exited:\n{self.logs()[-3000:]}")
            return http_get(url, timeout=1.0)[0] == 200
        wait_until(ok, timeout, interval=0.02, what=f"{self.name} {path}")
        return time.monotonic() - self.started_at

    def running(self):
        return self.inspect("{{.State.Running}}") == "true"

    def inspect(self, fmt):
        return podman("inspect", "--format", fmt, self.name).strip()

    def exit_code(self):
        return int(self.inspect("{{.State.ExitCode}}"))

    def exec(self, *argv, timeout=30):
        return podman("exec", self.name, *argv, timeout=timeout)

    def logs(self):
        result = subprocess.run(["podman", "logs", self.name], capture_output=True, text=True)
        return result.stdout + result.stderr

    def stop(self, timeout=10):
        """`podman stop -t timeout`: SIGTERM, SIGKILL after timeout. Returns seconds taken."""
        started = time.monotonic()
        podman("stop", "-t", str(timeout), self.name, timeout=timeout + 30)
        return time.monotonic() - started

    def pause(self):
        podman("pause", self.name)

    def unpause(self):
        podman("unpause", self.name)


class Podman:
    """Creates containers and networks for one test session, and removes them all."""

    def __init__(self, prefix=None):
        self.prefix = prefix or f"dctest-{os.getpid()}"
        self.containers = []
        self.networks = []
        atexit.register(self.cleanup)

    def network(self, name="net"):
        full = f"{self.prefix}-{name}"
        podman("network", "create", "--label", f"{LABEL}={os.getpid()}", full)
        self.networks.append(full)
        return full

    def run(self, name, image, *, network=None, aliases=(), env=None, publish=(8080,),
            hardened=True, user=None, args=(), command=()):
        """`podman run -d`: read-only root and all capabilities dropped unless hardened is
        False, the image's own user unless user is given, each port in publish on a free
        127.0.0.1 port."""
        full = f"{self.prefix}-{name}"
        argv = ["run", "-d", "--name", full, "--label", f"{LABEL}={os.getpid()}"]
        if network:
            argv += ["--network", network]
            for alias in aliases:
                argv += ["--network-alias", alias]
        if hardened:
            argv += ["--read-only", "--cap-drop", "ALL",
                     "--security-opt", "no-new-privileges"]
        if user:
            argv += ["--user", user]
        for port in publish:
            argv += ["-p", f"127.0.0.1::{port}"]
        for key, value in (env or {}).items():
            argv += ["-e", f"{key}={value}"]
        argv += [*args, image, *command]
        self.containers.append(full)
        started = time.monotonic()
        podman(*argv)
        return Container(full, image, started)

    def cleanup(self):
        """Remove every container and network this object made; never raises."""
        for name in reversed(self.containers):
            subprocess.run(["podman", "rm", "-f", "-t", "0", name],
                           capture_output=True, timeout=60)
        self.containers.clear()
        for name in reversed(self.networks):
            subprocess.run(["podman", "network", "rm", "-f", name],
                           capture_output=True, timeout=60)
        self.networks.clear()


@contextlib.contextmanager
def unwinding_on_sigterm():
    """SIGTERM (a CI time limit, a kill) unwinds like Ctrl-C, so fixtures remove what they
    started; what a SIGKILL leaves is removed by sweep_stale() on the next run."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def sweep_stale():
    """Remove containers and networks labelled by test runs whose process is gone."""
    def stale(pid):
        return pid.isdigit() and not Path(f"/proc/{pid}").exists()
    out = podman("ps", "-a", "--filter", f"label={LABEL}",
                 "--format", f'{{{{.Names}}}} {{{{index .Labels "{LABEL}"}}}}', check=False)
    for line in out.splitlines():
        name, _, pid = line.partition(" ")
        if stale(pid):
            subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True)
    # docker-compose projects of the compose test are named dctest<pid>compose.
    out = podman("ps", "-a", "--filter", "label=com.docker.compose.project",
                 "--format", '{{.Names}} {{index .Labels "com.docker.compose.project"}}',
                 check=False)
    for line in out.splitlines():
        name, _, project = line.partition(" ")
        match = re.fullmatch(r"dctest(\d+)compose", project)
        if match and stale(match[1]):
            subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True)
            subprocess.run(["podman", "network", "rm", "-f", f"{project}_default"],
                           capture_output=True)
    out = podman("network", "ls", "--filter", f"label={LABEL}", "--format", "json",
                 check=False)
    for network in json.loads(out or "[]"):
        if stale(str((network.get("labels") or {}).get(LABEL, ""))):
            subprocess.run(["podman", "network", "rm", "-f", network["name"]],
                           capture_output=True)


def ready_path_alone(ref):
    """What answers 200 when the image runs alone: webui's /readyz needs redis, so its
    /healthz; the others' /readyz needs nothing."""
    return "/healthz" if ref.rsplit("/", 1)[-1].startswith("webui") else "/readyz"


def measure(ref, pod=None, ready_path=None):
    """Start ref alone (read-only, no capabilities), time `podman run` to the first 200 on
    ready_path (default: ready_path_alone), stop it. Returns {"image", "size_mb",
    "ready_seconds", "stop_seconds", "exit_code", "size_goal_mb"}."""
    own = pod is None
    pod = pod or Podman(prefix=f"dcmeasure-{os.getpid()}")
    try:
        service = ref.rsplit("/", 1)[-1].split(":")[0]
        container = pod.run(f"{service}-m{time.monotonic_ns()}", ref)
        ready = container.wait_http(ready_path or ready_path_alone(ref))
        stop = container.stop()
        return {"image": ref, "size_mb": round(image_size(ref) / 1e6, 1),
                "ready_seconds": round(ready, 3), "stop_seconds": round(stop, 3),
                "exit_code": container.exit_code(), "size_goal_mb": SIZE_GOAL_MB.get(service)}
    finally:
        if own:
            pod.cleanup()


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "measure":
        sys.exit("usage: podman.py measure IMAGE_REF...")
    print(json.dumps([measure(ref) for ref in sys.argv[2:]], indent=2))
