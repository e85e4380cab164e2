"""The app as plain processes on loopback, for the benchmark (ci/bench.py) and the tests (through
pytest.ini's `pythonpath`): free ports, waiting, child processes, one service under gunicorn,
the whole app as `ci/up.sh` runs it, and readings of the services' Prometheus metrics.

Everything listens on 127.0.0.1, on ports the kernel says are free."""
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from dockercoins_lab.scaling import slope

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "images"
SERVICE_ENV = {"PYTHONPATH": str(IMAGES / "common"), "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONUNBUFFERED": "1"}
# The app's four services, each an image built from images/<service>/, in the workshop's order
# (tests/services/test_import_cycles.py checks them against the folders); and the five
# components the chart runs: those and redis, from its own image.
SERVICES = ("rng", "hasher", "worker", "webui")
COMPONENTS = SERVICES + ("redis",)
# The app's own processes, by what their command lines hold.
APP_PROCESSES = ("redis-server", "gunicorn", "worker.py", "honcho")


# --- ports and waiting -----------------------------------------------------------------------
def free_port():
    """A TCP port free on 127.0.0.1 now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_block(size, start=20000, stop=60000, step=1000):
    """A base port with base..base+size free (honcho numbers worker ports from a base)."""
    for base in random.sample(range(start, stop, step), (stop - start) // step):
        socks = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free block of ports")


def wait_until(predicate, timeout, what="condition", interval=0.1):
    """predicate()'s first truthy result, polled every `interval` s for up to `timeout` s.
    An exception from predicate counts as "not yet" (a service still starting refuses
    connections), except AssertionError, which says it never will. Raises TimeoutError with
    the last result or error."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except AssertionError:
            raise
        except Exception as error:  # noqa: BLE001  (not up yet)
            last = error
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not met within {timeout} s (last: {last!r})")
        time.sleep(interval)


def wait_http_ok(url, timeout=20):
    return wait_until(lambda: requests.get(url, timeout=1).ok, timeout, what=f"GET {url}")


# --- processes -------------------------------------------------------------------------------
def process_tree(root_pid):
    """Every descendant of root_pid (not root_pid itself), from /proc."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid):
    """Whether pid exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid):
    """pid's command line, arguments joined by spaces ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


class Process:
    """A child process in a session of its own, its output in a log file, stopped for sure at
    the end."""

    def __init__(self, name, argv, env=None, log_dir=None, cwd=None):
        self.name = name
        # Without a log_dir the log is a temporary file, read back and removed at stop().
        self.own_log = log_dir is None
        self.log_path = Path(log_dir or tempfile.gettempdir()) / (
            f"{name}-{os.getpid()}-{time.monotonic_ns()}.log")
        self.final_output = None
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env={**os.environ, **SERVICE_ENV, **(env or {})},
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd,
                                     start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def signal(self, sig):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after timeout; returns the exit code."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
            if self.own_log:
                self.final_output = self.log_path.read_text(errors="replace")
                self.log_path.unlink(missing_ok=True)
        return self.proc.returncode

    def output(self):
        """Everything the process printed so far (all of it, once stopped)."""
        if self.final_output is not None:
            return self.final_output
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")


def gunicorn(service, env=None, port=None):
    """Start one of rng, hasher or webui as the image does: gunicorn with the shared config.
    The process's `url` is its base URL; fails with the log if /healthz never answers."""
    port = port or free_port()
    proc = Process(service, [
        sys.executable, "-m", "gunicorn", "-c", str(IMAGES / "common" / "gunicorn.conf.py"),
        "--chdir", str(IMAGES / service), f"{service}:create_app()"],
        env={"PORT": str(port), **(env or {})})
    proc.url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(proc.url + "/healthz")
    except TimeoutError:
        proc.stop()
        raise AssertionError(f"{service} did not start:\n{proc.output()}")
    return proc


