"""Subnet samplers for supernet training: which archs each training step trains.

Four strategies behind one interface, `ArchSampler.next_step() -> list[SampledArch]`:

- ``uniform`` (SPOS, Guo et al. 2020): ``num_random`` uniform archs, no sandwich.
- ``sandwich`` (BigNAS / AttentiveNAS): largest + smallest + ``num_random`` uniform archs.
- ``complexity_aware`` (after ElasticViT, Tang et al. 2023): the sandwich, but the random
  archs of a step come from one FLOPs bin, and that bin moves by at most one per step, so
  consecutive steps train subnets of similar size (less gradient conflict between very
  different subnets) while over a run every size is trained as often as under uniform.
- ``mixer_balanced``: complexity_aware, and of ``mixer_candidates`` archs drawn in the bin
  it keeps the one that brings the running mixer shares closest to uniform, so no mixer
  family starves (cheap mixers crowd the low-FLOPs bins, glu_mlp x4 the high ones).

The role ``"largest"`` is the distillation teacher (trained on labels first); every sampler
owns one numpy Generator, and `state_dict()` (JSON-ready) / `load_state_dict()` let a
resumed run continue the exact same sequence. Samplers are not thread safe.

Example::

    sampler = make_sampler(space, SamplerConfig(name="complexity_aware", seed=0))
    for sub in sampler.next_step():
        loss = train(supernet, sub.arch, teacher=sub.role != "largest")
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from kernels import MIXERS, layer_flops
from search_spaces import Arch, SearchSpace, StageArch

SAMPLERS: tuple[str, ...] = ("uniform", "sandwich", "complexity_aware", "mixer_balanced")
SMALLEST_RULES: tuple[str, ...] = ("flops", "per_mixer")
ROLES: tuple[str, ...] = ("largest", "smallest", "random")
_STEER_STEPS = 200  # mutations tried when rejection sampling cannot fill a bin


class _CodedSpace:
    """The space as integer codes, to draw and cost thousands of archs in a few numpy calls.

    A batch of N archs is ``(resolution (N,), [(depth (N,), width (N,), option (N, max_depth))
    per stage])`` of indices into the space's choices and `Stage.layer_options()`, drawn from
    the distribution of `SearchSpace.sample` (every dimension uniform; a layer's mixer uniform,
    then its knob). FLOPs are exact: a sum of per-layer costs read from the space's slot
    table (stem and head by first/last width, each downsample by its two widths, each mixer
    by stage, width and option), checked against `space.flops` when built.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.inputs = space.inputs()  # (resolution, stem) pairs, drawn uniformly
        self.stages = space.stages
        self.options = [tuple(s.layer_options()) for s in space.stages]
        self.mixers = tuple(m for m in MIXERS if any(m in s.mixers for s in space.stages))
        self.option_probs = []
        for stage, options in zip(space.stages, self.options):
            per_mixer = {m: sum(o.mixer == m for o in options) for m in stage.mixers}
            self.option_probs.append(np.array(
                [1.0 / (len(stage.mixers) * per_mixer[o.mixer]) for o in options]))
        self._build_tables()
        check = np.random.default_rng(0)
        for arch in [space.smallest(), space.largest()] + [space.sample(check) for _ in range(8)]:
            if self.arch_flops(arch) != space.flops(arch):
                raise ValueError(f"space {space.name!r}: FLOPs are not a sum of per-layer costs "
                                 f"(stem, mixers, downsamples, head), which the binned "
                                 f"samplers need")

    def _build_tables(self) -> None:
        """Per-layer FLOPs by choice index, read from the space's slot table
        (`SearchSpace.slot_spec`)."""
        space, stages = self.space, self.stages
        n_res, n_stages = len(self.inputs), len(stages)
        n_width = [len(s.width) for s in stages]
        self.stem = np.zeros((n_res, n_width[0]), dtype=np.int64)
        self.head = np.zeros((n_res, n_width[-1]), dtype=np.int64)
        self.transition = [np.zeros((n_res, n_width[i - 1], n_width[i]), dtype=np.int64)
                           for i in range(1, n_stages)]
        self.mixer = [np.zeros((n_res, nw, len(o)), dtype=np.int64)
                      for nw, o in zip(n_width, self.options)]
        for r, inp in enumerate(self.inputs):
            for a, w in enumerate(stages[0].width):
                self.stem[r, a] = layer_flops(space.slot_spec(("stem", inp, w)))
            for a, w in enumerate(stages[-1].width):
                self.head[r, a] = layer_flops(space.slot_spec(("head", inp, w)))
            for i in range(1, n_stages):
                for a, w_prev in enumerate(stages[i - 1].width):
                    for b, w in enumerate(stages[i].width):
                        self.transition[i - 1][r, a, b] = layer_flops(
                            space.slot_spec(("downsample", inp, i, w_prev, w)))
            for i, (stage, options) in enumerate(zip(stages, self.options)):
                for a, w in enumerate(stage.width):
                    for k, layer in enumerate(options):
                        self.mixer[i][r, a, k] = layer_flops(
                            space.slot_spec(("mixer", inp, i, w, layer)))

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list]:
        """``n`` uniform archs as codes."""
        res = rng.integers(len(self.inputs), size=n)
        stages = []
        for stage, probs in zip(self.stages, self.option_probs):
            depth = rng.integers(len(stage.depth), size=n)
            width = rng.integers(len(stage.width), size=n)
            option = rng.choice(len(probs), size=(n, stage.depth.max), p=probs)
            stages.append((depth, width, option))
        return res, stages

    def flops(self, codes: tuple[np.ndarray, list]) -> np.ndarray:
        """FLOPs (N,) of a batch of codes."""
        res, stages = codes
        total = self.stem[res, stages[0][1]] + self.head[res, stages[-1][1]]
        for i in range(1, len(stages)):
            total = total + self.transition[i - 1][res, stages[i - 1][1], stages[i][1]]
        for stage, table, (depth, width, option) in zip(self.stages, self.mixer, stages):
            active = np.arange(option.shape[1]) < np.asarray(stage.depth.values)[depth][:, None]
            per_layer = table[res[:, None], width[:, None], option]  # (N, max_depth)
            total = total + (per_layer * active).sum(axis=1)
        return total

    def arch_flops(self, arch: Arch) -> int:
        """FLOPs of one arch from the tables (used to check them)."""
        r = np.array([self.inputs.index(arch.input_key)])
        stages = []
        for stage, options, s in zip(self.stages, self.options, arch.stages):
            option = np.zeros((1, stage.depth.max), dtype=np.int64)
            option[0, :s.depth] = [options.index(layer) for layer in s.layers]
            stages.append((np.array([stage.depth.values.index(s.depth)]),
                           np.array([stage.width.values.index(s.width)]), option))
        return int(self.flops((r, stages))[0])

    def decode(self, codes: tuple[np.ndarray, list], i: int) -> Arch:
        """Row ``i`` of a batch of codes as an `Arch`."""
        res, stages = codes
        built = []
        for stage, options, (depth, width, option) in zip(self.stages, self.options, stages):
            d = stage.depth.values[depth[i]]
            built.append(StageArch(d, stage.width.values[width[i]],
                                   tuple(options[o] for o in option[i, :d])))
        resolution, stem = self.inputs[res[i]]
        return Arch(resolution, tuple(built), stem=stem)


