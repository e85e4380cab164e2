"""ci/bench.py's side-by-side worker CPU comparison (`--worker-baseline REV`), run short on
this checkout's own HEAD: both sides are the same code, so each must mine at the same speed
and their CPU per hash must be of one size. The figure itself (within 10% of the urllib3
worker) is a benchmark target, printed by ci/bench.sh, not asserted here."""
import subprocess

import pytest

import bench


def test_the_comparison_measures_both_workers_alike():
    figures = bench.worker_cpu_figures("HEAD", seconds=12, pairs=1)
    baseline, this_tree = figures["rows"]
    assert baseline["worker"] == "HEAD" and this_tree["worker"] == "this tree"
    for row in (baseline, this_tree):
        assert row["hashes"] >= 25, row            # 3.33/s for 12 s, unsaturated
        assert row["cpu_ms_per_hash"] > 0, row      # read from the worker's own pid
    assert abs(baseline["hashes"] - this_tree["hashes"]) <= 0.25 * baseline["hashes"]
    # 10 ms CPU ticks over ~40 hashes: like against like, within a factor of 2.
    assert 0.5 <= figures["ratio"] <= 2.0, figures


def test_a_revision_git_cannot_read_fails_before_anything_starts():
    with pytest.raises(subprocess.CalledProcessError):
        bench.worker_cpu_figures("no-such-revision", seconds=1)
