"""Search spaces: the DSL (`Choice`, `Stage`, `SearchSpace`, `Arch`) and the registry."""

from search_spaces import hybrid_lm_small as _hybrid_lm_small  # noqa: F401  (registers)
from search_spaces import hybrid_lm_tiny as _hybrid_lm_tiny  # noqa: F401  (registers)
from search_spaces import hybrid_vit_tiny as _hybrid_vit_tiny  # noqa: F401  (registers)
from search_spaces.arch import KNOBS, Arch, LayerArch, StageArch
from search_spaces.registry import get_space, list_spaces, register_space
from search_spaces.space import Choice, SearchSpace, SlotKey, Stage, glu_hidden

__all__ = [
    "KNOBS", "Arch", "Choice", "LayerArch", "SearchSpace", "SlotKey", "Stage", "StageArch",
    "get_space", "glu_hidden", "list_spaces", "register_space",
]
