"""The app as ci/up.sh runs it, a real Chromium driven by Playwright, and readers for what the
page shows. Used by the dashboard tests, by accuracy.py (ci/bench.sh) and by screenshot.py."""
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
from support import ROOT, free_port, wait_http_ok, wait_until, worker  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _ports_free(first, count):
    for port in range(first, first + count):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _free_port_run(count):
    """A first port with the next count-1 free too (honcho gives worker i METRICS_PORT_BASE +
    400 + i)."""
    for _ in range(50):
        first = free_port()
        if first + count < 65535 and _ports_free(first, count):
            return first
    raise RuntimeError(f"no run of {count} free ports")


def process_tree(pid):
    """pid and all its descendants, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class UpApp:
    """`ci/up.sh --workers N` on free loopback ports, plus extra worker processes (a scale-up)
    pointed at the same rng, hasher and redis. stop() sends SIGINT, as Ctrl-C would, and
    checks that no process of the app is left."""

    def __init__(self, workers=1, rng=1, log_dir="/tmp", max_workers=16):
        ports = {name: free_port() for name in ("WEBUI_PORT", "RNG_PORT", "HASHER_PORT",
                                                "REDIS_PORT")}
        ports["METRICS_PORT_BASE"] = _free_port_run(max_workers) - 400
        self.webui_url = f"http://127.0.0.1:{ports['WEBUI_PORT']}"
        self.rng_url = f"http://127.0.0.1:{ports['RNG_PORT']}/32"
        self.hasher_url = f"http://127.0.0.1:{ports['HASHER_PORT']}/"
        self.redis_url = f"redis://127.0.0.1:{ports['REDIS_PORT']}/0"
        self.redis_port = ports["REDIS_PORT"]
        self.extra = []
        self.log_path = Path(log_dir) / f"up-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        env = {**os.environ, **{k: str(v) for k, v in ports.items()}}
        self.proc = subprocess.Popen(
            [str(ROOT / "ci" / "up.sh"), "--workers", str(workers), "--rng", str(rng)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.monotonic()
        self.seen = set()
        try:
            wait_until(self._ready, 90, interval=0.25, what="ci/up.sh: webui ready")
            wait_until(lambda: self.workers_reporting() >= workers, 30, interval=0.25,
                       what=f"{workers} worker heartbeats")
        except Exception:
            self.stop()
            raise AssertionError(f"ci/up.sh did not come up:\n{self.output()}")

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"ci/up.sh exited with {self.proc.returncode}")
        self.seen.update(process_tree(self.proc.pid))
        wait_http_ok(self.webui_url + "/readyz", timeout=0.5)
        return True

    def redis(self):
        import redis
        return redis.Redis.from_url(self.redis_url, socket_timeout=2)

    def hashes(self):
        return int(self.redis().get("hashes") or 0)

    def workers_reporting(self):
        return len(list(self.redis().scan_iter(match="dockercoins:worker:*")))

    def pids(self, needle):
        """The pids of this app's processes whose command line contains needle."""
        tree = process_tree(self.proc.pid)
        self.seen.update(tree)
        return [pid for pid in tree if pid != self.proc.pid and needle in cmdline(pid)]

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
        """Start count more workers at once (a scale-up); returns when all are alive."""
        with ThreadPoolExecutor(count) as pool:
            started = list(pool.map(
                lambda _: worker(self.rng_url, self.hasher_url, self.redis_url), range(count)))
        self.extra.extend(started)
        return started

    def output(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self):
        """SIGINT to ci/up.sh (honcho), as Ctrl-C; returns the pids still alive (should be
        none)."""
        for proc in self.extra:
            proc.stop()
        if self.proc.poll() is None:
            self.seen.update(process_tree(self.proc.pid))
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        time.sleep(0.2)
        return [pid for pid in self.seen if pid != self.proc.pid and alive(pid)
                and any(name in cmdline(pid) for name in ("redis-server", "gunicorn",
                                                           "worker.py", "honcho"))]


@contextmanager
def chromium():
    """Debian's Chromium under Playwright. Its proxy is a closed loopback port with loopback
    bypassed, so any request to another host fails inside the browser: nothing leaves the
    machine, and no Python code sits in the path of the page's own requests."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            proxy={"server": f"http://127.0.0.1:{free_port()}", "bypass": "127.0.0.1,localhost"})
        try:
            yield browser
        finally:
            browser.close()


class RequestLog:
    """Every request a browser context makes (from its events, so it never delays them)."""

    def __init__(self, context):
        self.urls = []
        context.on("request", lambda request: self.urls.append(request.url))

    @staticmethod
    def local(url):
        parts = urlsplit(url)
        if parts.scheme == "data":
            return True
        return parts.scheme in ("http", "https", "ws") and parts.hostname in LOCAL_HOSTS

    def foreign(self):
        return [url for url in self.urls if not self.local(url)]


def wait(page, seconds):
    """Sleep with the page open. Playwright's sync API handles the browser's events only
    while Python is inside one of its calls, so never time.sleep with a page open."""
    page.wait_for_timeout(seconds * 1000)


# Records every value #speed ever shows, with the browser's clock, so checks cover all of
# them rather than samples.
_OBSERVER = """() => {
  window.__shown = [];
  const speed = document.getElementById('speed');
  const record = () => window.__shown.push([Date.now() / 1000, speed.textContent,
                                            document.body.dataset.state]);
  new MutationObserver(record).observe(speed, {childList: true, characterData: true,
                                               subtree: true});
  record();
}"""


def open_dashboard(browser, webui_url, viewport=None):
    """A new page on the dashboard with its requests logged; waits for the first live
    numbers. Returns (page, request_log)."""
    context = browser.new_context(viewport=viewport or {"width": 1600, "height": 900})
    requests_seen = RequestLog(context)
    page = context.new_page()
    page.goto(webui_url + "/")
    page.evaluate(_OBSERVER)
    page.wait_for_function("document.body.dataset.state === 'live'", timeout=30_000)
    return page, requests_seen


def number(text):
    text = (text or "").replace(",", "").strip()
    try:
        return float(text)
    except ValueError:
        return None


def read_page(page):
    """What the page shows now, as numbers (None where it shows none)."""
    shown = page.evaluate("""() => Object.fromEntries(
        ['speed', 'coins', 'hashes', 'workers', 'rng', 'hasher', 'status', 'verdict']
          .map(id => [id, document.getElementById(id).textContent]))""")
    state = page.evaluate("document.body.dataset.state")
    result = {key: number(shown[key]) for key in ("speed", "coins", "hashes", "workers", "rng",
                                                   "hasher")}
    result.update(state=state, status=shown["status"], verdict=shown["verdict"],
                  culprit=page.evaluate("document.querySelector('.culprit').dataset.culprit"))
    return result


def shown_since(page, since_browser_time):
    """[(browser epoch seconds, text, state)] of every #speed value shown since then."""
    return [tuple(row) for row in page.evaluate("window.__shown")
            if row[0] >= since_browser_time]
