"""The helm-unittest suites of charts/dockercoins/tests/ (the plugin is built from source by
ci/tools.sh and placed in .tools/helm-plugins)."""
import re

from helpers.chart import CHART, helm


def test_helm_unittest_suites_pass():
    result = helm("unittest", "--color=false", CHART, check=False, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    match = re.search(r"Tests:\s+(\d+) passed, (\d+) total", output)
    assert match, output
    passed, total = map(int, match.groups())
    assert passed == total and total >= 50, output
