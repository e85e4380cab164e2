"""Fixtures for the dashboard tests: the app as ci/up.sh runs it, and one Chromium page on
its dashboard that stays open for the whole scenario (scale up, redis down and back)."""
import pytest

from dashboard_harness import UpApp, chromium, open_dashboard


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = UpApp(workers=1, log_dir=tmp_path_factory.mktemp("up"))
    yield app
    left = app.stop()
    assert not left, f"processes left running after SIGINT to ci/up.sh: {left}"


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def dashboard(app, browser):
    """(page, request log) on the app's dashboard, opened once."""
    page, requests_seen = open_dashboard(browser, app.webui_url)
    yield page, requests_seen
    page.context.close()
