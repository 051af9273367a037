"""The search-space DSL: `Choice`, `Stage` and `SearchSpace`.

A space declares what may vary (input resolution; per stage depth and width; per layer the
mixer and its knob) and turns any `Arch` of it into layer specs that `kernels` can build,
count and time (`layers()`), which is where FLOPs, parameters and latency come from.

Example::

    space = SearchSpace(
        name="my_space", modality="image", resolution=Choice(16, 24, 32),
        stages=[Stage(depth=Choice(1, 2), width=Choice(32, 64)),
                Stage(depth=Choice(1, 2, 3), width=Choice(64, 128), mixers=("conv", "ssm"))],
        in_channels=3, num_outputs=10,
    )
    arch = space.sample(np.random.default_rng(0))
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from kernels import (
    MIXERS,
    DownsampleSpec,
    HeadSpec,
    LayerSpec,
    MixerSpec,
    StemSpec,
    conv_out_side,
    layer_flops,
    layer_params,
    parse_stem,
)
from search_spaces.arch import KNOBS, Arch, LayerArch, StageArch

#: a layer slot: ``("stem", inp, w0)``, ``("downsample", inp, i, w_prev, w)``, ``("mixer",
#: inp, i, w, layer_arch)`` or ``("head", inp, w_last)`` (`SearchSpace.slot_spec`)
SlotKey = tuple


class Choice:
    """An elastic dimension: a non-empty tuple of distinct values, smallest to largest."""

    __slots__ = ("values",)
    values: tuple[Any, ...]  # set once in __init__ through object.__setattr__

    def __init__(self, *values: Any) -> None:
        if len(values) == 1 and isinstance(values[0], (list, tuple)):
            values = tuple(values[0])
        if not values:
            raise ValueError("Choice needs at least one value")
        if len(set(values)) != len(values):
            raise ValueError(f"Choice values must be distinct, got {values!r}")
        object.__setattr__(self, "values", tuple(sorted(values)))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Choice is immutable")

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # rebuilt from its values: the default pickling of a slotted object would write the
        # slot, which __setattr__ forbids (spaces travel to Ray workers and subprocesses)
        return (Choice, self.values)

    def __contains__(self, value: Any) -> bool:
        return value in self.values

    def __iter__(self):
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and self.values == other.values

    def __hash__(self) -> int:
        return hash(self.values)

    def __repr__(self) -> str:
        return f"Choice{self.values!r}"

    @property
    def min(self) -> Any:
        return self.values[0]

    @property
    def max(self) -> Any:
        return self.values[-1]

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]


def _as_choice(value: Any, name: str) -> Choice:
    if isinstance(value, Choice):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Choice(value)
    if isinstance(value, (list, tuple)):
        return Choice(*value)
    raise ValueError(f"{name}: expected a Choice, a number or a list, got {value!r}")


@dataclass(frozen=True)
class Stage:
    """One stage: elastic ``depth`` and residual ``width``, the allowed mixers per layer and
    the mixers' own knobs (``hidden_ratio`` for glu_mlp, ``kernel_size`` for conv)."""

    depth: Choice
    width: Choice
    mixers: tuple[str, ...] = MIXERS
    hidden_ratio: Choice = field(default_factory=lambda: Choice(2, 3, 4))
    kernel_size: Choice = field(default_factory=lambda: Choice(3, 5, 7))

    def __post_init__(self) -> None:
        for name in ("depth", "width", "hidden_ratio", "kernel_size"):
            object.__setattr__(self, name, _as_choice(getattr(self, name), f"Stage.{name}"))
        object.__setattr__(self, "mixers", tuple(self.mixers))
        bad = [m for m in self.mixers if m not in MIXERS]
        if bad or not self.mixers:
            raise ValueError(f"Stage.mixers: {bad or 'empty'} not in {MIXERS}")
        if self.depth.min < 1:
            raise ValueError(f"Stage.depth: values must be >= 1, got {self.depth}")
        if any(k % 2 == 0 or k < 1 for k in self.kernel_size):
            raise ValueError(f"Stage.kernel_size: values must be odd and >= 1, got "
                             f"{self.kernel_size}")
        if any(r <= 0 for r in self.hidden_ratio):
            raise ValueError(f"Stage.hidden_ratio: values must be > 0, got {self.hidden_ratio}")

    def layer_options(self) -> list[LayerArch]:
        """Every distinct layer a slot of this stage can hold."""
        options = []
        for mixer in self.mixers:
            if mixer == "glu_mlp":
                options += [LayerArch(mixer, hidden_ratio=r) for r in self.hidden_ratio]
            elif mixer == "conv":
                options += [LayerArch(mixer, kernel_size=k) for k in self.kernel_size]
            else:
                options.append(LayerArch(mixer))
        return options

    def sample_layer(self, rng: np.random.Generator) -> LayerArch:
        """Mixer uniform first, then its knob, so no mixer family is favoured."""
        mixer = self.mixers[int(rng.integers(len(self.mixers)))]
        if mixer == "glu_mlp":
            return LayerArch(mixer, hidden_ratio=self.hidden_ratio.sample(rng))
        if mixer == "conv":
            return LayerArch(mixer, kernel_size=self.kernel_size.sample(rng))
        return LayerArch(mixer)


