"""The dashboard in a real Chromium driven by Playwright: open it, read what it shows, and
measure how far the speed it shows is from the true rate. Used by the dashboard tests, by
ci/bench.py ("dashboard displayed speed vs true rate, worst error %") and by
harness/dashboard_screenshot.py.

    from dashboard_page import measure_dashboard_error   # harness/ on the path
    measure_dashboard_error("http://127.0.0.1:8000", "redis://127.0.0.1:6379/0", 30)

or from a shell, printing the same dict as JSON:

    .venv/bin/python harness/dashboard_page.py --webui URL --redis URL --seconds 30

The true rate is the least-squares slope of redis `hashes` over the window (localapp.
counter_slope). The shown values are every value `#speed` displayed during the same window
(a MutationObserver records each change), plus the one on screen when the window opened.
Call it in steady state: 15 s or more after the last change of worker or rng count.
"""
import argparse
import json
import os
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

from localapp import counter_slope, free_port

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}



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


def measure_on_page(page, read_counter, seconds):
    """Watch an open dashboard page for `seconds` while fitting the counter's slope over the
    same window. Returns the comparison (see measure_dashboard_error)."""
    result = {}
    opened = time.time()
    fit = threading.Thread(target=lambda: result.update(
        true_rate=counter_slope(read_counter, seconds)))
    fit.start()
    wait(page, seconds)
    fit.join()
    closed = time.time()
    rows = page.evaluate("window.__shown")
    before = [row for row in rows if row[0] < opened]
    window = before[-1:] + [row for row in rows if opened <= row[0] <= closed]
    return summarize(result["true_rate"], window, seconds)


def summarize(true_rate, rows, seconds):
    shown = [number(text) for _, text, _ in rows]
    values = [v for v in shown if v is not None]
    errors = [abs(v - true_rate) / true_rate * 100 for v in values] if true_rate > 0 else []
    return {
        "seconds": seconds,
        "true_rate": round(true_rate, 4),
        "shown_count": len(values),
        "shown_min": min(values, default=None),
        "shown_max": max(values, default=None),
        "worst_error_pct": round(max(errors), 2) if errors else None,
        "zero_shown": sum(1 for v in values if v == 0),
        "not_a_number_shown": len(shown) - len(values),
        "states": sorted({state for _, _, state in rows}),
    }


def measure_dashboard_error(webui_url, redis_url, seconds=30):
    """Open the dashboard at webui_url in Chromium and compare, over `seconds`, every speed it
    shows with the true rate from redis at redis_url.

    Returns a dict: true_rate (hashes/s), shown_min, shown_max, shown_count,
    worst_error_pct (the largest |shown - true| / true, in %), zero_shown (how many shown
    values were 0), not_a_number_shown, states (the page states seen: "live" in steady state),
    foreign_requests (URLs the page asked of any host but its own: should be []).
    """
    import redis
    store = redis.Redis.from_url(redis_url, socket_timeout=2)
    with chromium() as browser:
        page, requests_seen = open_dashboard(browser, webui_url)
        result = measure_on_page(page, lambda: int(store.get("hashes") or 0), seconds)
        result["foreign_requests"] = requests_seen.foreign()
    return result


def main():
    parser = argparse.ArgumentParser(description="dashboard speed vs true rate")
    parser.add_argument("--webui", required=True, help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--redis", required=True, help="e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    print(json.dumps(measure_dashboard_error(args.webui, args.redis, args.seconds), indent=2))


if __name__ == "__main__":
    main()
