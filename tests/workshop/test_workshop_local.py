"""The container.training scaling chapter, typed against the app as `ci/up.sh` runs it: 1 worker,
then 2, then 10; time GET / on rng and hasher as the workshop does (httping); find the culprit
from those figures alone; add rng and see the plateau lift. SPEC: "The bottleneck physics"."""
import pytest
import requests

from helpers.httping import culprit, httping
from localapp import LocalApp, counter_slope

pytestmark = pytest.mark.timeout(600)


def speed_of(app, seconds=10):
    """The true speed (slope of redis `hashes`) and what the dashboard's /json says."""
    true_rate = counter_slope(app.hashes, seconds)
    shown = requests.get(app.webui + "/json", timeout=5).json()["speed"]
    return true_rate, shown


def probe(app):
    return {"rng": httping(app.rng_url + "/"), "hasher": httping(app.hasher_url + "/")}


def test_the_scaling_chapter_as_typed():
    figures = {}
    for workers in (1, 2):  # ci/up.sh --workers 1, then --workers 2
        with LocalApp(workers, 1) as app:
            figures[workers] = speed_of(app)
            latencies = probe(app)
        # Below rng's 10 calls/s nothing queues: no culprit yet.
        assert culprit(latencies) is None, (workers, latencies)
    one, two = figures[1][0], figures[2][0]
    assert one == pytest.approx(1 / 0.3, rel=0.1), figures
    assert two / one == pytest.approx(2.0, rel=0.1), figures

    with LocalApp(10, 1) as app:  # ci/up.sh --workers 10
        ten, shown = speed_of(app, 15)
        slow = probe(app)
    # A plateau at rng's 10 calls/s, not 10 x 3.33.
    assert ten == pytest.approx(10.0, rel=0.1), ten
    assert shown == pytest.approx(ten, rel=0.05), (shown, ten)
    # httping finds it: rng's GET / waits its turn behind ~8 queued calls (~0.8 s, SPEC says
    # 0.7-0.8 s) while hasher answers in milliseconds.
    assert culprit(slow) == "rng", slow
    assert slow["rng"] > 5 * 0.1 and slow["hasher"] < slow["rng"] / 10, slow

    with LocalApp(10, 3) as app:  # add rng: ci/up.sh --workers 10 --rng 3
        lifted, _ = speed_of(app, 15)
        after = probe(app)
    assert lifted > 2.5 * ten, (lifted, ten)   # min(33.3, 30): 30, three times the plateau
    assert after["rng"] < slow["rng"] / 2, (after, slow)
