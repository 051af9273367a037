"""Subnet samplers: walk and bin properties over long runs, mixer balance, sandwich
composition, determinism, exact resume from a JSON state, and bad input."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from nas.training.samplers import (
    SAMPLERS,
    ArchSampler,
    SampledArch,
    SamplerConfig,
    make_sampler,
)
from search_spaces import Choice, SearchSpace, Stage, get_space

LONG = 2000
MIXERS = ("attention", "glu_mlp", "ssm", "conv")
BINNED = ("complexity_aware", "mixer_balanced")


def run(space: SearchSpace, name: str, steps: int, **kw) -> tuple[ArchSampler, list]:
    sampler = make_sampler(space, SamplerConfig(name=name, **kw))
    return sampler, [sampler.next_step() for _ in range(steps)]


def layer_counts(subnets: list[SampledArch]) -> np.ndarray:
    counts = np.zeros(len(MIXERS))
    for sub in subnets:
        for stage in sub.arch.stages:
            for layer in stage.layers:
                counts[MIXERS.index(layer.mixer)] += 1
    return counts


@pytest.fixture(scope="module")
def vit():
    return get_space("hybrid_vit_tiny")


@pytest.fixture(scope="module")
def lm():
    return get_space("hybrid_lm_tiny")


@pytest.fixture(scope="module")
def long_runs(vit):
    """2,000 steps of each binned sampler on hybrid_vit_tiny (shared by several tests)."""
    return {name: run(vit, name, LONG) for name in BINNED}


def check_binned_run(space, sampler, steps) -> None:
    bins = sampler.config.bins
    step_bins = []
    for step in steps:
        assert [s.role for s in step[:2]] == ["largest", "smallest"]
        assert step[0].arch == space.largest() and step[1].arch == space.smallest()
        assert step[0].bin is None and step[1].bin is None
        randoms = step[2:]
        assert len(randoms) == sampler.config.num_random
        assert all(s.role == "random" for s in randoms)
        assert len({s.bin for s in randoms}) == 1
        b = randoms[0].bin
        lo, hi = sampler.bin_edges[b], sampler.bin_edges[b + 1]
        for sub in randoms:
            f = space.flops(sub.arch)
            assert lo <= f <= hi and (f < hi or b == bins - 1), (b, lo, f, hi)
            assert sampler.bin_of(f) == b
        step_bins.append(b)
    step_bins = np.array(step_bins)
    assert np.abs(np.diff(step_bins)).max() <= 1
    visits = np.bincount(step_bins, minlength=bins)
    assert (visits > 0).all(), visits
    # the walk stays longer at the ends, so every bin gets ~1/bins of the steps
    assert (visits / len(steps) > 0.5 / bins).all() and (visits / len(steps) < 1.5 / bins).all()
    assert sampler.fallbacks == 0


@pytest.mark.parametrize("name", BINNED)
def test_binned_walk_on_vit(vit, long_runs, name):
    sampler, steps = long_runs[name]
    check_binned_run(vit, sampler, steps)
    assert sampler.steps == LONG
    edges = sampler.bin_edges
    assert len(edges) == sampler.config.bins + 1 and list(edges) == sorted(edges)
    assert (edges[0], edges[-1]) == vit.flops_range()


@pytest.mark.parametrize("name", BINNED)
def test_binned_walk_on_lm(lm, name):
    sampler, steps = run(lm, name, 600, num_random=3, bins=6)
    check_binned_run(lm, sampler, steps)


def test_bins_hold_equal_shares_of_the_uniform_distribution(vit):
    """The vectorised in-bin draws follow `space.sample`: its archs fill the bins evenly."""
    sampler = make_sampler(vit, SamplerConfig(name="complexity_aware", bins=5, seed=3))
    rng = np.random.default_rng(7)
    flops = np.array([vit.flops(vit.sample(rng)) for _ in range(3000)])
    shares = np.bincount(sampler.bin_of(flops), minlength=5) / len(flops)
    print("uniform archs per bin:", np.round(shares, 3))
    assert np.abs(shares - 0.2).max() < 0.035


def test_mixer_balanced_keeps_mixer_shares_uniform(long_runs):
    report = {}
    for name in BINNED:
        sampler, steps = long_runs[name]
        total = sum(layer_counts(step[2:]) for step in steps)
        per_bin = []
        for b in range(sampler.config.bins):
            counts = sum(layer_counts(step[2:]) for step in steps if step[2].bin == b)
            per_bin.append(counts / counts.sum())
        report[name] = (total / total.sum(), np.array(per_bin))
    for name, (shares, per_bin) in report.items():
        print(f"{name}: overall " + ", ".join(f"{m} {100 * s:.2f}%" for m, s in
                                              zip(MIXERS, shares))
              + f"; worst bin deviation {100 * np.abs(per_bin - 0.25).max():.1f} pp")
    ca_shares, ca_bins = report["complexity_aware"]
    mb_shares, mb_bins = report["mixer_balanced"]
    assert np.abs(mb_shares - 0.25).max() <= 0.03
    assert np.abs(mb_shares - 0.25).max() < np.abs(ca_shares - 0.25).max()
    # inside a bin complexity_aware starves mixers (cheap ones low, glu_mlp x4 high)
    assert np.abs(mb_bins - 0.25).max() <= 0.03 < np.abs(ca_bins - 0.25).max()
    sampler = long_runs["mixer_balanced"][0]
    assert sampler.mixer_shares() == pytest.approx(dict(zip(MIXERS, mb_shares)))


def test_uniform_archs_are_valid_and_varied(vit):
    sampler, steps = run(vit, "uniform", 500, num_random=2)
    subnets = [s for step in steps for s in step]
    assert all(len(step) == 2 for step in steps)
    assert all(s.role == "random" and s.bin is None for s in subnets)
    for sub in subnets:
        vit.validate(sub.arch)
    assert len({s.arch.key() for s in subnets}) > 0.95 * len(subnets)
    flops = np.array([vit.flops(s.arch) for s in subnets])
    lo, hi = vit.flops_range()
    assert flops.min() < lo + 0.02 * (hi - lo) and flops.max() > lo + 0.3 * (hi - lo)


def test_sandwich_composition(vit):
    sampler, steps = run(vit, "sandwich", 100, num_random=3)
    for step in steps:
        assert [s.role for s in step] == ["largest", "smallest", "random", "random", "random"]
        assert step[0].arch == vit.largest() and step[1].arch == vit.smallest()
        assert all(s.bin is None for s in step)
    randoms = {s.arch.key() for step in steps for s in step[2:]}
    assert len(randoms) > 290


@pytest.mark.parametrize("name", ["sandwich", "complexity_aware", "mixer_balanced"])
def test_per_mixer_smallest_rotates_over_each_mixers_corner(vit, name):
    """``smallest="per_mixer"``: step k's bottom subnet is the k-th mixer family's cheapest
    arch, so each family's corner is trained equally often; resume keeps the rotation."""
    corners = vit.smallest_per_mixer()
    assert len(corners) == len(set(a.key() for a in corners)) >= 3
    config = SamplerConfig(name=name, seed=3, smallest="per_mixer")
    _, steps = run(vit, name, 2 * len(corners), seed=3, smallest="per_mixer")
    bottoms = [step[1] for step in steps]
    assert all(b.role == "smallest" for b in bottoms)
    assert [b.arch for b in bottoms] == list(corners) * 2
    first = make_sampler(vit, config)
    first.next_step()
    resumed = make_sampler(vit, config)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert resumed.next_step()[1].arch == corners[1]