@dataclass(frozen=True)
class SamplerConfig:
    """Which sampler and its knobs; validated once.

    ``num_random`` random subnets per step; ``bins`` FLOPs bins (quantiles of the FLOPs of
    ``calibration_samples`` uniform archs); ``mixer_candidates`` in-bin archs compared per
    random subnet by ``mixer_balanced``. ``smallest``: the sandwich's bottom subnet, either
    ``"flops"`` (`SearchSpace.smallest`, every step) or ``"per_mixer"`` (step ``k`` trains
    ``SearchSpace.smallest_per_mixer()[k % n]``: each mixer family's cheapest corner in turn,
    so the corner a latency table ranks fastest is trained even where it is not the
    fewest-FLOPs one).
    """

    name: str = "complexity_aware"
    num_random: int = 2
    bins: int = 8
    seed: int = 0
    calibration_samples: int = 2000
    mixer_candidates: int = 8
    smallest: str = "flops"

    def __post_init__(self) -> None:
        if self.name not in SAMPLERS:
            raise ValueError(f"SamplerConfig.name: {self.name!r} is not one of {SAMPLERS}")
        if self.smallest not in SMALLEST_RULES:
            raise ValueError(f"SamplerConfig.smallest: {self.smallest!r} is not one of "
                             f"{SMALLEST_RULES}")
        for f in fields(self):
            if f.name in ("name", "smallest"):
                continue
            value = getattr(self, f.name)
            low = 0 if f.name == "seed" else 2 if f.name == "bins" else 1
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"SamplerConfig.{f.name}: must be an int >= {low}, "
                                 f"got {value!r}")


