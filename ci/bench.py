"""The DockerCoins benchmark: run the app as ci/up.sh does over a grid of (workers, rng)
cells and print, per cell, the measured speed against min(3.33 W, 10 R), rng and hasher
latency, CPU cost per hash of every process, and memory. Writes a plot. See ci/bench.sh."""
import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from localapp import COMPONENTS, LocalApp, counter_slope, process_tree  # harness/localapp.py
from dockercoins_lab.scaling import model  # lab/dockercoins_lab/scaling.py

ROOT = Path(__file__).resolve().parent.parent

QUICK_CELLS = [(1, 1), (2, 1), (6, 1), (6, 2)]
FULL_CELLS = [(1, 1), (2, 1), (3, 1), (6, 1), (10, 1), (6, 2), (10, 2), (10, 3)]
TICKS = os.sysconf("SC_CLK_TCK")


# --- what /proc says about the app's processes ----------------------------------------------
def service_of(pid):
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    for service in COMPONENTS:
        if f"/images/{service}" in cmdline or (service == "redis" and "redis-server" in cmdline):
            return service
    return None


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def proc_mib(pid, name, field):
    """A "Field:   N kB" line of /proc/<pid>/<name>, in MiB (0.0 if it has none)."""
    for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid):
    return proc_mib(pid, "status", "VmRSS")


def pss_mib(pid):
    """Proportional set size: each shared page divided among the processes that map it, so
    a sum over processes counts every page once (smem's measure; a gunicorn worker shares
    its master's pages until it writes them)."""
    return proc_mib(pid, "smaps_rollup", "Pss")


def app_processes(app):
    """{pid: service} for every process of the app: gunicorn masters and workers too."""
    found = {pid: service_of(pid) for pid in process_tree(app.process.pid)}
    return {pid: service for pid, service in found.items() if service}


def cpu_by_service(processes):
    totals = dict.fromkeys(COMPONENTS, 0.0)
    for pid, service in processes.items():
        try:
            totals[service] += cpu_seconds(pid)
        except OSError:
            pass
    return totals


# --- latency quantiles from the histograms, as Prometheus' histogram_quantile does ----------
def buckets(url, labels):
    import requests
    counts = {}
    for line in requests.get(url + "/metrics", timeout=2).text.splitlines():
        if not line.startswith("http_request_duration_seconds_bucket{"):
            continue
        label_text, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            le = label_text.split('le="')[1].split('"')[0]
            bound = float("inf") if le == "+Inf" else float(le)
            counts[bound] = counts.get(bound, 0.0) + float(value)
    return counts


def quantile(q, before, after):
    bounds = sorted(after)
    cumulative = [after[b] - before.get(b, 0.0) for b in bounds]
    total = cumulative[-1] if cumulative else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in zip(bounds, cumulative):
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


# --- one cell -----------------------------------------------------------------------------
def run_cell(workers, rng, seconds, settle):
    with LocalApp(workers, rng) as app:
        time.sleep(settle)
        rng_labels, hasher_labels = {"route": "/<n>"}, {"route": "/", "method": "POST"}
        processes = app_processes(app)
        rng_before, hasher_before = buckets(app.rng_url, rng_labels), buckets(
            app.hasher_url, hasher_labels)
        cpu_before, hashes_before = cpu_by_service(processes), app.hashes()
        started = time.monotonic()
        rate = counter_slope(app.hashes, seconds)
        elapsed = time.monotonic() - started
        cpu_after, hashes_after = cpu_by_service(processes), app.hashes()
        rng_after, hasher_after = buckets(app.rng_url, rng_labels), buckets(
            app.hasher_url, hasher_labels)
        rss, pss = {}, {}
        for pid, service in processes.items():
            try:
                both = rss_mib(pid), pss_mib(pid)
            except OSError:  # it ended meanwhile
                continue
            rss.setdefault(service, []).append(round(both[0], 1))
            pss.setdefault(service, []).append(round(both[1], 1))
    hashes = max(hashes_after - hashes_before, 1)
    cpu_ms = {s: round(1000 * (cpu_after[s] - cpu_before[s]) / hashes, 2) for s in COMPONENTS}
    cpu_ms["total"] = round(sum(cpu_ms.values()), 2)
    return {
        "workers": workers, "rng": rng, "window_seconds": round(elapsed, 1),
        "measured": round(rate, 2), "model": round(model(workers, rng), 2),
        "ratio": round(rate / model(workers, rng), 3),
        "rng_p50": rounded(quantile(0.5, rng_before, rng_after)),
        "rng_p95": rounded(quantile(0.95, rng_before, rng_after)),
        "hasher_p50": rounded(quantile(0.5, hasher_before, hasher_after)),
        "hasher_p95": rounded(quantile(0.95, hasher_before, hasher_after)),
        "cpu_ms_per_hash": cpu_ms,
        "rss_mib": rss,
        "pss_mib": pss,
    }


