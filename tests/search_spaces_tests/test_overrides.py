"""Space factory arguments: one name per concept (``num_outputs``), older names read through
one alias table (`canonical_space_overrides`), unknown names refused as before."""

from __future__ import annotations

import json

import pytest

from search_spaces import (
    SPACE_OVERRIDE_ALIASES,
    Choice,
    SearchSpace,
    Stage,
    canonical_space_overrides,
    get_space,
    list_spaces,
    registry,
)


def _same_space(a: SearchSpace, b: SearchSpace) -> bool:
    return json.dumps(a.describe(), sort_keys=True) == json.dumps(b.describe(), sort_keys=True)


def test_builtin_factories_take_num_outputs():
    import inspect

    for name in list_spaces():
        params = inspect.signature(registry._REGISTRY[name]).parameters
        assert "num_outputs" in params, name
        assert not set(SPACE_OVERRIDE_ALIASES) & set(params), name


def test_aliases_map_to_the_canonical_name_in_place():
    given = {"in_channels": 1, "num_classes": 7, "resolutions": (8,)}
    assert list(canonical_space_overrides(given).items()) == [
        ("in_channels", 1), ("num_outputs", 7), ("resolutions", (8,))]
    assert canonical_space_overrides({"vocab_size": 128}) == {"num_outputs": 128}
    assert canonical_space_overrides({"num_outputs": 5, "widths": ((8,),)}) == {
        "num_outputs": 5, "widths": ((8,),)}
    assert given == {"in_channels": 1, "num_classes": 7, "resolutions": (8,)}  # not mutated
    # unknown names pass through: get_space refuses them
    assert canonical_space_overrides({"bogus": 1}) == {"bogus": 1}


def test_alias_and_canonical_given_together():
    assert canonical_space_overrides({"num_classes": 7, "num_outputs": 7}) == {"num_outputs": 7}
    assert canonical_space_overrides({"num_classes": None, "num_outputs": 7}) == {
        "num_outputs": 7}
    for given in ({"num_classes": 7, "num_outputs": 8}, {"num_outputs": 8, "num_classes": 7},
                  {"num_classes": 7, "vocab_size": 8}):
        with pytest.raises(ValueError) as info:
            canonical_space_overrides(given)
        message = str(info.value)
        assert len(message.splitlines()) == 1
        for key in given:
            assert repr(key) in message, message
        assert "'num_outputs'" in message
    with pytest.raises(ValueError, match="'num_classes'=7 and 'num_outputs'=8"):
        get_space("hybrid_vit_tiny", num_classes=7, num_outputs=8)


@pytest.mark.parametrize("name, alias, value", [
    ("hybrid_vit_tiny", "num_classes", 7),
    ("hybrid_lm_tiny", "vocab_size", 128),
    ("hybrid_lm_small", "vocab_size", 128),
])
def test_each_spelling_builds_an_equal_space(name, alias, value):
    old = get_space(name, **{alias: value})
    new = get_space(name, num_outputs=value)
    assert _same_space(old, new)
    assert old.num_outputs == new.num_outputs == value
    if old.modality == "sequence":
        assert old.vocab_size == new.vocab_size == value
    assert not _same_space(new, get_space(name))  # the override took effect


def test_unknown_options_keep_their_error():
    with pytest.raises(ValueError, match=r"has no option\(s\) \['bogus'\]"):
        get_space("hybrid_vit_tiny", bogus=1)
    with pytest.raises(ValueError, match="unknown search space"):
        get_space("no_such_space", num_classes=3)


def _tiny(name: str, num_outputs: int, vocab_size: int = 256) -> SearchSpace:
    return SearchSpace(name=name, modality="image", resolution=8,
                       stages=[Stage(depth=Choice(1), width=Choice(16))], in_channels=1,
                       patch_size=4, num_outputs=num_outputs, vocab_size=vocab_size)


def test_a_factory_written_with_an_older_name_keeps_working(monkeypatch):
    """A user's factory from before the rename (the README's ``num_classes``) gets its
    argument under its own name, however the study spells it."""

    def legacy(*, num_classes: int = 10) -> SearchSpace:
        return _tiny("legacy", num_classes)

    monkeypatch.setitem(registry._REGISTRY, "legacy", legacy)
    for key in ("num_classes", "num_outputs"):
        assert get_space("legacy", **{key: 3}).num_outputs == 3
    assert canonical_space_overrides({"num_outputs": 3}, space="legacy") == {"num_classes": 3}
    with pytest.raises(ValueError, match="different values"):
        get_space("legacy", num_classes=3, num_outputs=4)


def test_a_factory_taking_an_alias_as_its_own_option_keeps_it(monkeypatch):
    """A factory with both ``vocab_size`` and ``num_outputs`` (say a sequence classifier)
    means two things by them: neither is renamed."""

    def both(*, num_outputs: int = 10, vocab_size: int = 256) -> SearchSpace:
        return _tiny("both", num_outputs, vocab_size)

    monkeypatch.setitem(registry._REGISTRY, "both", both)
    space = get_space("both", num_outputs=3, vocab_size=50)
    assert (space.num_outputs, space.vocab_size) == (3, 50)
    assert canonical_space_overrides({"vocab_size": 50}, space="both") == {"vocab_size": 50}