@dataclass(frozen=True)
class SampledArch:
    """One subnet of a step: ``role`` is "largest" | "smallest" | "random"; ``bin`` is the
    FLOPs bin a random subnet was drawn from (None for the extremes and unbinned samplers)."""

    arch: Arch
    role: str
    bin: int | None = None


class ArchSampler(abc.ABC):
    """Base of every sampler: one numpy Generator seeded by ``config.seed``.

    Contract: `next_step()` returns the step's subnets, the "largest" first when present;
    `state_dict()` is JSON-serialisable and, loaded into a fresh sampler built with the same
    space and config, continues the identical sequence.
    """

    def __init__(self, space: SearchSpace, config: SamplerConfig) -> None:
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space: expected a SearchSpace, got {type(space).__name__}")
        self.space = space
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.steps = 0

    @abc.abstractmethod
    def next_step(self) -> list[SampledArch]:
        """The subnets to train at the next step."""

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.config.name, "steps": self.steps,
                "rng": self.rng.bit_generator.state, **self._extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; on bad input raise ValueError and change nothing."""
        if not isinstance(state, dict):
            raise ValueError(f"sampler state: expected a dict, got {type(state).__name__}")
        missing = [k for k in ("name", "steps", "rng", *self._extra_keys()) if k not in state]
        if missing:
            raise ValueError(f"sampler state: missing {missing}")
        if state["name"] != self.config.name:
            raise ValueError(f"sampler state.name: saved by {state['name']!r}, this sampler "
                             f"is {self.config.name!r}")
        steps = state["steps"]
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"sampler state.steps: expected an int >= 0, got {steps!r}")
        probe = np.random.default_rng()
        try:
            probe.bit_generator.state = state["rng"]
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"sampler state.rng: not a {type(probe.bit_generator).__name__} "
                             f"state ({exc})") from None
        apply_extra = self._check_extra_state(state)
        self.rng = probe
        self.steps = steps
        apply_extra()

    # subclasses with more state override these three
    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _extra_keys(self) -> tuple[str, ...]:
        return ()

    def _check_extra_state(self, state: dict[str, Any]):
        """Validate the extra keys of ``state``; return a function that applies them."""
        return lambda: None


class UniformSampler(ArchSampler):
    """SPOS: ``num_random`` uniform archs per step, no extremes (each trained on labels)."""

    def next_step(self) -> list[SampledArch]:
        self.steps += 1
        return [SampledArch(self.space.sample(self.rng), "random")
                for _ in range(self.config.num_random)]


class SandwichSampler(ArchSampler):
    """BigNAS / AttentiveNAS sandwich rule: largest, smallest, ``num_random`` uniform archs.

    ``config.smallest == "per_mixer"`` rotates the smallest over `smallest_per_mixer()` by
    step count, so a resumed run (which restores ``steps``) continues the same rotation."""

    def __init__(self, space: SearchSpace, config: SamplerConfig) -> None:
        super().__init__(space, config)
        self.largest = space.largest()
        self.smallests: tuple[Arch, ...] = (
            (space.smallest(),) if config.smallest == "flops" else space.smallest_per_mixer())

    def _extremes(self) -> list[SampledArch]:
        """Called after ``steps`` counted the step being drawn."""
        bottom = self.smallests[(self.steps - 1) % len(self.smallests)]
        return [SampledArch(self.largest, "largest"), SampledArch(bottom, "smallest")]

    def next_step(self) -> list[SampledArch]:
        self.steps += 1
        return self._extremes() + [SampledArch(self.space.sample(self.rng), "random")
                                   for _ in range(self.config.num_random)]


class ComplexityAwareSampler(SandwichSampler):
    """Sandwich whose random archs come from a FLOPs bin that walks by at most one per step.

    Bins: ``bin_edges`` (``bins + 1`` ints) are the smallest arch's FLOPs, the quantiles
    ``k / bins`` of ``calibration_samples`` uniform archs drawn with this sampler's own
    generator, and the space's maximum FLOPs (`flops_range`); bin ``b`` holds FLOPs in
    ``[edges[b], edges[b+1])`` (the last bin is closed). So each bin holds ~1/bins of the
    uniform distribution and rejection sampling needs ~bins draws per arch (drawn in
    vectorised batches).

    Walk: a direction is kept; each step the bin moves one in that direction with
    probability 1/2 (1/4 at the two ends), reversing at the ends. The longer stay at the
    ends makes the long-run share of every bin exactly 1/bins, so over a run the random
    subnets follow the uniform distribution, only ordered smoothly by size.
    """

    def __init__(self, space: SearchSpace, config: SamplerConfig) -> None:
        super().__init__(space, config)
        self.coded = _CodedSpace(space)
        calibration = self.coded.flops(self.coded.draw(self.rng, config.calibration_samples))
        low, high = space.flops_range()
        inner = np.quantile(calibration, np.arange(1, config.bins) / config.bins, method="lower")
        edges = np.maximum.accumulate(np.clip(np.concatenate([[low], inner, [high]]), low, high))
        self.bin_edges: tuple[int, ...] = tuple(int(e) for e in edges)
        self._inner = np.asarray(self.bin_edges[1:-1], dtype=np.int64)
        self._bin = int(self.rng.integers(config.bins))
        self._direction = 1 if self.rng.random() < 0.5 else -1
        self._turn_at_ends()
        self.fallbacks = 0

    @property
    def current_bin(self) -> int:
        """The bin the next step's random subnets are drawn from."""
        return self._bin

    def bin_of(self, flops: int | np.ndarray) -> int | np.ndarray:
        """Bin index of FLOPs value(s) (values outside the range go to the end bins)."""
        found = np.searchsorted(self._inner, flops, side="right")
        return int(found) if np.ndim(found) == 0 else found

    def next_step(self) -> list[SampledArch]:
        b = self._bin
        randoms = [SampledArch(arch, "random", b) for arch in self._random_archs(b)]
        self._advance()
        self.steps += 1
        return self._extremes() + randoms

    def _random_archs(self, b: int) -> list[Arch]:
        return self._archs_in_bin(b, self.config.num_random)

    # ---- the walk ------------------------------------------------------------------------

    def _turn_at_ends(self) -> None:
        if self._bin == 0:
            self._direction = 1
        elif self._bin == self.config.bins - 1:
            self._direction = -1

    def _advance(self) -> None:
        at_end = self._bin in (0, self.config.bins - 1)
        if self.rng.random() < (0.25 if at_end else 0.5):
            self._bin += self._direction
        self._turn_at_ends()

    # ---- drawing in a bin ----------------------------------------------------------------

    def _archs_in_bin(self, b: int, n: int) -> list[Arch]:
        """``n`` uniform archs conditioned on bin ``b``: vectorised rejection sampling, then
        (never looping forever) mutation towards the bin for what rejection did not fill."""
        bins = self.config.bins
        batch = 2 * bins * n + 8
        budget = 64 * bins * n
        empty = b < bins - 1 and self.bin_edges[b] == self.bin_edges[b + 1]
        found: list[Arch] = []
        drawn = 0
        while not empty and len(found) < n and drawn < budget:
            codes = self.coded.draw(self.rng, batch)
            hits = np.flatnonzero(self.bin_of(self.coded.flops(codes)) == b)
            found += [self.coded.decode(codes, int(i)) for i in hits[: n - len(found)]]
            drawn += batch
        while len(found) < n:
            found.append(self._steer_into_bin(b))
            self.fallbacks += 1
        return found

    def _steer_into_bin(self, b: int) -> Arch:
        """Hill-climb a uniform arch towards bin ``b`` by mutation (the closest one found)."""
        lo, hi = self.bin_edges[b], self.bin_edges[b + 1]

        def distance(arch: Arch) -> int:
            f = self.space.flops(arch)
            return max(lo - f, f - hi, 0)

        arch = self.space.sample(self.rng)
        gap = distance(arch)
        for _ in range(_STEER_STEPS):
            if gap == 0:
                break
            child = self.space.mutate(arch, self.rng)
            child_gap = distance(child)
            if child_gap <= gap:
                arch, gap = child, child_gap
        return arch

    # ---- state ---------------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        return {"bin": self._bin, "direction": self._direction, "fallbacks": self.fallbacks,
                "bin_edges": list(self.bin_edges)}

    def _extra_keys(self) -> tuple[str, ...]:
        return ("bin", "direction", "fallbacks", "bin_edges")

    def _check_extra_state(self, state: dict[str, Any]):
        edges = state["bin_edges"]
        if not isinstance(edges, list) or edges != list(self.bin_edges):
            raise ValueError("sampler state.bin_edges: saved for another space, bins or "
                             f"calibration ({edges!r} vs "
                             f"{list(self.bin_edges)})")
        b, direction, fallbacks = state["bin"], state["direction"], state["fallbacks"]
        if isinstance(b, bool) or not isinstance(b, int) or not 0 <= b < self.config.bins:
            raise ValueError(f"sampler state.bin: expected 0..{self.config.bins - 1}, got {b!r}")
        if direction not in (-1, 1):
            raise ValueError(f"sampler state.direction: expected -1 or 1, got {direction!r}")
        if not isinstance(fallbacks, int) or fallbacks < 0:
            raise ValueError(f"sampler state.fallbacks: expected an int >= 0, got {fallbacks!r}")

        def apply() -> None:
            self._bin, self._direction, self.fallbacks = b, direction, fallbacks
        return apply


