"""`hybrid_vit_tiny`: a small hybrid image classifier (stem choice, 3 stages, pooled head).

The stem is searched: non-overlapping patches (ViT) or an overlapping 3x3 convolution with
stride 1 or 2 (ResNet / ConvNeXt-style), so the space holds small conv nets that keep a
digit's strokes at full resolution as well as patch transformers. The defaults fit
CIFAR-sized inputs (3 x 32 x 32, up to the native 32); MNIST uses ``in_channels=1`` and
resolutions up to the native 28. ``stems=None`` gives the patch-only space of earlier
versions (same arch keys and fingerprints); so does ``stems=()`` through `get_space`.
``mixers`` narrows the token mixers every layer may hold (default: all four).
``num_outputs`` is the number of classes (read from ``num_classes`` too, its older name).
"""

from __future__ import annotations

from collections.abc import Sequence

from kernels import MIXERS
from search_spaces.registry import register_space
from search_spaces.space import Choice, SearchSpace, Stage


@register_space
def hybrid_vit_tiny(
    *,
    in_channels: int = 3,
    num_outputs: int = 10,
    resolutions: Sequence[int] = (16, 24, 32),
    patch_size: int = 4,
    widths: Sequence[Sequence[int]] = ((32, 48, 64), (64, 96, 128), (128, 160, 192)),
    depths: Sequence[Sequence[int]] = ((1, 2), (1, 2, 3), (1, 2, 3)),
    hidden_ratios: Sequence[float] = (2, 3, 4),
    kernel_sizes: Sequence[int] = (3, 5, 7),
    head_dim: int = 16,
    stems: Sequence[str] | None = ("patch", "conv_s1", "conv_s2"),
    mixers: Sequence[str] = MIXERS,
) -> SearchSpace:
    if len(widths) != len(depths):
        raise ValueError(f"widths ({len(widths)} stages) and depths ({len(depths)}) differ")
    stages = [Stage(depth=Choice(*d), width=Choice(*w), mixers=tuple(mixers),
                    hidden_ratio=Choice(*hidden_ratios),
                    kernel_size=Choice(*kernel_sizes)) for w, d in zip(widths, depths)]
    return SearchSpace(name="hybrid_vit_tiny", modality="image", resolution=Choice(*resolutions),
                       stages=stages, in_channels=in_channels, patch_size=patch_size,
                       num_outputs=num_outputs, head_dim=head_dim, ssm_head_dim=head_dim,
                       stem=tuple(stems) if stems else None)
