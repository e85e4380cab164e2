"""The cluster view under ci/up.sh, in Chromium: the workers that report and the rng and hasher
the script started, and the model line min(3.33 x workers, 10 x rng) on the speed graph."""
import pytest

from dashboard_page import open_dashboard
from localapp import LocalApp

CLUSTER_TEXT = "document.getElementById('cluster').textContent"
MODEL = "window.dockercoins.history.model.at(-1)"


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    app = LocalApp(workers=2, rng=2, log_dir=tmp_path_factory.mktemp("up"))
    yield app
    app.stop()
    left = app.left_running()
    assert not left, f"processes left running after SIGINT to ci/up.sh: {left}"


def test_the_panel_shows_what_ci_up_started_and_the_model_follows(up, browser):
    page, _ = open_dashboard(browser, up.webui_url)
    try:
        page.wait_for_function(f"{CLUSTER_TEXT} === 'worker 2/2 · rng 2/2 · hasher 1/1'",
                               timeout=15_000)
        assert page.get_attribute("#cluster", "data-source") == "heartbeats"
        assert page.is_visible("#cluster") and page.is_visible("#model-key")
        assert page.evaluate(MODEL) == pytest.approx(2 / 0.3)   # workers limit: 6.67
        up.add_workers(1)
        page.wait_for_function(f"{CLUSTER_TEXT}.startsWith('worker 3/3 ')", timeout=15_000)
        page.wait_for_function(f"Math.abs({MODEL} - 10) < 1e-9", timeout=5_000)
        # One model point per drawn speed point, gaps included, so the lines share the x axis.
        lengths = page.evaluate("[window.dockercoins.history.t.length,"
                                " window.dockercoins.history.model.length]")
        assert lengths[0] == lengths[1] and lengths[0] > 0
    finally:
        page.context.close()
