"""open_dataset: spec parsing, registry look-up, missing paths, adapter options in the spec."""

import pytest

from sslkit.data import open_dataset, parse_spec
from sslkit.data.opening import split_location_options
from sslkit.errors import UserError


def test_parse_spec_splits_on_first_colon_only():
    assert parse_spec("folder:/data/a:b") == ("folder", "/data/a:b")
    for bad in ("no-colon", ":/x", "busi:"):
        with pytest.raises(UserError):
            parse_spec(bad)


def test_unknown_adapter_suggests_closest(tmp_path):
    with pytest.raises(UserError, match="did you mean 'busi'"):
        open_dataset(f"bussi:{tmp_path}")


def test_missing_location_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError, match="nowhere.*does not exist"):
        open_dataset(f"folder:{missing}")


def test_bad_policy_and_fractions():
    with pytest.raises(UserError, match="on-bad-image"):
        open_dataset(None, on_bad_image="ignore")
    with pytest.raises(UserError, match="fraction"):
        open_dataset(None, val_fraction=0.5, test_fraction=0.5)


def test_options_after_question_mark(tmp_path):
    assert split_location_options(f"{tmp_path}?labels=none&groups=parent") == (str(tmp_path), {"labels": "none", "groups": "parent"})
    assert split_location_options(str(tmp_path)) == (str(tmp_path), {})
    with pytest.raises(UserError, match="has no option 'colour'"):
        open_dataset(f"folder:{tmp_path}?colour=red")
