"""The scaling lab's arithmetic and output, shared by `dockercoins-lab experiment`, `ci/bench.sh`
(local and --node) and the tests: the bottleneck model, the random-balancing estimate, the slope
of a counter, the table and the plot."""
import heapq
import random
import time
from pathlib import Path

PER_WORKER = 1 / 0.3   # hashes/s of one worker: 0.1 s sleep + 0.1 s rng + 0.1 s hasher per loop
PER_RNG = 10.0         # calls/s of one rng: one at a time, 0.1 s each


def model(workers, rng):
    """Hashes/s by the bottleneck model: min(3.33 x workers, 10 x rng)."""
    return min(PER_WORKER * workers, PER_RNG * rng)


def random_balancing(workers, rng, seconds=3000.0, seed=1):
    """Hashes/s when each rng call goes to a replica picked at random, as kube-proxy does per
    connection: a discrete-event simulation of the worker loop (0.1 s sleep, an rng call served
    one at a time in 0.1 s, a 0.1 s hasher call). Random picks can queue calls on one replica
    while another idles, so the result stays below the model once rng is the bottleneck."""
    pick = random.Random(seed)
    free_at = [0.0] * rng              # when each rng replica finishes its queue
    events = [(0.1, w) for w in range(workers)]   # (time the worker calls rng, worker)
    heapq.heapify(events)
    loops = 0
    while events:
        now, worker = heapq.heappop(events)
        if now > seconds:
            break
        replica = pick.randrange(rng)
        done = max(now, free_at[replica]) + 0.1
        free_at[replica] = done
        loops += 1
        heapq.heappush(events, (done + 0.1 + 0.1, worker))   # hasher, then the next sleep
    return loops / seconds


def slope(read_counter, seconds, interval=0.5, tick=None):
    """Least-squares slope of a counter over a window of SECONDS, in units/s: many samples, so
    the once-a-second steps of the workers' flushes do not bias it the way two end points would.
    TICK(elapsed, samples), if given, is called after each sample (a progress line)."""
    samples = []
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline or len(samples) < 2:
        samples.append((time.monotonic(), read_counter()))
        if tick:
            tick(time.monotonic() - started, samples)
        time.sleep(interval)
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    return (sum((t - mean_t) * (v - mean_v) for t, v in samples)
            / sum((t - mean_t) ** 2 for t, _ in samples))


def row(workers, rng, measured):
    """One cell: (W, R, measured, model, random-balancing estimate), in hashes/s."""
    return (workers, rng, measured, model(workers, rng), random_balancing(workers, rng))


def table(rows):
    """The Markdown table of rows made by row()."""
    lines = ["| W | R | measured on real pods | model min(3.33 W, 10 R) "
             "| random-balancing estimate |", "|---|---|---|---|---|"]
    for workers, rng, measured, expected, balanced in rows:
        lines.append(f"| {workers} | {rng} | {measured:.2f} | {expected:.2f} | {balanced:.1f} |")
    return "\n".join(lines)


def plot(rows, path, title="DockerCoins on a real node: measured against the model"):
    """A bar chart of rows made by row(), written to PATH (PNG); its folder is created."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    labels = [f"W={w} R={r}" for w, r, *_ in rows]
    xs = range(len(rows))
    ax.bar([x - 0.27 for x in xs], [r[2] for r in rows], 0.27, label="measured on real pods")
    ax.bar(xs, [r[3] for r in rows], 0.27, label="model min(3.33·W, 10·R)")
    ax.bar([x + 0.27 for x in xs], [r[4] for r in rows], 0.27, label="random balancing")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("hashes per second")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_timeline(timeline, speeds, path, title):
    """The autoscaling chapter against time (Lab.autoscale()'s rows and their speeds): hashes/s
    with the workers, rng's ready pods, and the HPA's metric per pod. Written to PATH (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [row[0] for row in timeline]
    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(8, 7))
    top.plot(t, [v if v is not None else float("nan") for v in speeds], label="hashes/s")
    top.plot(t, [min(3.33 * row[1], 10 * row[2]) for row in timeline], "--",
             label="model min(3.33·W, 10·R)")
    top.set_ylabel("hashes per second")
    top.legend()
    middle.step(t, [row[2] for row in timeline], where="post", label="rng pods (ready)")
    middle.step(t, [row[1] for row in timeline], where="post", label="workers")
    middle.set_ylabel("pods")
    middle.legend()
    bottom.plot(t, [row[4] if row[4] is not None else float("nan") for row in timeline])
    bottom.set_ylabel("HPA metric per pod")
    bottom.set_xlabel("seconds since the workers' scale-up")
    for ax in (top, middle, bottom):
        ax.grid(alpha=0.3)
    top.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
