"""Make docs/dashboard.png: the dashboard with 6 workers on 1 rng, after a scale-up from 1.

    .venv/bin/python harness/dashboard_screenshot.py [--out docs/dashboard.png]

Runs the app as ci/up.sh does (free ports), scales 1 -> 6 workers with the page open, waits
until the graph shows both the step and the plateau, and takes a 1600x900 (16:9) shot.
"""
import argparse
import sys

from dashboard_page import chromium, open_dashboard, read_page, wait
from localapp import ROOT, LocalApp


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    parser.add_argument("--before", type=float, default=30, help="seconds at 1 worker")
    parser.add_argument("--after", type=float, default=50, help="seconds at 6 workers")
    args = parser.parse_args()
    app = LocalApp(workers=1)
    try:
        with chromium() as browser:
            page, requests_seen = open_dashboard(browser, app.webui,
                                                 viewport={"width": 1600, "height": 900})
            wait(page, args.before)
            app.add_workers(5)
            wait(page, args.after)
            print(read_page(page), file=sys.stderr)
            page.screenshot(path=args.out)
            assert not requests_seen.foreign(), requests_seen.foreign()
    finally:
        app.stop()
        left = app.left_running()
        assert not left, f"left running: {left}"
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
