"""sslkit.options (key=value parsing, typed option checks for plugin authors) and sslkit.seeding."""

from __future__ import annotations

import pytest

from sslkit.errors import UserError
from sslkit.options import OptionChecks, parse_options
from sslkit.seeding import derive_seed


def test_options_parse_to_typed_values_with_underscored_names():
    assert parse_options(["grid=4", "normalize-reward=false"], "--masker-opt") == {"grid": 4, "normalize_reward": False}


def test_option_checks_return_typed_values():
    check = OptionChecks("masker 'demo'")
    assert check.whole("grid", 4.0) == 4 and isinstance(check.whole("grid", 4.0), int)
    assert check.number("ratio", 1, 0, 1, open_low=True) == 1.0
    assert check.number("lr", 0, 0) == 0.0
    assert check.choice("reward", "masked", ("image", "masked")) == "masked"
    assert check.flag("normalize", False) is False


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.whole("grid", 0), "masker 'demo': grid must be a whole number >= 1, got 0"),
        (lambda c: c.whole("grid", 2.5), "grid must be a whole number"),
        (lambda c: c.whole("grid", True), "grid must be a whole number"),  # YAML's true is not a count
        (lambda c: c.whole("size", 3, minimum=4), "size must be a whole number >= 4"),
        (lambda c: c.number("ratio", 0, 0, 1, open_low=True), r"ratio must be a number in \(0, 1\]"),
        (lambda c: c.number("ratio", 1.5, 0, 1), r"ratio must be a number in \[0, 1\]"),
        (lambda c: c.number("lr", "fast", 0), "lr must be a number >= 0, got 'fast'"),
        (lambda c: c.choice("reward", "psnr", ("image", "masked")), "reward must be one of image, masked"),
        (lambda c: c.flag("normalize", "maybe"), "normalize must be true or false"),
    ],
)
def test_option_checks_fail_with_one_user_error_naming_plugin_and_option(call, message):
    with pytest.raises(UserError, match=message):
        call(OptionChecks("masker 'demo'"))


def test_fail_builds_the_same_error_for_a_plugins_own_rules():
    error = OptionChecks("masker 'demo'").fail("block (5) must not exceed grid (4)")
    assert isinstance(error, UserError) and str(error) == "masker 'demo': block (5) must not exceed grid (4)"


def test_derive_seed_keeps_the_streams_runs_were_made_with():
    # the formulas the loader and the maskers used before derive_seed: a resumed run depends on them
    for seed, stream in [(0, 0), (3, 1), (7, 12), (123456, 3)]:
        assert derive_seed(seed, stream) == (seed * 1_000_003 + stream * 7_919 + 17) % (2**63)
    streams = {derive_seed(seed, stream) for seed in range(20) for stream in range(20)}
    assert len(streams) == 400  # no two (seed, stream) pairs share a stream
    assert 0 <= derive_seed(2**62, 5) < 2**63