class MixerBalancedSampler(ComplexityAwareSampler):
    """complexity_aware + mixer balance: per random subnet, of ``mixer_candidates`` archs in
    the current bin keep the one whose layers bring the running mixer counts (over all random
    subnets so far) closest to uniform (least sum of squared share deviations)."""

    def __init__(self, space: SearchSpace, config: SamplerConfig) -> None:
        super().__init__(space, config)
        self.mixers: tuple[str, ...] = self.coded.mixers
        self.mixer_counts = np.zeros(len(self.mixers), dtype=np.int64)

    def mixer_shares(self) -> dict[str, float]:
        """Share of each mixer among the random subnets' layers sampled so far."""
        total = max(int(self.mixer_counts.sum()), 1)
        return {m: int(c) / total for m, c in zip(self.mixers, self.mixer_counts)}

    def _layer_counts(self, arch: Arch) -> np.ndarray:
        counts = np.zeros(len(self.mixers), dtype=np.int64)
        for stage in arch.stages:
            for layer in stage.layers:
                counts[self.mixers.index(layer.mixer)] += 1
        return counts

    def _imbalance(self, counts: np.ndarray) -> float:
        shares = counts / max(int(counts.sum()), 1)
        return float(((shares - 1.0 / len(counts)) ** 2).sum())

    def _random_archs(self, b: int) -> list[Arch]:
        k = self.config.mixer_candidates
        candidates = self._archs_in_bin(b, self.config.num_random * k)
        chosen = []
        for g in range(self.config.num_random):
            group = [(arch, self._layer_counts(arch)) for arch in candidates[g * k:(g + 1) * k]]
            arch, counts = min(group, key=lambda ac: self._imbalance(self.mixer_counts + ac[1]))
            self.mixer_counts = self.mixer_counts + counts
            chosen.append(arch)
        return chosen

    def _extra_state(self) -> dict[str, Any]:
        return {**super()._extra_state(), "mixer_counts": [int(c) for c in self.mixer_counts]}

    def _extra_keys(self) -> tuple[str, ...]:
        return (*super()._extra_keys(), "mixer_counts")

    def _check_extra_state(self, state: dict[str, Any]):
        apply_parent = super()._check_extra_state(state)
        counts = state["mixer_counts"]
        if (not isinstance(counts, list) or len(counts) != len(self.mixers)
                or any(not isinstance(c, int) or c < 0 for c in counts)):
            raise ValueError(f"sampler state.mixer_counts: expected {len(self.mixers)} ints "
                             f">= 0 (for {self.mixers}), got {counts!r}")

        def apply() -> None:
            apply_parent()
            self.mixer_counts = np.asarray(counts, dtype=np.int64)
        return apply


_CLASSES: dict[str, type[ArchSampler]] = {
    "uniform": UniformSampler,
    "sandwich": SandwichSampler,
    "complexity_aware": ComplexityAwareSampler,
    "mixer_balanced": MixerBalancedSampler,
}


def make_sampler(space: SearchSpace, config: SamplerConfig | None = None) -> ArchSampler:
    """The sampler ``config.name`` over ``space`` (default: complexity_aware, seed 0)."""
    config = SamplerConfig() if config is None else config
    if not isinstance(config, SamplerConfig):
        raise ValueError(f"config: expected a SamplerConfig, got {type(config).__name__}")
    return _CLASSES[config.name](space, config)


__all__ = [
    "ROLES", "SAMPLERS", "SMALLEST_RULES", "ArchSampler", "ComplexityAwareSampler",
    "MixerBalancedSampler", "SampledArch", "SamplerConfig", "SandwichSampler", "UniformSampler",
    "make_sampler",
]