# The seed's app (rng.py, hasher.rb, worker.py and redis; no webui), measured beside ours on
# this machine kind with ci/up.sh on 2026-12-02 (issue 23). Not re-measured here: this
# machine has no Ruby for hasher.rb. CPU is ms per call at W=6 R=1 (the range of that run's
# readings); memory is the summed RSS at W=2 R=1.
SEED = {"rng_cpu_ms": (1.79, 1.96), "hasher_cpu_ms": (1.90, 2.06), "rss_mib": 147.0,
        "processes": 5}


def seed_comparison(cells):
    """Our figures beside SEED's, from the W=6 R=1 and W=2 R=1 cells (None if the run had
    either missing): rng and hasher CPU ms per call (one call of each per hash), and the
    summed RSS and PSS (MiB) of the processes of redis, rng, hasher and worker (webui left
    out, as the seed's run left it out). Ratios are ours / the seed's, against both ends of its range."""
    by_cell = {(c["workers"], c["rng"]): c for c in cells}
    if (6, 1) not in by_cell or (2, 1) not in by_cell:
        return None
    cpu, small = by_cell[(6, 1)]["cpu_ms_per_hash"], by_cell[(2, 1)]
    kept = [s for s in small["rss_mib"] if s != "webui"]
    figures = {"rss_mib": round(sum(sum(small["rss_mib"][s]) for s in kept), 1),
               "pss_mib": round(sum(sum(small["pss_mib"][s]) for s in kept), 1),
               "processes": sum(len(small["rss_mib"][s]) for s in kept)}
    for service in ("rng", "hasher"):
        low, high = SEED[f"{service}_cpu_ms"]
        figures[f"{service}_cpu_ms"] = cpu[service]
        figures[f"{service}_cpu_ratio"] = (round(cpu[service] / high, 2),
                                           round(cpu[service] / low, 2))
    figures["rss_ratio"] = round(figures["rss_mib"] / SEED["rss_mib"], 2)
    return figures


def container_figures():
    """Each image's size and `podman run` to ready time, built from the local base image."""
    import podman  # harness/podman.py
    problem = podman.available()
    if problem:
        return {"skipped": problem}
    refs = podman.build_images(tag="bench")  # not the tests' tag: both may run at once
    return {"rows": [podman.measure(ref) for ref in refs.values()]}


def worker_cpu_figures(baseline, seconds, pairs=3):
    """CPU ms per hash of this tree's worker and of the worker at git revision `baseline`,
    `pairs` of each side by side on one app's rng, hasher and redis, so the machine's noise
    falls on both alike; and their ratio (this tree / baseline). CPU is utime + stime from
    /proc over `seconds`, hashes from each worker's dockercoins_worker_hashes_total.
    Raises CalledProcessError if git cannot read `baseline` (a shallow clone may lack it)."""
    import subprocess
    import tempfile
    from localapp import metric, worker
    with tempfile.TemporaryDirectory() as old_tree:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline, "images/common",
                                  "images/worker"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", old_tree], input=archive, check=True)
        trees = {baseline: Path(old_tree) / "images", "this tree": ROOT / "images"}
        # 1 + 2 * pairs workers at 3.33/s each stay under 3 rng's 30/s: no plateau.
        with LocalApp(1, 3) as app:
            procs = [(name, worker(app.rng_url + "/32", app.hasher_url + "/", app.redis_url,
                                   images=images))
                     for _ in range(pairs) for name, images in trees.items()]
            app.extra.extend(proc for _, proc in procs)  # stopped with the app

            def reading():
                return {proc.pid: (cpu_seconds(proc.pid),
                                   metric(proc.url, "dockercoins_worker_hashes_total"))
                        for _, proc in procs}
            time.sleep(3)
            before = reading()
            time.sleep(seconds)
            after = reading()
    rows = []
    for name in trees:
        pids = [proc.pid for tree, proc in procs if tree == name]
        cpu = sum(after[pid][0] - before[pid][0] for pid in pids)
        hashes = sum(after[pid][1] - before[pid][1] for pid in pids)
        rows.append({"worker": name, "hashes": int(hashes),
                     "cpu_ms_per_hash": round(1000 * cpu / max(hashes, 1), 3)})
    base = rows[0]["cpu_ms_per_hash"]
    return {"rows": rows, "seconds": seconds, "pairs": pairs,
            "ratio": round(rows[1]["cpu_ms_per_hash"] / base, 3) if base else None}


