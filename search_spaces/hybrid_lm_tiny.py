"""`hybrid_lm_tiny`: a small hybrid causal character LM (byte embedding, 2 stages, LM head).

``resolution`` is the context length. Byte-level vocabulary (256) by default, so any text
works without a tokenizer. The largest subnet has ~3.6 M parameters.
``num_outputs`` is the vocabulary size, input and output (read from ``vocab_size`` too, its
older name).
"""

from __future__ import annotations

from collections.abc import Sequence

from kernels import MIXERS
from search_spaces.registry import register_space
from search_spaces.space import Choice, SearchSpace, Stage


@register_space
def hybrid_lm_tiny(
    *,
    num_outputs: int = 256,
    context_lengths: Sequence[int] = (64, 128, 256),
    widths: Sequence[Sequence[int]] = ((96, 128, 160), (128, 192, 256)),
    depths: Sequence[Sequence[int]] = ((1, 2, 3), (1, 2, 3)),
    hidden_ratios: Sequence[float] = (2, 3, 4),
    kernel_sizes: Sequence[int] = (3, 7, 15),
    head_dim: int = 32,
    mixers: Sequence[str] = MIXERS,
) -> SearchSpace:
    if len(widths) != len(depths):
        raise ValueError(f"widths ({len(widths)} stages) and depths ({len(depths)}) differ")
    stages = [Stage(depth=Choice(*d), width=Choice(*w), mixers=tuple(mixers),
                    hidden_ratio=Choice(*hidden_ratios),
                    kernel_size=Choice(*kernel_sizes)) for w, d in zip(widths, depths)]
    return SearchSpace(name="hybrid_lm_tiny", modality="sequence",
                       resolution=Choice(*context_lengths), stages=stages,
                       vocab_size=num_outputs, head_dim=head_dim, ssm_head_dim=head_dim)
