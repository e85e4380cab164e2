"""The dashboard in a real Chromium while redis is full (maxmemory reached, `noeviction`, as the
chart sets it): a red "Redis is full" banner with webui's reason, the last known numbers kept
and a gap in the graph (never a false 0), and back to live, with every hash counted, once
there is room."""
from dashboard_page import chromium, open_dashboard, read_page, wait
from localapp import LocalApp, wait_until


def test_a_full_redis_shows_the_banner_then_recovers(tmp_path):
    with LocalApp(workers=1, log_dir=tmp_path) as app, chromium() as browser:
        page, _ = open_dashboard(browser, app.webui)
        store = app.redis()
        wait(page, 3)
        before = read_page(page)
        # A limit under what redis holds: every write is refused with OOM, nothing evicted.
        store.config_set("maxmemory-policy", "noeviction")
        store.config_set("maxmemory", store.info("memory")["used_memory"] - 65_536)
        held = app.hashes()
        # Within the workers' heartbeat TTL (5 s), which a full redis refuses to renew.
        page.wait_for_function("document.body.dataset.state === 'redis-full'", timeout=15_000)
        # The last speed known before the refusals began: a flush may still land between
        # `before` and the limit (seen on a loaded machine), so it is read here, not there.
        before = read_page(page)
        wait(page, 3)
        full = read_page(page)
        assert full["status"].startswith("Redis is full since "), full
        assert "MiB used of its maxmemory" in full["status"], full
        assert "refuses writes" in full["status"], full
        assert full["speed"] == before["speed"], (before, full)  # last known, greyed
        tail = page.evaluate("window.dockercoins.history.speed.slice(-3)")
        assert tail == [None, None, None], tail
        assert app.hashes() == held  # nothing lands while it is full

        store.config_set("maxmemory", "0")  # room again
        page.wait_for_function("['live', 'degraded'].includes(document.body.dataset.state)",
                               timeout=15_000)
        wait_until(lambda: app.hashes() > held, 10, what="the kept counts landing")
        wait(page, 2)
        assert read_page(page)["speed"] > 0
        page.context.close()