def glu_hidden(width: int, ratio: int | float) -> int:
    """GLU hidden size of a layer at ``width`` with ``ratio`` (rounded to an int)."""
    return int(round(width * ratio))


class SearchSpace:
    """A declared space of hybrid networks; see the module docstring for an example.

    ``resolution`` is the image side (image spaces) or the context length (sequence spaces).
    ``stem`` (image spaces) is an optional choice of input stems: ``"patch"`` (non-overlapping
    ``patch_size`` patches) and ``"conv_s<k>"`` (overlapping 3x3 convolution, stride ``k``);
    without it every arch uses the patch stem and carries no ``stem`` field.
    ``num_outputs`` is the number of classes (images); sequence spaces predict
    ``vocab_size`` next-token logits.
    """

    def __init__(
        self,
        *,
        name: str,
        modality: str,
        resolution: Choice | Any,
        stages: list[Stage],
        in_channels: int = 3,
        patch_size: int = 4,
        num_outputs: int = 10,
        vocab_size: int = 256,
        head_dim: int = 16,
        ssm_head_dim: int = 16,
        ssm_state_size: int = 16,
        stem: Choice | Any | None = None,
    ) -> None:
        if modality not in ("image", "sequence"):
            raise ValueError(f"modality: expected 'image' or 'sequence', got {modality!r}")
        if not stages:
            raise ValueError("stages: a space needs at least one Stage")
        self.name = name
        self.modality = modality
        self.resolution = _as_choice(resolution, "resolution")
        if stem is not None:
            if modality != "image":
                raise ValueError("stem: only image spaces have a stem choice")
            stem = stem if isinstance(stem, Choice) else Choice(
                *(stem if isinstance(stem, (list, tuple)) else (stem,)))
            for value in stem:
                parse_stem(value)  # names a bad value
        self.stem: Choice | None = stem
        self.stages = tuple(stages)
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.num_outputs = num_outputs if modality == "image" else vocab_size
        self.vocab_size = vocab_size
        self.head_dim = head_dim
        self.ssm_head_dim = ssm_head_dim
        self.ssm_state_size = ssm_state_size
        self._check()

    def _check(self) -> None:
        for name in ("in_channels", "patch_size", "num_outputs", "vocab_size", "head_dim",
                     "ssm_head_dim", "ssm_state_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: must be an int >= 1, got {value!r}")
        if any(not isinstance(r, int) or isinstance(r, bool) or r < 1 for r in self.resolution):
            raise ValueError(f"resolution: values must be ints >= 1, got {self.resolution}")
        if self.modality == "image" and (self.stem is None or "patch" in self.stem):
            bad = [r for r in self.resolution if r % self.patch_size or r < self.patch_size]
            if bad:
                raise ValueError(f"resolution: {bad} not multiples of patch_size "
                                 f"{self.patch_size}")
        for i, stage in enumerate(self.stages):
            if any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in stage.width):
                raise ValueError(f"stages[{i}].width: values must be ints >= 1, got "
                                 f"{stage.width}")
        for i, stage in enumerate(self.stages):
            for mixer, hd in (("attention", self.head_dim), ("ssm", self.ssm_head_dim)):
                if mixer in stage.mixers and any(w % hd for w in stage.width):
                    raise ValueError(f"stages[{i}].width: {stage.width} must be multiples of "
                                     f"the {mixer} head size {hd}")

    def __repr__(self) -> str:
        return (f"SearchSpace(name={self.name!r}, modality={self.modality!r}, "
                f"size={self.size():.3g})")

    # ---- archs -------------------------------------------------------------------------

    def stems(self) -> tuple[str | None, ...]:
        """The stem values an arch may carry (``(None,)`` without a stem choice)."""
        return (None,) if self.stem is None else tuple(self.stem)

    def inputs(self) -> list[tuple[int, str | None]]:
        """Every ``(resolution, stem)`` pair (`Arch.input_key`), resolution-major."""
        return [(r, stem) for r in self.resolution for stem in self.stems()]

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random value of every dimension (resolution, stem, then per stage
        depth, width and each layer)."""
        resolution = self.resolution.sample(rng)
        stem = None if self.stem is None else self.stem.sample(rng)
        stages = []
        for stage in self.stages:
            depth = stage.depth.sample(rng)
            width = stage.width.sample(rng)
            layers = tuple(stage.sample_layer(rng) for _ in range(depth))
            stages.append(StageArch(depth=depth, width=width, layers=layers))
        return Arch(resolution=resolution, stages=tuple(stages), stem=stem)

    def _extreme(self, largest: bool, mixer: str | None = None) -> Arch:
        """Every dimension at its max (min) and, per layer, the costliest (cheapest) layer
        (of ``mixer``'s layers only, where ``mixer`` is given and the stage has it); of the
        stems, the one that makes that arch costliest (cheapest)."""
        pick = max if largest else min
        resolution = pick(self.resolution)
        candidates = []
        for stem in self.stems():
            stages = []
            for i, stage in enumerate(self.stages):
                width = pick(stage.width)
                depth = pick(stage.depth)
                tokens, grid = self._tokens_at(resolution, i, stem)
                options = [o for o in stage.layer_options() if o.mixer == mixer]
                best = pick(options or stage.layer_options(),
                            key=lambda o: layer_flops(self._mixer_spec(o, width, tokens, grid)))
                stages.append(StageArch(depth=depth, width=width, layers=(best,) * depth))
            candidates.append(Arch(resolution=resolution, stages=tuple(stages), stem=stem))
        return pick(candidates, key=self.flops)

    def _teacher_stem(self, resolution: int) -> str | None:
        """The stem of `largest()`: the most tokens (finest grid), then the most FLOPs."""
        if self.stem is None:
            return None
        width = self.stages[0].width.max
        return max(self.stem, key=lambda stem: (
            self._tokens_at(resolution, 0, stem)[0],
            layer_flops(self._stem_spec(resolution, stem, width))))

    def largest(self) -> Arch:
        """The biggest subnet, the sandwich teacher: resolution, depth, width and every knob
        at their max, and in each stage the costliest token mixer (attention, ssm or conv)
        alternating with glu_mlp, as a transformer stacks attention and MLP layers.

        Why not the FLOPs-maximal arch: with these spaces that is all glu_mlp, which mixes no
        tokens at all and would be a poor teacher. `flops_range()` still uses it.
        """
        resolution = self.resolution.max
        stem = self._teacher_stem(resolution)
        stages = []
        for i, stage in enumerate(self.stages):
            width = stage.width.max
            tokens, grid = self._tokens_at(resolution, i, stem)
            options = stage.layer_options()
            mixing = [o for o in options if o.mixer != "glu_mlp"]
            channel = [o for o in options if o.mixer == "glu_mlp"]

            def flops_of(o: LayerArch, w: int = width, t: int = tokens,
                         g: tuple[int, int] | None = grid) -> int:
                return layer_flops(self._mixer_spec(o, w, t, g))

            pattern = [max(group, key=flops_of) for group in (mixing, channel) if group]
            layers = tuple(pattern[j % len(pattern)] for j in range(stage.depth.max))
            stages.append(StageArch(depth=stage.depth.max, width=width, layers=layers))
        return Arch(resolution=resolution, stages=tuple(stages), stem=stem)

    def smallest(self) -> Arch:
        """The arch with the fewest FLOPs: every dimension at its min, the cheapest layer."""
        return self._extreme(largest=False)

    def smallest_per_mixer(self) -> tuple[Arch, ...]:
        """For each token mixer of the space, the cheapest arch built from it alone: every
        dimension at its min, each layer that mixer's cheapest knob (the stage's cheapest
        layer where a stage lacks the mixer); duplicates dropped, `MIXERS` order.

        Why: `smallest()` is one family's corner (the fewest FLOPs, e.g. all depthwise conv),
        while a latency table may put another family's corner (all glu_mlp) first; a sandwich
        that trains only one corner leaves the others' inherited weights untrained."""
        found: list[Arch] = []
        for mixer in MIXERS:
            if any(mixer in stage.mixers for stage in self.stages):
                arch = self._extreme(largest=False, mixer=mixer)
                if arch not in found:
                    found.append(arch)
        return tuple(found)

    def max_flops_arch(self) -> Arch:
        """The arch with the most FLOPs (every dimension at its max, the costliest layer)."""
        return self._extreme(largest=True)

    def mutate(self, arch: Arch, rng: np.random.Generator, *, prob: float = 0.2) -> Arch:
        """Re-sample each dimension with probability ``prob``; never returns ``arch`` itself."""
        self.validate(arch)
        for _ in range(100):
            resolution = self.resolution.sample(rng) if rng.random() < prob else arch.resolution
            stem = arch.stem
            if self.stem is not None and rng.random() < prob:
                stem = self.stem.sample(rng)
            stages = []
            for stage, s in zip(self.stages, arch.stages):
                width = stage.width.sample(rng) if rng.random() < prob else s.width
                depth = stage.depth.sample(rng) if rng.random() < prob else s.depth
                layers = [stage.sample_layer(rng) if rng.random() < prob else layer
                          for layer in s.layers[:depth]]
                layers += [stage.sample_layer(rng) for _ in range(depth - len(layers))]
                stages.append(StageArch(depth=depth, width=width, layers=tuple(layers)))
            child = Arch(resolution=resolution, stages=tuple(stages), stem=stem)
            if child != arch:
                return child
        return self.sample(rng)

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Uniform crossover: resolution, stem and each whole stage from either parent."""
        self.validate(a)
        self.validate(b)
        resolution = a.resolution if rng.random() < 0.5 else b.resolution
        stem = a.stem
        if self.stem is not None and rng.random() < 0.5:
            stem = b.stem
        stages = tuple(sa if rng.random() < 0.5 else sb for sa, sb in zip(a.stages, b.stages))
        return Arch(resolution=resolution, stages=stages, stem=stem)

    def validate(self, arch: Arch) -> Arch:
        """Raise ValueError naming the first field of ``arch`` outside this space."""
        if not isinstance(arch, Arch):
            raise ValueError(f"arch: expected an Arch, got {type(arch).__name__}")
        if arch.resolution not in self.resolution:
            raise ValueError(f"resolution: {arch.resolution} not in {self.resolution}")
        if self.stem is None and arch.stem is not None:
            raise ValueError(f"stem: {arch.stem!r} given, but space {self.name!r} has no stem "
                             f"choice")
        if self.stem is not None and arch.stem not in self.stem:
            raise ValueError(f"stem: {arch.stem!r} not in {self.stem}")
        if len(arch.stages) != len(self.stages):
            raise ValueError(f"stages: arch has {len(arch.stages)} stages, space "
                             f"{self.name!r} has {len(self.stages)}")
        for i, (stage, s) in enumerate(zip(self.stages, arch.stages)):
            where = f"stages[{i}]"
            if s.depth not in stage.depth:
                raise ValueError(f"{where}.depth: {s.depth} not in {stage.depth}")
            if s.width not in stage.width:
                raise ValueError(f"{where}.width: {s.width} not in {stage.width}")
            if len(s.layers) != s.depth:
                raise ValueError(f"{where}.layers: has {len(s.layers)} layers but depth is "
                                 f"{s.depth}")
            for j, layer in enumerate(s.layers):
                lw = f"{where}.layers[{j}]"
                if layer.mixer not in stage.mixers:
                    raise ValueError(f"{lw}.mixer: {layer.mixer!r} not in {stage.mixers}")
                if layer.mixer == "glu_mlp" and layer.hidden_ratio not in stage.hidden_ratio:
                    raise ValueError(f"{lw}.hidden_ratio: {layer.hidden_ratio} not in "
                                     f"{stage.hidden_ratio}")
                if layer.mixer == "conv" and layer.kernel_size not in stage.kernel_size:
                    raise ValueError(f"{lw}.kernel_size: {layer.kernel_size} not in "
                                     f"{stage.kernel_size}")
        return arch

    def size(self) -> int:
        """Number of distinct archs."""
        total = len(self.resolution) * len(self.stems())
        for stage in self.stages:
            options = len(stage.layer_options())
            total *= len(stage.width) * sum(options**d for d in stage.depth)
        return total

    # ---- layers, counts and inputs ----------------------------------------------------

    def _tokens_at(self, resolution: int, stage_index: int, stem: str | None = None,
                   ) -> tuple[int, tuple[int, int] | None]:
        """Tokens and grid inside stage ``stage_index`` at this resolution and stem."""
        if self.modality == "sequence":
            return resolution, None
        kind, stride = parse_stem(stem or "patch")
        side = (resolution // self.patch_size if kind == "patch"
                else conv_out_side(resolution, stride))
        for _ in range(stage_index):
            side = (side + 1) // 2
        return side * side, (side, side)

    def _mixer_spec(self, layer: LayerArch, width: int, tokens: int,
                    grid: tuple[int, int] | None) -> MixerSpec:
        if layer.mixer == "attention":
            return MixerSpec("attention", width, tokens, grid, head_dim=self.head_dim)
        if layer.mixer == "glu_mlp":
            assert layer.hidden_ratio is not None  # LayerArch checks each mixer's knob
            return MixerSpec("glu_mlp", width, tokens, grid,
                             hidden=glu_hidden(width, layer.hidden_ratio))
        if layer.mixer == "ssm":
            return MixerSpec("ssm", width, tokens, grid, head_dim=self.ssm_head_dim,
                             state_size=self.ssm_state_size)
        assert layer.kernel_size is not None  # LayerArch checks each mixer's knob
        return MixerSpec("conv", width, tokens, grid, kernel_size=layer.kernel_size)

    def _stem_spec(self, resolution: int, stem: str | None, width: int) -> StemSpec:
        """The stem layer of an arch with this resolution, stem choice and first width."""
        tokens, grid = self._tokens_at(resolution, 0, stem)
        if self.modality == "sequence":
            return StemSpec("sequence", width, tokens, vocab_size=self.vocab_size)
        kind, stride = parse_stem(stem or "patch")
        return StemSpec("image", width, tokens, grid, in_channels=self.in_channels,
                        patch_size=self.patch_size, resolution=resolution, stem=kind,
                        stride=stride)

    # ---- the slot table: every layer any arch can contain, by slot key ------------------

    def slot_spec(self, key: SlotKey) -> LayerSpec:
        """The layer spec of one slot (the entry of the slot table; see `layer_slots`).

        A slot is a layer fixed by a small key, ``inp`` being an arch's ``input_key``
        ``(resolution, stem)``: ``("stem", inp, w0)``, ``("downsample", inp, i, w_prev, w)``
        (entering stage ``i``), ``("mixer", inp, i, w, layer_arch)`` (any position of stage
        ``i``), ``("head", inp, w_last)``. Values outside the space are not checked here."""
        kind, (r, stem) = key[0], key[1]
        if kind == "stem":
            return self._stem_spec(r, stem, key[2])
        if kind == "downsample":
            i, w_prev, w = key[2], key[3], key[4]
            tokens, grid = self._tokens_at(r, i - 1, stem)
            return DownsampleSpec(w_prev, w, tokens, grid)
        if kind == "mixer":
            i, w, layer = key[2], key[3], key[4]
            tokens, grid = self._tokens_at(r, i, stem)
            return self._mixer_spec(layer, w, tokens, grid)
        if kind == "head":
            tokens, grid = self._tokens_at(r, len(self.stages) - 1, stem)
            return HeadSpec(self.modality, key[2], tokens, self.num_outputs, grid)
        raise ValueError(f"slot key: unknown kind {kind!r} in {key!r}")

    def layer_slots(self) -> Iterator[tuple[SlotKey, LayerSpec]]:
        """The slot table: every (slot key, layer spec) any arch of the space can contain,
        by walking its choices (never by sampling), in a fixed order: per input, the stems,
        then per stage its downsamples and mixers, then the heads. Keys: `slot_spec`."""
        stages = self.stages
        for inp in self.inputs():
            for w in stages[0].width:
                yield ("stem", inp, w), self.slot_spec(("stem", inp, w))
            for i, stage in enumerate(stages):
                if i > 0:
                    for w_prev in stages[i - 1].width:
                        for w in stage.width:
                            key: SlotKey = ("downsample", inp, i, w_prev, w)
                            yield key, self.slot_spec(key)
                for w in stage.width:
                    for layer in stage.layer_options():
                        key = ("mixer", inp, i, w, layer)
                        yield key, self.slot_spec(key)
            for w in stages[-1].width:
                yield ("head", inp, w), self.slot_spec(("head", inp, w))

    def arch_slots(self, arch: Arch) -> list[SlotKey]:
        """The slot key of each layer of ``arch``, in the order of `layers` (so
        ``[space.slot_spec(k) for k in space.arch_slots(arch)] == space.layers(arch)``).
        Does not validate the arch."""
        inp = arch.input_key
        stages = arch.stages
        keys: list[SlotKey] = [("stem", inp, stages[0].width)]
        for i, s in enumerate(stages):
            if i > 0:
                keys.append(("downsample", inp, i, stages[i - 1].width, s.width))
            keys += [("mixer", inp, i, s.width, layer) for layer in s.layers]
        keys.append(("head", inp, stages[-1].width))
        return keys

    def layers(self, arch: Arch) -> list[LayerSpec]:
        """The arch as layer specs, in order: stem, [downsample,] mixers per stage, head."""
        self.validate(arch)
        r, st = arch.resolution, arch.stem
        tokens, grid = self._tokens_at(r, 0, st)
        first = arch.stages[0].width
        specs: list[LayerSpec] = [self._stem_spec(r, st, first)]
        prev = first
        for i, s in enumerate(arch.stages):
            if i > 0:
                specs.append(DownsampleSpec(prev, s.width, tokens, grid))
                tokens, grid = self._tokens_at(r, i, st)
            specs += [self._mixer_spec(layer, s.width, tokens, grid) for layer in s.layers]
            prev = s.width
        specs.append(HeadSpec(self.modality, prev, tokens, self.num_outputs, grid))
        return specs

    def flops(self, arch: Arch) -> int:
        """FLOPs per input sample of the exported model (DESIGN.md section 3 convention)."""
        return sum(layer_flops(s) for s in self.layers(arch))

    def params(self, arch: Arch) -> int:
        """Parameter count of the exported model of ``arch``."""
        return sum(layer_params(s) for s in self.layers(arch))

    def flops_range(self) -> tuple[int, int]:
        """Exact (min, max) FLOPs over the whole space."""
        return self.flops(self.smallest()), self.flops(self.max_flops_arch())

    def example_input(self, arch: Arch, batch_size: int, *,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Images (B, C, r, r) standard normal, or token ids (B, r) uniform in the vocab."""
        self.validate(arch)
        r = arch.resolution
        if self.modality == "image":
            return torch.randn(batch_size, self.in_channels, r, r, generator=generator)
        return torch.randint(0, self.vocab_size, (batch_size, r), generator=generator)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (stored with a study; printed by `nas spaces`)."""
        lo, hi = self.flops_range()
        described: dict[str, Any] = {
            "name": self.name, "modality": self.modality,
            "resolution": list(self.resolution),
            "stages": [{"depth": list(s.depth), "width": list(s.width), "mixers": list(s.mixers),
                        "hidden_ratio": list(s.hidden_ratio), "kernel_size": list(s.kernel_size)}
                       for s in self.stages],
            "in_channels": self.in_channels, "patch_size": self.patch_size,
            "num_outputs": self.num_outputs, "vocab_size": self.vocab_size,
            "head_dim": self.head_dim, "ssm_head_dim": self.ssm_head_dim,
            "ssm_state_size": self.ssm_state_size, "size": self.size(),
            "flops_range": [lo, hi],
        }
        if self.stem is not None:  # absent without a stem choice: old fingerprints hold
            described["stem"] = list(self.stem)
        return described


__all__ = ["KNOBS", "Choice", "SearchSpace", "SlotKey", "Stage", "glu_hidden"]