def dashboard_figures(seconds):
    """The speed the dashboard shows against the true rate (slope of redis `hashes`), in
    steady state at 1 and 10 workers on one rng: SPEC's "Dashboard accuracy"."""
    browser = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(browser):
        return {"skipped": f"no browser at {browser} (apt-get install chromium)"}
    from dashboard_page import measure_dashboard_error
    rows = []
    for workers in (1, 10):
        with LocalApp(workers, 1) as app:
            time.sleep(15)  # SPEC: accurate from 15 s after the last change
            rows.append({"workers": workers, "rng": 1,
                         **measure_dashboard_error(app.webui, app.redis_url, seconds)})
    return {"rows": rows}


def stop_together(procs):
    """SIGTERM to all at once (as a scale-down does), then wait for each."""
    for proc in procs:
        proc.signal(signal.SIGTERM)
    for proc in procs:
        proc.stop()


def speed_trace(app, seconds, interval=0.25):
    """[(webui's clock, speed)] from /json, as the page draws it (one point per poll)."""
    import requests
    trace, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = requests.get(app.webui + "/json", timeout=2).json()
        if data.get("speed") is not None and not data.get("settling"):
            trace.append((data["now"], data["speed"]))
        time.sleep(interval)
    return trace


def transition(app, change, old_rate, steady_after=15.0, window=15.0):
    """Do change() (a scale change), then: the speed shown every poll for steady_after +
    window seconds, and the new true rate (slope of `hashes`) over the last `window`.
    Returns the SPEC's three figures: the largest overshoot above the higher of the old and
    new true rates (%), the seconds until the speed shown stays within 5% of the new rate,
    and the worst error in steady state (%)."""
    import threading
    change()
    changed, fit = time.time(), {}
    slope = threading.Thread(target=lambda: (time.sleep(steady_after), fit.update(
        rate=counter_slope(app.hashes, window))))
    slope.start()
    trace = speed_trace(app, steady_after + window)
    slope.join()
    new_rate = fit["rate"]
    top = max(old_rate, new_rate)
    off = [t for t, v in trace if abs(v - new_rate) > 0.05 * new_rate]
    steady = [abs(v - new_rate) / new_rate for t, v in trace if t >= changed + steady_after]
    return {"old_rate": round(old_rate, 3), "new_rate": round(new_rate, 3),
            "max_overshoot_pct": round(100 * max(0.0, max(v for _, v in trace) / top - 1), 1),
            "within_5pct_after_s": round(max(off, default=changed) - changed, 1),
            "steady_error_pct": round(100 * max(steady), 1), "points": len(trace)}


def scale_change_figures():
    """1 -> 6 workers on one rng, then 6 -> 2: how the speed /json shows (the page draws
    exactly that) follows the true rate. SPEC "Dashboard accuracy": never more than 5% above
    the higher true rate, within 5% of the new one 10 s after, within 3% in steady state."""
    with LocalApp(1, 1) as app:  # stops the added workers too
        time.sleep(15)
        old = counter_slope(app.hashes, 10)
        up = transition(app, lambda: app.add_workers(5), old)
        down = transition(app, lambda: stop_together(app.extra[1:]), up["new_rate"])
    return {"rows": [{"change": "1 -> 6 workers, 1 rng", **up},
                     {"change": "6 -> 2 workers, 1 rng", **down}]}


def rounded(value):
    return None if value is None else round(value, 3)


