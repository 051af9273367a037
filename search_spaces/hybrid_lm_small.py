"""`hybrid_lm_small`: a hybrid causal character LM of reference size (nanoGPT's scale).

One stage of up to 8 pre-norm residual layers at width up to 384 (head size 64, as nanoGPT's
shakespeare-char 6 x 384), context up to 256 bytes; each layer is attention, a GLU-MLP
(hidden ratio 2 / 3 / 4), an SSM or a causal depthwise conv (kernel 3 / 7 / 15). Its
`largest` subnet alternates attention and GLU-MLP (ratio 4): a 4-block, 384-wide
transformer with ~9.6 M parameters. Byte-level vocabulary (256) by default: ``num_outputs``,
the vocabulary size of input and output (read from ``vocab_size`` too, its older name).

``resolution`` is the context length. A subnet with a shorter context predicts with less
history and is scored on the first ``resolution`` positions of each window only, so
studies that compare against full-context baselines (`studies/shakespeare_lm.py`) fix
``context_lengths=(256,)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from kernels import MIXERS
from search_spaces.registry import register_space
from search_spaces.space import Choice, SearchSpace, Stage


@register_space
def hybrid_lm_small(
    *,
    num_outputs: int = 256,
    context_lengths: Sequence[int] = (64, 128, 256),
    widths: Sequence[int] = (192, 256, 320, 384),
    depths: Sequence[int] = (2, 3, 4, 5, 6, 7, 8),
    hidden_ratios: Sequence[float] = (2, 3, 4),
    kernel_sizes: Sequence[int] = (3, 7, 15),
    head_dim: int = 64,
    ssm_state_size: int = 16,
    mixers: Sequence[str] = MIXERS,
) -> SearchSpace:
    """The space above; every argument is one elastic dimension's choices (or a fixed
    size), so ``get_space("hybrid_lm_small", context_lengths=(256,))`` narrows it;
    ``mixers`` narrows the token mixers a layer may hold (default: all four)."""
    stage = Stage(depth=Choice(*depths), width=Choice(*widths), mixers=tuple(mixers),
                  hidden_ratio=Choice(*hidden_ratios), kernel_size=Choice(*kernel_sizes))
    return SearchSpace(name="hybrid_lm_small", modality="sequence",
                       resolution=Choice(*context_lengths), stages=[stage],
                       vocab_size=num_outputs, head_dim=head_dim, ssm_head_dim=head_dim,
                       ssm_state_size=ssm_state_size)
