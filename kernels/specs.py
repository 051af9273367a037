"""Layer specs: the static description of one layer that `kernels` can build and time alone.

A search space turns an `Arch` into a list of specs (`space.layers(arch)`); the latency
table, the FLOPs / parameter counts and the exported model are all derived from that list,
so a spec holds every number that changes a layer's cost and nothing else.

Token layout everywhere is ``(B, T, D)``: for images ``T = H * W`` in row-major order of the
grid ``(H, W)``; for sequences ``grid`` is ``None`` and mixers are causal.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import ClassVar, Union

MIXERS: tuple[str, ...] = ("attention", "glu_mlp", "ssm", "conv")
MODALITIES: tuple[str, ...] = ("image", "sequence")
STEM_KINDS: tuple[str, ...] = ("patch", "conv")


def parse_stem(name: str) -> tuple[str, int]:
    """An image stem choice as ``(kind, stride)``: ``"patch"`` (non-overlapping patches of the
    space's patch size; stride 0 here, the space supplies it) or ``"conv_s<k>"`` (an
    overlapping 3x3 convolution with stride ``k``, padding 1, then GELU)."""
    if name == "patch":
        return "patch", 0
    if isinstance(name, str) and name.startswith("conv_s") and name[6:].isdigit():
        stride = int(name[6:])
        if stride >= 1:
            return "conv", stride
    raise ValueError(f"stem: {name!r} is not 'patch' or 'conv_s<stride>' (e.g. 'conv_s1', "
                     f"'conv_s2')")


def conv_out_side(side: int, stride: int) -> int:
    """Output side of a 3x3 convolution with padding 1: ``ceil(side / stride)``."""
    return (side - 1) // stride + 1

Grid = Union[tuple[int, int], None]


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_grid(tokens: int, grid: Grid) -> None:
    _check_positive("tokens", tokens)
    if grid is not None:
        if len(grid) != 2 or grid[0] * grid[1] != tokens:
            raise ValueError(f"grid {grid!r} does not hold tokens={tokens}")


@dataclass(frozen=True)
class MixerSpec:
    """One pre-norm residual sub-layer ``x + mixer(norm(x))``; shape ``(B, T, dim)`` in and out.

    Knobs that do not apply to ``mixer`` stay 0: ``hidden`` (glu_mlp hidden size),
    ``kernel_size`` (conv), ``head_dim`` (attention and ssm), ``state_size`` (ssm).
    """

    kind: ClassVar[str] = "mixer"
    mixer: str
    dim: int
    tokens: int
    grid: Grid = None
    hidden: int = 0
    kernel_size: int = 0
    head_dim: int = 0
    state_size: int = 0

    def __post_init__(self) -> None:
        if self.mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {MIXERS}, got {self.mixer!r}")
        _check_positive("dim", self.dim)
        _check_grid(self.tokens, self.grid)
        if self.mixer == "glu_mlp":
            _check_positive("hidden", self.hidden)
        if self.mixer == "conv":
            _check_positive("kernel_size", self.kernel_size)
            if self.kernel_size % 2 == 0:
                raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.mixer in ("attention", "ssm"):
            _check_positive("head_dim", self.head_dim)
            if self.dim % self.head_dim:
                raise ValueError(f"dim={self.dim} is not a multiple of head_dim={self.head_dim}")
        if self.mixer == "ssm":
            _check_positive("state_size", self.state_size)

    @property
    def causal(self) -> bool:
        return self.grid is None


@dataclass(frozen=True)
class StemSpec:
    """Input -> tokens ``(B, tokens, dim)``.

    image, ``stem="patch"``: ``(B, in_channels, H, W)`` resized to ``resolution`` then
    non-overlapping ``patch_size`` patches, plus a learned positional term at this grid.
    image, ``stem="conv"``: resized to ``resolution``, then an overlapping 3x3 convolution
    with ``stride`` (padding 1) and GELU; no positional table (the convolution and the
    zero padding locate the tokens, as in MobileViT / CvT).
    sequence: token ids ``(B, T)`` with ``T <= tokens`` -> embedding plus learned positions.
    """

    kind: ClassVar[str] = "stem"
    modality: str
    dim: int
    tokens: int
    grid: Grid = None
    in_channels: int = 0
    patch_size: int = 0
    resolution: int = 0
    vocab_size: int = 0
    stem: str = "patch"
    stride: int = 0

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        _check_positive("dim", self.dim)
        _check_grid(self.tokens, self.grid)
        if self.modality == "image":
            _check_positive("in_channels", self.in_channels)
            _check_positive("resolution", self.resolution)
            if self.grid is None:
                raise ValueError("an image stem needs a grid")
            if self.stem == "patch":
                _check_positive("patch_size", self.patch_size)
            elif self.stem == "conv":
                _check_positive("stride", self.stride)
                side = conv_out_side(self.resolution, self.stride)
                if self.grid != (side, side):
                    raise ValueError(f"grid {self.grid!r}: a stride-{self.stride} conv stem at "
                                     f"resolution {self.resolution} gives ({side}, {side})")
            else:
                raise ValueError(f"stem must be one of {STEM_KINDS}, got {self.stem!r}")
        else:
            _check_positive("vocab_size", self.vocab_size)
            if self.grid is not None:
                raise ValueError("a sequence stem has no grid")


@dataclass(frozen=True)
class DownsampleSpec:
    """Transition between stages: ``(B, tokens, in_dim) -> (B, tokens', out_dim)``.

    image: LayerNorm, then a 3x3 stride-2 convolution (padding 1) over the grid, so each
    side becomes ``ceil(side / 2)``; sequence: LayerNorm, then a linear projection
    (tokens unchanged, causality kept).
    """

    kind: ClassVar[str] = "downsample"
    in_dim: int
    out_dim: int
    tokens: int
    grid: Grid = None

    def __post_init__(self) -> None:
        _check_positive("in_dim", self.in_dim)
        _check_positive("out_dim", self.out_dim)
        _check_grid(self.tokens, self.grid)

    @property
    def out_grid(self) -> Grid:
        if self.grid is None:
            return None
        return ((self.grid[0] + 1) // 2, (self.grid[1] + 1) // 2)

    @property
    def out_tokens(self) -> int:
        g = self.out_grid
        return self.tokens if g is None else g[0] * g[1]


@dataclass(frozen=True)
class HeadSpec:
    """Tokens -> outputs. image: LayerNorm, mean over tokens, linear -> ``(B, num_outputs)``;
    sequence: LayerNorm, linear per token -> ``(B, T, num_outputs)`` (next-token logits)."""

    kind: ClassVar[str] = "head"
    modality: str
    dim: int
    tokens: int
    num_outputs: int
    grid: Grid = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        _check_positive("dim", self.dim)
        _check_positive("num_outputs", self.num_outputs)
        _check_grid(self.tokens, self.grid)


LayerSpec = Union[StemSpec, MixerSpec, DownsampleSpec, HeadSpec]
SPEC_TYPES: dict[str, type] = {
    "stem": StemSpec,
    "mixer": MixerSpec,
    "downsample": DownsampleSpec,
    "head": HeadSpec,
}


def spec_to_dict(spec: LayerSpec) -> dict:
    """JSON-ready dict with a ``kind`` field; ``spec_from_dict`` inverts it.

    A patch stem omits ``stem`` / ``stride`` (their defaults), so its signature, the key of
    latency tables measured before conv stems existed, is unchanged."""
    d = asdict(spec)
    if d.get("grid") is not None:
        d["grid"] = list(d["grid"])
    if isinstance(spec, StemSpec) and spec.stem == "patch":
        d.pop("stem")
        d.pop("stride")
    return {"kind": spec.kind, **d}


def spec_from_dict(data: dict) -> LayerSpec:
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in SPEC_TYPES:
        raise ValueError(f"unknown layer spec kind {kind!r}; expected one of {sorted(SPEC_TYPES)}")
    if data.get("grid") is not None:
        data["grid"] = tuple(data["grid"])
    return SPEC_TYPES[kind](**data)


def signature(spec: LayerSpec) -> str:
    """Stable canonical string of a spec: the latency-table key of one layer."""
    return json.dumps(spec_to_dict(spec), sort_keys=True, separators=(",", ":"))
