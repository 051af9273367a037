"""Which archs an audit trains: a stratified spread over the complexity range plus the
stored Pareto front, every pick recorded with its stratum. Torch-free."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search_spaces import Arch, SearchSpace


@dataclass(frozen=True)
class SelectedArch:
    """One audited arch: ``stratum`` is ``"front"`` or ``"flops i/k"`` (its log-FLOPs bin)."""

    arch: Arch
    stratum: str
    flops: int

    def to_dict(self) -> dict[str, Any]:
        return {"arch_key": self.arch.key(), "arch": self.arch.to_json(),
                "label": self.arch.label(), "stratum": self.stratum, "flops": self.flops}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SelectedArch:
        return cls(arch=Arch.from_json(data["arch"]), stratum=data["stratum"],
                   flops=int(data["flops"]))


def select_archs(*, space: SearchSpace, n: int, candidates: Sequence[Arch] = (),
                 front: Sequence[Arch] = (), seed: int = 0, front_share: float = 1 / 3,
                 include_extremes: bool = True, max_tries: int = 4000) -> list[SelectedArch]:
    """``n`` distinct archs spread over the complexity range, sorted by FLOPs.

    ``round(front_share * n)`` of them (at most the front's size) come from ``front``,
    evenly spaced along it by FLOPs. The rest stratify log-FLOPs: the range of the
    candidates (plus the space's smallest and largest archs when ``include_extremes``) is
    cut into equal-width bins, one arch per bin, drawn at random from the candidates in it
    (the study's evaluated archs), else sampled from the space until one lands there, else
    the unused candidate nearest to the bin. Why log-FLOPs bins: random archs crowd the
    middle of the range, and a ranking measured only there says little about the ends a
    user picks from.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n: an audit needs at least 2 archs to rank, got {n!r}")
    rng = np.random.default_rng([seed, 7_368_787])
    chosen: dict[str, SelectedArch] = {}
    front = list({a.key(): space.validate(a) for a in front}.values())
    n_front = min(len(front), int(math.floor(front_share * n + 0.5)))
    if n_front:
        ordered = sorted(front, key=lambda a: (space.flops(a), a.key()))
        for i in np.unique(np.round(np.linspace(0, len(ordered) - 1, n_front)).astype(int)):
            arch = ordered[int(i)]
            chosen[arch.key()] = SelectedArch(arch, "front", space.flops(arch))
    pool = {a.key(): space.validate(a) for a in candidates}
    if include_extremes:
        for arch in (space.smallest(), space.largest()):
            pool.setdefault(arch.key(), arch)
    if not pool:
        pool = {a.key(): a for a in (space.smallest(), space.largest())}
    flops = {k: space.flops(a) for k, a in pool.items()}
    lo, hi = math.log(min(flops.values())), math.log(max(flops.values()))
    bins = n - len(chosen)
    edges = np.linspace(lo, hi, bins + 1) if hi > lo else np.full(bins + 1, lo)
    missing: list[int] = []
    for b in range(bins):
        low, high = edges[b], edges[b + 1]
        inside = sorted(k for k, f in flops.items() if k not in chosen
                        and low - 1e-12 <= math.log(f) <= high + 1e-12)
        if inside:
            key = inside[int(rng.integers(len(inside)))]
            chosen[key] = SelectedArch(pool[key], f"flops {b + 1}/{bins}", flops[key])
            continue
        found = _sample_into(space, rng, low, high, chosen, max_tries)
        if found is None:
            missing.append(b)
        else:
            chosen[found.key()] = SelectedArch(found, f"flops {b + 1}/{bins}",
                                               space.flops(found))
    for b in missing:  # the nearest unused candidate, else any new random arch
        centre = (edges[b] + edges[b + 1]) / 2
        unused = [k for k in sorted(flops) if k not in chosen]
        if unused:
            key = min(unused, key=lambda k: abs(math.log(flops[k]) - centre))
            arch = pool[key]
        else:
            arch = _any_new(space, rng, chosen, max_tries)
        chosen[arch.key()] = SelectedArch(arch, f"flops {b + 1}/{bins} (nearest)",
                                          space.flops(arch))
    return sorted(chosen.values(), key=lambda s: (s.flops, s.arch.key()))


def _sample_into(space: SearchSpace, rng: np.random.Generator, low: float, high: float,
                 chosen: dict[str, SelectedArch], tries: int) -> Arch | None:
    for _ in range(tries):
        arch = space.sample(rng)
        if arch.key() not in chosen and low <= math.log(space.flops(arch)) <= high:
            return arch
    return None


def _any_new(space: SearchSpace, rng: np.random.Generator, chosen: dict[str, SelectedArch],
             tries: int) -> Arch:
    for _ in range(tries):
        arch = space.sample(rng)
        if arch.key() not in chosen:
            return arch
    raise ValueError(f"the space has fewer than {len(chosen) + 1} distinct archs to audit")
