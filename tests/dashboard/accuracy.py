"""How far the speed the dashboard shows is from the true rate, measured in a real browser.

For ci/bench.sh ("dashboard displayed speed vs true rate, worst error %"):

    from accuracy import measure_dashboard_error   # with tests/dashboard on sys.path
    measure_dashboard_error("http://127.0.0.1:8000", "redis://127.0.0.1:6379/0", 30)

or from a shell, printing the same dict as JSON:

    .venv/bin/python tests/dashboard/accuracy.py --webui URL --redis URL --seconds 30

The true rate is the least-squares slope of redis `hashes` over the window (support.
counter_slope). The shown values are every value `#speed` displayed during the same window
(a MutationObserver records each change), plus the one on screen when the window opened.
Call it in steady state: 15 s or more after the last change of worker or rng count.
"""
import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_harness import chromium, number, open_dashboard, wait  # noqa: E402
from support import counter_slope  # noqa: E402  (harness put tests/ on sys.path)


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
