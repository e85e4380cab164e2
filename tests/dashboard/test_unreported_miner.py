"""A miner that writes only the seed's keys (the seed's own worker: INCRBY hashes once a
second, no heartbeat), with no worker of ours: the page shows its speed, not 0 and not
"nothing is mining". SPEC "Dashboard accuracy": never 0 while hashing goes on."""
import threading
import time

import pytest

from dashboard_page import open_dashboard, read_page, shown_since, wait
from localapp import LocalApp


class SeedMiner(threading.Thread):
    def __init__(self, redis_client, step=3):
        super().__init__(daemon=True)
        self.redis, self.step, self.times = redis_client, step, []
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(1.0):
            self.redis.incrby("hashes", self.step)
            self.times.append(time.monotonic())

    def rate(self):
        return self.step * (len(self.times) - 1) / (self.times[-1] - self.times[0])


@pytest.fixture
def idle_app(tmp_path):
    app = LocalApp(workers=0, log_dir=tmp_path)
    yield app
    app.stop()
    assert not app.left_running()


def test_a_miner_without_heartbeats_shows_on_the_page(idle_app, browser):
    page, _ = open_dashboard(browser, idle_app.webui)
    try:
        assert read_page(page)["speed"] == 0  # nothing mines yet: a true 0
        miner = SeedMiner(idle_app.redis())
        miner.start()
        started = page.evaluate("Date.now() / 1000")
        wait(page, 20)
        shown = read_page(page)
        miner.stopped.set()
        values = shown_since(page, started + 3)  # a poll or two to see it move
    finally:
        page.context.close()
    assert shown["workers"] == 0
    assert shown["speed"] == pytest.approx(miner.rate(), rel=0.03), (shown, miner.rate())
    assert "nothing is mining" not in shown["verdict"], shown
    assert "no worker reports" in shown["verdict"], shown
    zeros = [v for v in values if v[2] == "live" and v[1].strip() in ("0", "0.0", "0.00")]
    assert not zeros, values
