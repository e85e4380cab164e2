"""The speed the page draws right after a scale change (SPEC "Dashboard accuracy"): 1 -> 6
workers on one rng, then 6 -> 2, with the page open throughout.

What the page drew is its own history (window.dockercoins.history, webui's clock); the true
rates are slopes of the redis `hashes` counter over steady windows before and after. After
each change the speed drawn is:
- never more than 5% above the higher of the old and new true rates;
- within 5% of the new rate from 10 s after the change on;
- within 3% of it in steady state (15 s after the change).
The change time is when every new worker is looping (scale-up) or every stopped worker has
exited (scale-down). Ratios only, never absolute speeds.
"""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from dashboard_page import wait
from localapp import counter_slope

OVERSHOOT = 0.05      # above the higher of the old and new true rates
SETTLED = 0.05        # from SETTLE_SECONDS after the change on
SETTLE_SECONDS = 10
STEADY = 0.03         # from STEADY_AFTER on
STEADY_AFTER = 15
WINDOW = 15           # seconds of each true-rate fit


def drawn(page, since, until):
    """[(webui time, speed)] the speed graph drew between since and until (gaps left out)."""
    history = page.evaluate("({t: window.dockercoins.history.t, "
                            "speed: window.dockercoins.history.speed})")
    return [(t, v) for t, v in zip(history["t"], history["speed"])
            if since <= t <= until and v is not None]


def steady_rate(app, page, after):
    """The true rate: the slope of `hashes` over WINDOW seconds, starting `after` s from now
    (the page stays open meanwhile)."""
    fit = {}
    thread = threading.Thread(target=lambda: (time.sleep(after),
                                              fit.update(rate=counter_slope(app.hashes, WINDOW))))
    thread.start()
    wait(page, after + WINDOW)
    thread.join()
    return fit["rate"]


def watch_change(app, page, change, old_rate):
    """change(), then (new true rate, [(seconds after the change, speed drawn)])."""
    change()
    changed = time.time()
    new_rate = steady_rate(app, page, STEADY_AFTER)
    wait(page, 1.5)  # the last poll of the window is drawn
    points = [(t - changed, v) for t, v in drawn(page, changed, changed + STEADY_AFTER + WINDOW)]
    print(f"true {old_rate:.3f} -> {new_rate:.3f}/s; drawn:",
          [(round(s, 1), round(v, 2)) for s, v in points])
    return new_rate, points


def check(old_rate, new_rate, points):
    top = max(old_rate, new_rate)
    assert len(points) >= STEADY_AFTER, points  # about one point a second
    over = [(s, v) for s, v in points if v > (1 + OVERSHOOT) * top]
    assert not over, f"above {top:.3f}/s + {OVERSHOOT:.0%}: {over}"
    late = [(s, v) for s, v in points
            if s >= SETTLE_SECONDS and abs(v - new_rate) > SETTLED * new_rate]
    assert not late, f"not within {SETTLED:.0%} of {new_rate:.3f}/s: {late}"
    steady = [(s, v) for s, v in points if s >= STEADY_AFTER]
    assert steady and all(abs(v - new_rate) <= STEADY * new_rate for _, v in steady), \
        (new_rate, steady)


def test_scale_up_1_to_6_then_down_to_2_never_overshoots(app, dashboard):
    page, _ = dashboard
    wait(page, max(0, STEADY_AFTER - (time.monotonic() - app.started)))
    one = steady_rate(app, page, 0)
    assert 2.5 < one < 3.6, one  # one worker: about 3.33 hashes/s

    six, points = watch_change(app, page, lambda: app.add_workers(5), one)
    assert 9.0 < six < 11.0, six  # six workers on one rng: its cap, 10/s
    check(one, six, points)

    def scale_down():
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda proc: proc.stop(), app.extra[1:]))
    two, points = watch_change(app, page, scale_down, six)
    assert 6.0 < two < 7.2, two  # two workers: 6.67/s
    check(six, two, points)
