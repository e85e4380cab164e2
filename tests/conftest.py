"""Fixtures shared by every test folder: real redis-server and real gunicorn processes; and the
run's time per test folder and tier, printed at the end (the CI clock's budget is kept by it),
after the figures the tests measured (helpers/figures.py)."""
from collections import Counter
from pathlib import Path

import pytest

# Assertions in the helpers package (shared test bodies among them) report like a test's own.
pytest.register_assert_rewrite("helpers")

from helpers import figures  # noqa: E402
from helpers.services import RedisServer  # noqa: E402
from localapp import gunicorn  # noqa: E402


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.close()


@pytest.fixture
def redis_db(redis_server):
    client = redis_server.client()
    client.flushall()
    return client


@pytest.fixture(scope="module")
def rng_service():
    proc = gunicorn("rng")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def hasher_service():
    proc = gunicorn("hasher")
    yield proc
    proc.stop()


# Seconds per test folder: setup, call and teardown, so a module fixture's cost (a cluster's `up`,
# a release's install) counts to the folder that asked for it.
FOLDER_SECONDS = Counter()
TIERS = Path(__file__).parent / "tiers.txt"


def tier_of():
    """{test folder: its tier}, in tests/tiers.txt's order: the tiers cheapest first, and in a
    tier its folders as listed (the node tier's own node first, whose parts are built first)."""
    return {folder: tier for tier, *folders in
            (line.split() for line in TIERS.read_text().splitlines()
             if line.strip() and not line.startswith("#"))
            for folder in folders}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The folders in tests/tiers.txt's order, each folder's own order kept: a failure of a
    cheap tier shows in minutes, and ci/test.sh's background build of the node's parts has the
    cheaper tiers' time to finish before the first node test needs them (tests/node first: the
    policy controller, Prometheus, KEDA and metrics-server go on building while it runs)."""
    order = {folder: place for place, folder in enumerate(tier_of())}
    items.sort(key=lambda item: order.get(Path(item.path).parent.name, len(order)))


def pytest_runtest_logreport(report):
    FOLDER_SECONDS[Path(report.fspath).parent.name] += report.duration


def pytest_terminal_summary(terminalreporter):
    figures.summary(terminalreporter)
    if not FOLDER_SECONDS:
        return
    tiers = tier_of()
    terminalreporter.section("time per tier and test folder (minutes)")
    by_tier = Counter()
    for folder, seconds in FOLDER_SECONDS.items():
        by_tier[tiers.get(folder, "?")] += seconds
    for tier, seconds in by_tier.items():
        folders = ", ".join(f"{folder} {FOLDER_SECONDS[folder] / 60:.1f}"
                            for folder in sorted(FOLDER_SECONDS) if tiers.get(folder, "?") == tier)
        terminalreporter.write_line(f"{tier:<8} {seconds / 60:5.1f}   ({folders})")
    terminalreporter.write_line(f"{'all':<8} {sum(FOLDER_SECONDS.values()) / 60:5.1f}")
