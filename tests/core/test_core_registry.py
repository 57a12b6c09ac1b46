"""Registry: names, suggestions for typos, duplicate names, option checking."""

import pytest

from sslkit.errors import UserError
from sslkit.registry import Registry, closest, unknown_name_message


def make_registry():
    reg = Registry("masker")
    reg.register("random", lambda size=0.25, count=1: ("random", size, count), "rectangles", plugin="p1")
    reg.register("random-grid", lambda ratio=0.5: ("grid", ratio), "grid", plugin="p1")
    reg.register("center", lambda size=0.5: ("center", size), "centre", plugin="p2")
    return reg


def test_unknown_name_suggests_closest_and_lists_known():
    reg = make_registry()
    with pytest.raises(UserError) as info:
        reg.get("rnadom")
    message = info.value.message
    assert "unknown masker 'rnadom'" in message
    assert "did you mean 'random'?" in message
    assert "center, random, random-grid" in message
    assert info.value.exit_code == 2


def test_no_suggestion_when_nothing_is_close():
    reg = make_registry()
    with pytest.raises(UserError) as info:
        reg.get("zzzzzz")
    assert "did you mean" not in info.value.message
    assert "known: center" in info.value.message


def test_long_listings_are_cut_short():
    names = [f"model{i:04d}" for i in range(300)]
    message = unknown_name_message("backbone", "x", names)
    assert "300 in all" in message and message.count(",") < 40


def test_closest_is_case_insensitive():
    assert closest("RESNET18", ["resnet18", "resnet34"]) == "resnet18"


def test_duplicate_name_names_both_plugins():
    reg = make_registry()
    with pytest.raises(UserError, match="registered twice: by plugin 'p1' and by plugin 'p3'"):
        reg.register("random", lambda: None, plugin="p3")


def test_create_passes_options_and_rejects_unknown_ones():
    reg = make_registry()
    assert reg.create("random", size=0.5, count=2) == ("random", 0.5, 2)
    with pytest.raises(UserError, match="has no option 'sise'; did you mean 'size'"):
        reg.create("random", sise=0.5)


def test_factory_value_errors_become_one_sentence():
    reg = Registry("masker")

    def factory(size=0.5):
        raise ValueError("size must be in (0, 1]")

    reg.register("strict", factory)
    with pytest.raises(UserError, match=r"masker 'strict': size must be in \(0, 1\]"):
        reg.create("strict", size=3)


def test_option_defaults_and_listing_order():
    reg = make_registry()
    assert reg.names() == ["center", "random", "random-grid"]
    assert reg.get("random").option_defaults() == {"size": 0.25, "count": 1}
    assert "random" in reg and len(reg) == 3
