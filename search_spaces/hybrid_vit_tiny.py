"""`hybrid_vit_tiny`: a small hybrid image classifier (patch stem, 3 stages, pooled head).

The defaults fit CIFAR-sized inputs (3 x 32 x 32); MNIST uses ``in_channels=1`` and
resolutions up to 28. The largest subnet has ~2.3 M parameters, so CPU training works.
"""

from __future__ import annotations

from collections.abc import Sequence

from search_spaces.registry import register_space
from search_spaces.space import Choice, SearchSpace, Stage


@register_space
def hybrid_vit_tiny(
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    resolutions: Sequence[int] = (16, 24, 32),
    patch_size: int = 4,
    widths: Sequence[Sequence[int]] = ((32, 48, 64), (64, 96, 128), (128, 160, 192)),
    depths: Sequence[Sequence[int]] = ((1, 2), (1, 2, 3), (1, 2, 3)),
    hidden_ratios: Sequence[float] = (2, 3, 4),
    kernel_sizes: Sequence[int] = (3, 5, 7),
    head_dim: int = 16,
) -> SearchSpace:
    if len(widths) != len(depths):
        raise ValueError(f"widths ({len(widths)} stages) and depths ({len(depths)}) differ")
    stages = [Stage(depth=Choice(*d), width=Choice(*w), hidden_ratio=Choice(*hidden_ratios),
                    kernel_size=Choice(*kernel_sizes)) for w, d in zip(widths, depths)]
    return SearchSpace(name="hybrid_vit_tiny", modality="image", resolution=Choice(*resolutions),
                       stages=stages, in_channels=in_channels, patch_size=patch_size,
                       num_outputs=num_classes, head_dim=head_dim, ssm_head_dim=head_dim)