def keys(steps: list) -> list[list[str]]:
    return [[s.arch.key() for s in step] for step in steps]


@pytest.mark.parametrize("name", SAMPLERS)
def test_same_seed_same_sequence_other_seed_differs(vit, name):
    _, a = run(vit, name, 40, seed=5)
    _, b = run(vit, name, 40, seed=5)
    _, c = run(vit, name, 40, seed=6)
    assert keys(a) == keys(b)
    assert keys(a) != keys(c)


@pytest.mark.parametrize("name", SAMPLERS)
def test_resume_from_state_continues_the_same_sequence(vit, name):
    config = SamplerConfig(name=name, seed=11)
    straight = make_sampler(vit, config)
    expected = [straight.next_step() for _ in range(50)]

    first = make_sampler(vit, config)
    head = [first.next_step() for _ in range(20)]
    state = json.loads(json.dumps(first.state_dict()))
    resumed = make_sampler(vit, config)
    resumed.load_state_dict(state)
    tail = [resumed.next_step() for _ in range(30)]
    assert head + tail == expected
    assert resumed.steps == 50
    assert resumed.state_dict() == straight.state_dict()


def test_bad_state_is_refused_and_changes_nothing(vit):
    config = SamplerConfig(name="mixer_balanced", seed=2)
    sampler = make_sampler(vit, config)
    for _ in range(5):
        sampler.next_step()
    good = sampler.state_dict()
    bad_states = {
        "name": {**good, "name": "uniform"},
        "bin_edges": make_sampler(vit, SamplerConfig(name="mixer_balanced", bins=4)).state_dict(),
        "rng": {**good, "rng": {"bit_generator": "PCG64", "state": "nope"}},
        "mixer_counts": {**good, "mixer_counts": [1, 2]},
        "direction": {**good, "direction": 0},
        "bin": {**good, "bin": 99},
        "missing": {k: v for k, v in good.items() if k != "steps"},
    }
    for field, state in bad_states.items():
        match = "steps" if field == "missing" else field
        with pytest.raises(ValueError, match=match):
            sampler.load_state_dict(state)
    assert sampler.state_dict() == good


