"""Hand-designed small image classifiers: what an engineer would write instead of searching.

Every searched front is judged beside these, trained stand-alone on the same split with the
same step budget and recipe (`nas.training.standalone.fit_model`) and timed with the same
harness. Each takes ``(B, C, H, W)`` images at their native side (28 for MNIST, 32 for
CIFAR) and returns ``(B, num_classes)`` logits. Written plainly, as a user would: BatchNorm
and ReLU in the conv nets, pre-norm blocks in the ViT.

- `LeNet5` (LeCun et al. 1998): two 5x5 conv + max-pool stages, three linear layers
  (61.7 k parameters on MNIST).
- `ResNetTiny`: a CIFAR-style ResNet with one basic block per stage at 16 / 32 / 64
  channels (~78 k parameters).
- `ViTTiny`: a 4x4-patch ViT, width 64, 2 pre-norm blocks, 4 heads, MLP ratio 2 (~70 k).
- `MobileNetV2Tiny`: inverted residual blocks (expansion 4, depthwise 3x3) at 16 / 24 / 32 /
  48 channels, a 1x1 head conv to 128 (~60 k).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max pooling; a 28x28 input is padded to 32 by the first conv."""

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10,
                 resolution: int = 28) -> None:
        super().__init__()
        pad = (32 - resolution) // 2 if resolution < 32 else 0
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=pad)
        self.conv2 = nn.Conv2d(6, 16, 5)
        side = ((resolution + 2 * pad - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 6, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 16, 5, 5)
        x = x.flatten(1)  # (B, 400)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class ResNetTiny(nn.Module):
    """conv3x3 stem, one basic block per stage (stride 1, 2, 2), global pool, linear."""

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10,
                 widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(_BasicBlock(cin, w, 1 if i == 0 else 2))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(self.stem(x))  # (B, 64, H/4, W/4)
        return self.fc(h.mean(dim=(2, 3)))


class _ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.heads, D // self.heads).unbind(2)
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2))  # (B, heads, T, D / heads)
        x = x + self.proj(h.transpose(1, 2).reshape(B, T, D))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViTTiny(nn.Module):
    """Patch embedding + learned positions, pre-norm transformer blocks, mean pool, linear."""

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, resolution: int = 28,
                 patch: int = 4, dim: int = 64, depth: int = 2, heads: int = 4,
                 mlp_ratio: int = 2) -> None:
        super().__init__()
        if resolution % patch:
            raise ValueError(f"resolution {resolution} is not a multiple of patch {patch}")
        tokens = (resolution // patch) ** 2
        self.embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.Sequential(*(_ViTBlock(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.embed(x).flatten(2).transpose(1, 2) + self.pos  # (B, T, dim)
        return self.fc(self.norm(self.blocks(h)).mean(dim=1))


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2Tiny(nn.Module):
    """conv3x3 stem, inverted residual blocks (expansion 4), 1x1 head conv, pool, linear."""

    # (out channels, stride) per block
    BLOCKS: tuple[tuple[int, int], ...] = ((16, 1), (24, 2), (24, 1), (32, 2), (32, 1),
                                           (48, 1))

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, expand: int = 4,
                 head: int = 128) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU6())
        blocks, cin = [], 16
        for cout, stride in self.BLOCKS:
            blocks.append(_InvertedResidual(cin, cout, stride, expand))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(cin, head, 1, bias=False), nn.BatchNorm2d(head),
                                  nn.ReLU6())
        self.fc = nn.Linear(head, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(self.blocks(self.stem(x)))  # (B, head, H/4, W/4)
        return self.fc(h.mean(dim=(2, 3)))


IMAGE_BASELINES: dict[str, Callable[..., nn.Module]] = {
    "lenet5": lambda *, in_channels, num_classes, resolution: LeNet5(
        in_channels=in_channels, num_classes=num_classes, resolution=resolution),
    "resnet_tiny": lambda *, in_channels, num_classes, resolution: ResNetTiny(
        in_channels=in_channels, num_classes=num_classes),
    "vit_tiny": lambda *, in_channels, num_classes, resolution: ViTTiny(
        in_channels=in_channels, num_classes=num_classes, resolution=resolution),
    "mobilenetv2_tiny": lambda *, in_channels, num_classes, resolution: MobileNetV2Tiny(
        in_channels=in_channels, num_classes=num_classes),
}


def build_image_baseline(name: str, *, in_channels: int, num_classes: int, resolution: int,
                         seed: int = 0) -> nn.Module:
    """A freshly initialised baseline by name (``IMAGE_BASELINES``), drawn from ``seed``
    without touching the caller's global RNG."""
    if name not in IMAGE_BASELINES:
        raise ValueError(f"baseline: {name!r} is not one of {sorted(IMAGE_BASELINES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return IMAGE_BASELINES[name](in_channels=in_channels, num_classes=num_classes,
                                     resolution=resolution)


__all__ = ["IMAGE_BASELINES", "LeNet5", "MobileNetV2Tiny", "ResNetTiny", "ViTTiny",
           "build_image_baseline"]
