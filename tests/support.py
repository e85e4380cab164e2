"""Helpers for tests that run the real services as processes on loopback."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "images"
SERVICE_ENV = {"PYTHONPATH": str(IMAGES / "common"), "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONUNBUFFERED": "1"}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception:  # a service still starting refuses connections
            result = None
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"{what} not met within {timeout} s")


def wait_http_ok(url, timeout=20):
    return wait_until(lambda: requests.get(url, timeout=1).ok, timeout, what=f"GET {url}")


class Process:
    """A child process with its output in a log file, stopped for sure at the end."""

    def __init__(self, name, argv, env=None, log_dir=None, cwd=None):
        self.name = name
        self.log_path = Path(log_dir or "/tmp") / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
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
        self.log.close()
        return self.proc.returncode

    def output(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")


class RedisServer:
    """A real redis-server on a free loopback port, with a data dir so it can restart with
    its data (SHUTDOWN SAVE, then start again)."""

    def __init__(self, data_dir):
        self.port = free_port()
        self.dir = Path(data_dir)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self):
        self.process = Process(f"redis-{self.port}", [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.dir), "--dbfilename", "dump.rdb"])
        wait_until(self.ping, 10, what="redis PING")

    def ping(self):
        return self.client().ping()

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def stop(self):
        """Stop with the data saved, as a redis restart with persistence does."""
        try:
            self.client().shutdown(save=True)
        except Exception:  # redis closes the connection as it shuts down
            pass
        self.process.stop()

    def close(self):
        if self.process:
            self.process.stop()


def gunicorn(service, env=None, port=None):
    """Start one of rng, hasher or webui as the image does: gunicorn with the shared config."""
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


def worker(rng_url, hasher_url, redis_url, env=None):
    port = free_port()
    proc = Process("worker", [sys.executable, str(IMAGES / "worker" / "worker.py")], env={
        "RNG_URL": rng_url, "HASHER_URL": hasher_url, "REDIS_URL": redis_url,
        "METRICS_PORT": str(port), **(env or {})})
    proc.url = f"http://127.0.0.1:{port}"
    wait_http_ok(proc.url + "/healthz")
    return proc


def metric(url, name, labels=None):
    """One sample's value from a Prometheus text page (0.0 when absent)."""
    text = requests.get(url + "/metrics", timeout=2).text
    want = "" if not labels else "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in text.splitlines():
        if line.startswith(name + want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def histogram(url, name, labels):
    """(sum, count) of a histogram, summed over the series whose labels include `labels`."""
    text = requests.get(url + "/metrics", timeout=2).text
    totals = {"_sum": 0.0, "_count": 0.0}
    pattern = re.compile(rf"^{name}(_sum|_count)\{{(.*)\}} (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if match and all(f'{k}="{v}"' in match.group(2) for k, v in labels.items()):
            totals[match.group(1)] += float(match.group(3))
    return totals["_sum"], totals["_count"]


def counter_slope(read_counter, seconds, interval=0.25):
    """The slope of a counter over a window: a least-squares fit over many samples, so the
    once-a-second steps of the flushes do not bias it the way two end points would."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append((time.monotonic(), read_counter()))
        time.sleep(interval)
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    num = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    den = sum((t - mean_t) ** 2 for t, _ in samples)
    return num / den


def process_tree(root_pid):
    """Every descendant of root_pid, from /proc."""
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


def free_port_block(size, start=20000, stop=60000, step=1000):
    """A base port with base..base+size free (honcho numbers worker ports from a base)."""
    import random
    for base in random.sample(range(start, stop, step), (stop - start) // step):
        try:
            socks = []
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


class LocalApp:
    """The whole app as `ci/up.sh --workers W --rng R` runs it, on free ports."""

    def __init__(self, workers, rng, log_dir=None):
        self.workers, self.rng = workers, rng
        ports = {name: free_port() for name in ("WEBUI_PORT", "RNG_PORT", "HASHER_PORT",
                                                 "REDIS_PORT")}
        metrics_base = free_port_block(500)
        self.webui = f"http://127.0.0.1:{ports['WEBUI_PORT']}"
        self.rng_url = f"http://127.0.0.1:{ports['RNG_PORT']}"
        self.hasher_url = f"http://127.0.0.1:{ports['HASHER_PORT']}"
        self.redis_url = f"redis://127.0.0.1:{ports['REDIS_PORT']}/0"
        self.worker_urls = [f"http://127.0.0.1:{metrics_base + 400 + i}" for i in range(workers)]
        self.process = Process(f"up-w{workers}-r{rng}", [
            "bash", str(ROOT / "ci" / "up.sh"), "--workers", str(workers), "--rng", str(rng)],
            env={**{k: str(v) for k, v in ports.items()},
                 "METRICS_PORT_BASE": str(metrics_base)}, log_dir=log_dir)
        try:
            wait_until(lambda: requests.get(self.webui + "/json", timeout=1).json()
                       .get("workers") == workers, 60, what=f"{workers} workers reporting")
        except Exception:
            self.stop()
            raise AssertionError(f"ci/up.sh did not come up:\n{self.process.output()[-3000:]}")

    def redis(self):
        import redis
        return redis.Redis.from_url(self.redis_url, socket_timeout=2)

    def hashes(self):
        return int(self.redis().get("hashes") or 0)

    def stop(self):
        """Ctrl-C, as a person stops it."""
        self.process.signal(signal.SIGINT)
        try:
            self.process.proc.wait(15)
        finally:
            return self.process.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


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
