"""Search spaces: the DSL (`Choice`, `Stage`, `SearchSpace`, `Arch`) and the registry.

Naming rule: a factory argument (`register_space`, `get_space`) lists the options offered,
so it is plural (``resolutions``, ``context_lengths``, ``stems``, ``widths``, ``depths``,
``mixers``, ``hidden_ratios``, ``kernel_sizes``); the `SearchSpace` / `Stage` field of the
same concept holds the searched `Choice`, so it is singular (``resolution``, which is the
context length of a sequence space, ``stem``, ``width``, ``depth``, ``hidden_ratio``,
``kernel_size``). `Stage.mixers` is the tuple of mixers a layer may hold, not a `Choice`; the
mixer chosen is `LayerArch.mixer`. A fixed size has one name in both places: the output size
is ``num_outputs`` (the classes of an image space, the vocabulary of a sequence space); its
older names ``num_classes`` and ``vocab_size`` are still read, through
`canonical_space_overrides` (one alias table, `SPACE_OVERRIDE_ALIASES`).
"""

from search_spaces import hybrid_lm_small as _hybrid_lm_small  # noqa: F401  (registers)
from search_spaces import hybrid_lm_tiny as _hybrid_lm_tiny  # noqa: F401  (registers)
from search_spaces import hybrid_vit_tiny as _hybrid_vit_tiny  # noqa: F401  (registers)
from search_spaces.arch import KNOBS, Arch, LayerArch, StageArch
from search_spaces.registry import (
    SPACE_OVERRIDE_ALIASES,
    canonical_space_overrides,
    get_space,
    list_spaces,
    register_space,
)
from search_spaces.space import Choice, SearchSpace, SlotKey, Stage, glu_hidden

__all__ = [
    "KNOBS", "SPACE_OVERRIDE_ALIASES", "Arch", "Choice", "LayerArch", "SearchSpace", "SlotKey",
    "Stage", "StageArch", "canonical_space_overrides", "get_space", "glu_hidden", "list_spaces",
    "register_space",
]
