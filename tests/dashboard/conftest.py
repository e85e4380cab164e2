"""Fixtures for the dashboard tests: the app as ci/up.sh runs it, and one Chromium page on
its dashboard that stays open for the whole scenario (scale up, redis down and back)."""
import pytest

from dashboard_page import chromium, open_dashboard
from localapp import LocalApp


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = LocalApp(workers=1, log_dir=tmp_path_factory.mktemp("up"))
    yield app
    app.stop()
    left = app.left_running()
    assert not left, f"processes left running after SIGINT to ci/up.sh: {left}"


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def dashboard(app, browser):
    """(page, request log) on the app's dashboard, opened once."""
    page, requests_seen = open_dashboard(browser, app.webui)
    yield page, requests_seen
    page.context.close()