def plot(cells, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for rng in sorted({c["rng"] for c in cells}):
        row = sorted((c for c in cells if c["rng"] == rng), key=lambda c: c["workers"])
        xs = [c["workers"] for c in row]
        line, = ax.plot(xs, [c["measured"] for c in row], "o-", label=f"measured, rng={rng}")
        grid = range(0, max(xs) + 1)
        ax.plot(grid, [model(w, rng) for w in grid], "--", color=line.get_color(), alpha=0.6,
                label=f"model min(3.33·W, 10·{rng})")
    ax.set_xlabel("workers")
    ax.set_ylabel("hashes per second")
    ax.set_title("DockerCoins: measured speed against the bottleneck model")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# One line per row of each extra section, in this order.
EXTRA_LINES = {
    "scale_change": lambda row: (
        f"scale change {row['change']}: true {row['old_rate']:.2f} -> {row['new_rate']:.2f}"
        f"/s, max overshoot {row['max_overshoot_pct']:.1f} % (goal: <= 5 %), within 5 % "
        f"after {row['within_5pct_after_s']:.1f} s (goal: <= 10 s), steady error "
        f"{row['steady_error_pct']:.1f} % (goal: <= 3 %)"),
    "dashboard": lambda row: (
        f"dashboard W={row['workers']} R={row['rng']}: true {row['true_rate']:.2f}/s, "
        f"shown {row['shown_min']:.2f}-{row['shown_max']:.2f} over {row['shown_count']} "
        f"values, worst error {row['worst_error_pct']:.1f} % (goal: <= 3 %), "
        f"zeros shown: {row['zero_shown']}"),
    "containers": lambda row: (
        f"image {row['image']}: {row['size_mb']} MB, ready in {row['ready_seconds']} s, "
        f"stopped in {row['stop_seconds']} s (goal: <= {row['size_goal_mb']} MB, <= 2 s)"),
    "worker_cpu": lambda row: (
        f"worker CPU per hash, {row['worker']}: {row['cpu_ms_per_hash']:.3f} ms over "
        f"{row['hashes']} hashes"),
}


def print_seed(figures):
    if figures is None:
        return
    for service in ("rng", "hasher"):
        low, high = SEED[f"{service}_cpu_ms"]
        ratio = figures[f"{service}_cpu_ratio"]
        print(f"beside the seed: {service} CPU per call, W=6 R=1: "
              f"{figures[f'{service}_cpu_ms']:.2f} ms (seed {low:.2f}-{high:.2f}: "
              f"x{ratio[0]:.2f}-{ratio[1]:.2f})")
    print(f"beside the seed: summed memory, W=2 R=1, no webui: RSS {figures['rss_mib']:.1f} MiB "
          f"over {figures['processes']} processes (seed {SEED['rss_mib']:.0f} MiB over "
          f"{SEED['processes']}: x{figures['rss_ratio']:.2f}), PSS {figures['pss_mib']:.1f} MiB")


def print_extras(extras):
    for section, line in EXTRA_LINES.items():
        figures = extras.get(section, {})
        if "skipped" in figures:
            print(f"{section}: skipped: {figures['skipped']}")
        for row in figures.get("rows", []):
            print(line(row))
    if extras.get("worker_cpu", {}).get("ratio"):
        print(f"worker CPU per hash, this tree / {extras['worker_cpu']['rows'][0]['worker']}: "
              f"x{extras['worker_cpu']['ratio']:.3f} (goal: <= 1.10)")


def print_table(cells, plot_path):
    print(f"{'W':>3} {'R':>2} {'measured':>9} {'model':>6} {'ratio':>6}  "
          f"{'rng p50/p95 s':>14} {'hasher p50/p95 s':>17}  "
          f"CPU ms/hash (rng hasher worker redis = total)   RSS MiB (max per process)")
    for c in cells:
        cpu = c["cpu_ms_per_hash"]
        rss = " ".join(f"{s}={max(v)}" for s, v in sorted(c["rss_mib"].items()))
        print(f"{c['workers']:>3} {c['rng']:>2} {c['measured']:>9.2f} {c['model']:>6.2f} "
              f"{c['ratio']:>6.2f}  {fmt(c['rng_p50'])}/{fmt(c['rng_p95']):<6} "
              f"{fmt(c['hasher_p50']):>9}/{fmt(c['hasher_p95']):<6}  "
              f"{cpu['rng']:.2f} {cpu['hasher']:.2f} {cpu['worker']:.2f} {cpu['redis']:.2f} "
              f"= {cpu['total']:.2f}   {rss}")
    print(f"plot: {plot_path}")


def machine():
    """What the figures were measured on: cores, CPU model, kernel."""
    import platform
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    return f"{os.cpu_count()} cores ({model}), Linux {platform.release()}"


def write_report(path, cells, extras, argv):
    """The figures as markdown, dated, with the machine, and the plot beside them."""
    import contextlib
    import io
    plot(cells, path.with_suffix(".png"))
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        print_table(cells, path.with_suffix(".png").name)
        print_seed(seed_comparison(cells))
        print_extras(extras)
    path.write_text(
        "# Benchmarks\n\n"
        f"Written by `ci/bench.sh {' '.join(argv)}` on {time.strftime('%Y-%m-%d %H:%M %Z')}, "
        f"on {machine()}. The machine is shared, so expect noise of several percent; run "
        "the bench again rather than copying these figures.\n\n"
        "Each cell runs the app as `ci/up.sh --workers W --rng R` does, and compares the "
        "speed (slope of redis `hashes`) with the model min(3.33 W, 10 R). CPU is per hash, "
        "per service, from /proc.\n\n"
        f"![measured speed against the model]({path.with_suffix('.png').name})\n\n"
        f"```\n{text.getvalue()}```\n")
    return path


def fmt(value):
    return "  -  " if value is None else f"{value:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help=f"only the cells {QUICK_CELLS} (about 2 minutes)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--seconds", type=float, default=15.0, help="window per cell")
    parser.add_argument("--out", default=str(ROOT / "out"), help="where the plot goes")
    parser.add_argument("--containers", action=argparse.BooleanOptionalAction, default=None,
                        help="build the images and time them (default: on, off with --quick)")
    parser.add_argument("--dashboard", action=argparse.BooleanOptionalAction, default=None,
                        help="compare the dashboard's speed with the true rate in Chromium "
                             "(default: on, off with --quick)")
    parser.add_argument("--scale-change", action=argparse.BooleanOptionalAction, default=None,
                        help="the speed shown after 1 -> 6 -> 2 workers (default: on, off "
                             "with --quick)")
    parser.add_argument("--worker-baseline", metavar="REV", default=None,
                        help="also compare the worker's CPU per hash with the worker at git "
                             "revision REV, side by side (e.g. 8a71473, the urllib3 worker)")
    parser.add_argument("--worker-seconds", type=float, default=120.0,
                        help="how long that comparison measures")
    parser.add_argument("--report", default=None,
                        help="write the figures as markdown here, the plot beside it "
                             "(default: docs/benchmarks.md, none with --quick)")
    args = parser.parse_args()
    extras = {}
    if args.scale_change if args.scale_change is not None else not args.quick:
        extras["scale_change"] = scale_change_figures()
    if args.dashboard if args.dashboard is not None else not args.quick:
        extras["dashboard"] = dashboard_figures(seconds=30)
    if args.containers if args.containers is not None else not args.quick:
        extras["containers"] = container_figures()
    if args.worker_baseline:
        extras["worker_cpu"] = worker_cpu_figures(args.worker_baseline, args.worker_seconds)
    cells = []
    for workers, rng in QUICK_CELLS if args.quick else FULL_CELLS:
        cells.append(run_cell(workers, rng, args.seconds, settle=3.0))
        if not args.json:
            print(f"  measured W={workers} R={rng}: {cells[-1]['measured']:.2f}/s",
                  file=sys.stderr)
    plot_path = Path(args.out) / "bench.png"
    plot(cells, plot_path)
    if args.json:
        print(json.dumps({"cells": cells, "plot": str(plot_path),
                          "seed": seed_comparison(cells), **extras}, indent=2))
    else:
        print_table(cells, plot_path)
        print_seed(seed_comparison(cells))
        print_extras(extras)
    report = args.report or (None if args.quick else str(ROOT / "docs" / "benchmarks.md"))
    if report:
        written = write_report(Path(report), cells, extras, sys.argv[1:])
        print(f"report: {written}", file=sys.stderr)


if __name__ == "__main__":
    main()