@pytest.mark.parametrize("field, value", [
    ("name", "bogus"), ("num_random", 0), ("bins", 1), ("seed", -1), ("bins", 2.5),
    ("calibration_samples", 0), ("mixer_candidates", 0), ("num_random", True),
    ("smallest", "fastest"),
])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"SamplerConfig.{field}"):
        SamplerConfig(**{field: value})


def test_bad_space_or_config_object():
    with pytest.raises(ValueError, match="space"):
        make_sampler("hybrid_vit_tiny", SamplerConfig())
    with pytest.raises(ValueError, match="config"):
        make_sampler(get_space("hybrid_vit_tiny"), {"name": "uniform"})
    with pytest.raises(TypeError):
        ArchSampler(get_space("hybrid_vit_tiny"), SamplerConfig())  # abstract


def test_degenerate_space_falls_back_and_never_hangs():
    """Two archs and eight bins: most bins are empty, the mutation fallback fills them."""
    space = SearchSpace(name="two_archs", modality="image", resolution=Choice(16),
                        stages=[Stage(depth=Choice(1), width=Choice(32),
                                      mixers=("conv", "glu_mlp"), hidden_ratio=Choice(2),
                                      kernel_size=Choice(3))])
    start = time.perf_counter()
    sampler, steps = run(space, "mixer_balanced", 50)
    assert time.perf_counter() - start < 5
    assert sampler.fallbacks > 0
    bins = [step[2].bin for step in steps]
    assert np.abs(np.diff(bins)).max() <= 1
    for step in steps:
        for sub in step:
            space.validate(sub.arch)


def test_calibration_is_fast(vit, lm):
    for space in (vit, lm):
        start = time.perf_counter()
        sampler = make_sampler(space, SamplerConfig(name="mixer_balanced",
                                                    calibration_samples=2000))
        elapsed = time.perf_counter() - start
        print(f"{space.name}: build + calibration {elapsed * 1e3:.0f} ms, "
              f"edges {sampler.bin_edges}")
        assert elapsed < 1.0
        assert 0 <= sampler.current_bin < sampler.config.bins