def worker(rng_url, hasher_url, redis_url, env=None, images=IMAGES):
    """One worker process, from the images/ folder `images` (another tree's, for the bench's
    comparison with an older worker); its `url` is its ops port (/healthz, /metrics)."""
    port = free_port()
    proc = Process("worker", [sys.executable, str(Path(images) / "worker" / "worker.py")], env={
        "RNG_URL": rng_url, "HASHER_URL": hasher_url, "REDIS_URL": redis_url,
        "METRICS_PORT": str(port), "PYTHONPATH": str(Path(images) / "common"), **(env or {})})
    proc.url = f"http://127.0.0.1:{port}"
    wait_http_ok(proc.url + "/healthz")
    return proc


# --- the whole app ---------------------------------------------------------------------------
def until_first_stop(output, chars=3000):
    """The last `chars` of honcho's output up to its first "<name> stopped (rc=N)" line: once
    one process ends, honcho stops all the others, and their shutdown would hide the cause."""
    first = re.search(r"^.*\| \S+ stopped \(rc=-?[0-9]+\)$", output, re.MULTILINE)
    end = first.end() if first else len(output)
    return output[max(0, end - chars):end]


class LocalApp:
    """The whole app as `ci/up.sh --workers W --rng R` runs it, on free ports, plus any extra
    workers started later (a scale-up) on the same rng, hasher and redis. Ready once webui's
    /json counts W workers. stop() is Ctrl-C."""

    def __init__(self, workers=1, rng=1, log_dir=None):
        self.workers, self.rng = workers, rng
        ports = {name: free_port() for name in ("WEBUI_PORT", "RNG_PORT", "HASHER_PORT",
                                                 "REDIS_PORT")}
        metrics_base = free_port_block(500)   # honcho: worker i on base + 400 + i
        self.webui = f"http://127.0.0.1:{ports['WEBUI_PORT']}"
        self.rng_url = f"http://127.0.0.1:{ports['RNG_PORT']}"
        self.hasher_url = f"http://127.0.0.1:{ports['HASHER_PORT']}"
        self.redis_url = f"redis://127.0.0.1:{ports['REDIS_PORT']}/0"
        self.worker_urls = [f"http://127.0.0.1:{metrics_base + 400 + i}" for i in range(workers)]
        self.extra = []
        self.seen = set()   # every pid ever under ci/up.sh, to check none is left after stop
        self.process = Process(f"up-w{workers}-r{rng}", [
            "bash", str(ROOT / "ci" / "up.sh"), "--workers", str(workers), "--rng", str(rng)],
            env={**{k: str(v) for k, v in ports.items()},
                 "METRICS_PORT_BASE": str(metrics_base)}, log_dir=log_dir)
        self.started = time.monotonic()
        try:
            wait_until(self._reporting, 90, interval=0.25, what=f"{workers} workers reporting")
        except Exception:
            self.stop()
            raise AssertionError(f"ci/up.sh did not come up:\n{until_first_stop(self.output())}")

    @property
    def webui_url(self):
        """The dashboard's base URL (the same as `webui`)."""
        return self.webui

    def _reporting(self):
        if self.process.proc.poll() is not None:
            raise AssertionError(f"ci/up.sh exited with {self.process.proc.returncode}")
        self.seen.update(process_tree(self.process.pid))
        return requests.get(self.webui + "/json", timeout=1).json().get("workers") == self.workers

    def redis(self):
        import redis
        return redis.Redis.from_url(self.redis_url, socket_timeout=2)

    def hashes(self):
        return int(self.redis().get("hashes") or 0)

    def pids(self, needle):
        """The pids of this app's processes whose command line contains needle."""
        tree = process_tree(self.process.pid)
        self.seen.update(tree)
        return [pid for pid in tree if needle in cmdline(pid)]

    def pause(self, needle):
        """SIGSTOP the app's processes matching needle: they stop answering, their sockets
        stay open (honcho would stop the whole app if one exited)."""
        pids = self.pids(needle)
        assert pids, f"no process matching {needle!r} under ci/up.sh"
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        return pids

    def resume(self, pids):
        for pid in pids:
            os.kill(pid, signal.SIGCONT)

    def add_workers(self, count):
        """Start count more workers at once (a scale-up), with the URLs ci/up.sh gives its
        own; returns when all are alive."""
        with ThreadPoolExecutor(count) as pool:
            started = list(pool.map(lambda _: worker(
                self.rng_url + "/32", self.hasher_url + "/", self.redis_url), range(count)))
        self.extra.extend(started)
        return started

    def output(self):
        return self.process.output()

    def stop(self):
        """The extra workers stopped, then Ctrl-C: SIGINT to ci/up.sh's process group, as a
        terminal sends it. Returns ci/up.sh's exit code (0 or 130 for a clean stop).
        Raises AssertionError if the app was still running 60 s later (it is then stopped
        with SIGTERM)."""
        for proc in self.extra:
            proc.stop()
        if self.process.proc.poll() is None:
            self.seen.update(process_tree(self.process.pid))
            # The group, not the script alone: a shell started in the background (CI's own
            # runner, `nohup ... &`) ignores SIGINT, and bash cannot trap a signal ignored on
            # entry; honcho, in the same group, takes it either way, as under a terminal.
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.proc.wait(60)
            except subprocess.TimeoutExpired:
                output = self.output()[-3000:]
                self.process.stop()
                raise AssertionError("ci/up.sh still running 60 s after Ctrl-C; its output:\n"
                                     + output)
        return self.process.stop()

    def left_running(self):
        """After stop(): the app's processes (redis, gunicorn, workers, honcho) still alive."""
        time.sleep(0.2)
        return [pid for pid in self.seen if alive(pid)
                and any(name in cmdline(pid) for name in APP_PROCESSES)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --- metrics ---------------------------------------------------------------------------------
def metric_value(text, name, labels=""):
    """The value of one sample (`name{labels} value`) in Prometheus text, or None."""
    wanted = name + (f"{{{labels}}}" if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[1])
    return None


def metric(url, name, labels=None):
    """One sample's value from url's /metrics (0.0 when absent)."""
    text = requests.get(url + "/metrics", timeout=2).text
    want = ",".join(f'{k}="{v}"' for k, v in (labels or {}).items())
    value = metric_value(text, name, want)
    return 0.0 if value is None else value


def histogram(url, name, labels):
    """(sum, count) of a histogram on url's /metrics, summed over the series whose labels
    include `labels`."""
    text = requests.get(url + "/metrics", timeout=2).text
    totals = {"_sum": 0.0, "_count": 0.0}
    pattern = re.compile(rf"^{name}(_sum|_count)\{{(.*)\}} (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if match and all(f'{k}="{v}"' in match.group(2) for k, v in labels.items()):
            totals[match.group(1)] += float(match.group(3))
    return totals["_sum"], totals["_count"]


def counter_slope(read_counter, seconds, interval=0.25):
    """The slope of a counter over a window, in units/s (dockercoins_lab.scaling's least-squares
    fit), sampled every `interval` s."""
    return slope(read_counter, seconds, interval)


def mean_latency(before, after):
    """Mean of a histogram between two (sum, count) readings."""
    (sum0, count0), (sum1, count1) = before, after
    return (sum1 - sum0) / (count1 - count0) if count1 > count0 else None


def measure(app, seconds=15.0, settle=3.0):
    """Hashes per second (slope of redis `hashes`) and the mean rng and hasher latency,
    as the servers measured them, over the same window."""
    time.sleep(settle)  # rng's queue reaches its steady depth
    route = {"route": "/<n>"}
    rng_before = histogram(app.rng_url, "http_request_duration_seconds", route)
    hasher_before = histogram(app.hasher_url, "http_request_duration_seconds",
                              {"method": "POST"})
    rate = counter_slope(app.hashes, seconds)
    return {
        "rate": rate,
        "rng_seconds": mean_latency(rng_before, histogram(
            app.rng_url, "http_request_duration_seconds", route)),
        "hasher_seconds": mean_latency(hasher_before, histogram(
            app.hasher_url, "http_request_duration_seconds", {"method": "POST"})),
    }
