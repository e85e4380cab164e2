"""ci/bench.py's figures beside the seed's (issue 23): which cells they come from, that webui is
left out of the memory as the seed's run left it out, and the ratios against both ends of the
seed's range. The figures themselves are benchmark targets, printed by ci/bench.sh."""
import bench


def cell(workers, rng, cpu, rss, pss):
    return {"workers": workers, "rng": rng, "cpu_ms_per_hash": cpu, "rss_mib": rss,
            "pss_mib": pss}


SMALL = cell(2, 1, {"rng": 9.0, "hasher": 9.0},
             {"redis": [12.0], "rng": [24.0, 31.0], "hasher": [24.0, 31.0],
              "worker": [35.0, 36.0], "webui": [24.0, 40.0]},
             {"redis": [11.0], "rng": [17.0, 25.0], "hasher": [17.0, 24.0],
              "worker": [33.0, 34.0], "webui": [17.0, 33.0]})
SATURATED = cell(6, 1, {"rng": 2.2, "hasher": 1.9}, {}, {})


def test_memory_is_the_seed_kinds_of_process_summed_without_webui():
    figures = bench.seed_comparison([SATURATED, SMALL])
    assert figures["processes"] == 7
    assert figures["rss_mib"] == 12 + 55 + 55 + 71
    assert figures["pss_mib"] == 11 + 42 + 41 + 67
    assert figures["rss_ratio"] == round(193 / bench.SEED["rss_mib"], 2)


def test_cpu_per_call_is_the_saturated_cell_against_both_ends_of_the_seed_range():
    figures = bench.seed_comparison([SMALL, SATURATED])
    assert figures["rng_cpu_ms"] == 2.2 and figures["hasher_cpu_ms"] == 1.9
    low, high = bench.SEED["rng_cpu_ms"]
    assert figures["rng_cpu_ratio"] == (round(2.2 / high, 2), round(2.2 / low, 2))
    assert figures["hasher_cpu_ratio"][0] <= 1.0 <= figures["hasher_cpu_ratio"][1]


def test_a_run_without_both_cells_has_no_comparison():
    assert bench.seed_comparison([SMALL]) is None
    assert bench.seed_comparison([SATURATED]) is None
