import pytest

import dockercoins_common as common
import rng


def test_numbers_from_env(monkeypatch):
    monkeypatch.setenv("SOME_COUNT", "7")
    monkeypatch.setenv("SOME_DELAY", "0.5")
    assert common.env_int("SOME_COUNT", 1) == 7
    assert common.env_float("SOME_DELAY", 1.0) == 0.5
    assert common.env_int("UNSET_COUNT", 3) == 3


@pytest.mark.parametrize("raw, message", [("two", "must be an integer, got 'two'"),
                                          ("0", "must be >= 1, got 0")])
def test_a_bad_setting_says_which_and_why(monkeypatch, raw, message):
    monkeypatch.setenv("RNG_CONCURRENCY", raw)
    with pytest.raises(common.ConfigError, match=f"RNG_CONCURRENCY {message}"):
        rng.create_app()
