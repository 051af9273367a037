"""The slot table of a space (`SearchSpace.layer_slots`, `slot_spec`, `arch_slots`): every
layer of every arch is one slot of the table, with the very spec `layers` builds."""

from __future__ import annotations

import numpy as np
import pytest

from search_spaces import get_space, list_spaces


@pytest.mark.parametrize("name", list_spaces())
def test_arch_slots_give_the_layers_and_lie_in_the_table(name):
    space = get_space(name)
    table = dict(space.layer_slots())
    assert len(table) == len(list(space.layer_slots()))  # one entry per key
    rng = np.random.default_rng(0)
    for arch in [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(40)]:
        keys = space.arch_slots(arch)
        assert [space.slot_spec(k) for k in keys] == space.layers(arch)
        assert all(table[k] == space.slot_spec(k) for k in keys)


def test_unknown_slot_kind_is_refused():
    space = get_space("hybrid_vit_tiny")
    with pytest.raises(ValueError, match="unknown kind"):
        space.slot_spec(("body", space.inputs()[0], 16))
