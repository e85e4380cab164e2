"""helm lint --strict, with the defaults and with every CI scenario."""
import pytest

from helpers.chart import CHART, EXPECTED_SCENARIOS, SCENARIOS, helm, scenario_file


def test_the_scenarios_are_the_expected_ones():
    assert SCENARIOS == EXPECTED_SCENARIOS


def test_lint_strict_defaults():
    result = helm("lint", "--strict", CHART)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict_scenario(scenario):
    result = helm("lint", "--strict", CHART, "-f", scenario_file(scenario))
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout
