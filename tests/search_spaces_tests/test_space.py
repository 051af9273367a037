from __future__ import annotations

import itertools

import numpy as np
import pytest

from kernels import MIXERS
from search_spaces import (
    Arch,
    Choice,
    SearchSpace,
    Stage,
    StageArch,
    get_space,
    list_spaces,
    register_space,
)


def test_builtin_spaces_registered():
    assert {"hybrid_vit_tiny", "hybrid_lm_tiny", "hybrid_lm_small"} <= set(list_spaces())
    assert get_space("hybrid_vit_tiny").modality == "image"
    assert get_space("hybrid_lm_tiny").modality == "sequence"


# parameter budget of each size class: "_tiny" spaces train on a CPU, "_small" ones (the
# reference size, nanoGPT's shakespeare-char scale) on one GPU
PARAM_BUDGET = {"tiny": 5_000_000, "small": 15_000_000}


@pytest.mark.parametrize("name", list_spaces())
def test_space_size_and_budget(name):
    space = get_space(name)
    budget = PARAM_BUDGET[name.rsplit("_", 1)[-1]]
    assert space.size() >= 10**5
    assert space.params(space.largest()) <= budget
    assert space.params(space.max_flops_arch()) <= budget
    assert space.flops(space.largest()) <= space.flops_range()[1]
    lo, hi = space.flops_range()
    assert 0 < lo < hi
    for stage in space.stages:
        assert set(stage.mixers) == set(MIXERS)


@pytest.mark.parametrize("name", list_spaces())
def test_sample_mutate_crossover_stay_in_space(name, rng):
    space = get_space(name)
    seen_mixers = [set() for _ in space.stages]
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        for i, s in enumerate(a.stages):
            seen_mixers[i] |= {layer.mixer for layer in s.layers}
        child = space.mutate(a, rng)
        assert child != a
        space.validate(child)
        space.validate(space.crossover(a, b, rng))
    assert all(seen == set(MIXERS) for seen in seen_mixers)


@pytest.mark.parametrize("name", list_spaces())
def test_largest_and_smallest_bound_the_flops(name, rng):
    space = get_space(name)
    lo, hi = space.flops_range()
    for _ in range(100):
        assert lo <= space.flops(space.sample(rng)) <= hi


@pytest.mark.parametrize("name", ["hybrid_vit_tiny", "hybrid_lm_tiny"])
def test_smallest_per_mixer_is_each_mixers_cheapest_arch(name):
    """One arch per mixer of the space, built from that mixer alone at every min dimension;
    none is cheaper than `smallest()`, and `smallest()` is among them."""
    space = get_space(name)
    corners = space.smallest_per_mixer()
    mixers = [m for m in MIXERS if any(m in s.mixers for s in space.stages)]
    assert len(corners) == len(mixers)
    lo, _ = space.flops_range()
    for mixer, arch in zip(mixers, corners):
        space.validate(arch)
        assert arch.resolution == space.resolution.min
        assert {layer.mixer for s in arch.stages for layer in s.layers} == {mixer}
        for stage, s in zip(space.stages, arch.stages):
            assert (s.width, s.depth) == (stage.width.min, stage.depth.min)
        assert space.flops(arch) >= lo
    assert space.smallest() in corners


def _tiny_space() -> SearchSpace:
    return SearchSpace(name="tiny", modality="image", resolution=Choice(8, 16),
                       stages=[Stage(depth=Choice(1, 2), width=Choice(16, 32),
                                     mixers=("conv", "attention"), kernel_size=Choice(3, 5))],
                       in_channels=1, patch_size=4, num_outputs=3, head_dim=8)


def test_size_matches_enumeration():
    space = _tiny_space()
    stage = space.stages[0]
    options = stage.layer_options()
    archs = set()
    for r, d, w in itertools.product(space.resolution, stage.depth, stage.width):
        for layers in itertools.product(options, repeat=d):
            archs.add(Arch(r, (StageArch(d, w, layers),)))
    assert space.size() == len(archs) == 2 * 2 * (3 + 9)


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown search space 'nope'"):
        get_space("nope")
    with pytest.raises(ValueError, match="no option"):
        get_space("hybrid_vit_tiny", widthz=3)

    @register_space(name="test_tiny_space")
    def factory():
        return _tiny_space()

    assert get_space("test_tiny_space").size() == 48
    with pytest.raises(ValueError, match="already registered"):
        register_space(lambda: _tiny_space(), name="test_tiny_space")


def test_invalid_space_declarations():
    with pytest.raises(ValueError, match="mixers"):
        Stage(depth=1, width=16, mixers=("lstm",))
    with pytest.raises(ValueError, match="kernel_size"):
        Stage(depth=1, width=16, kernel_size=Choice(2, 3))
    with pytest.raises(ValueError, match="head size"):
        SearchSpace(name="x", modality="image", resolution=16,
                    stages=[Stage(depth=1, width=Choice(20))], head_dim=16)
    with pytest.raises(ValueError, match="patch_size"):
        SearchSpace(name="x", modality="image", resolution=18,
                    stages=[Stage(depth=1, width=16)], head_dim=16)
    with pytest.raises(ValueError, match="modality"):
        SearchSpace(name="x", modality="audio", resolution=16, stages=[Stage(depth=1, width=16)])


def test_overrides_change_the_space():
    space = get_space("hybrid_vit_tiny", in_channels=1, resolutions=(16, 28), num_classes=7)
    arch = space.largest()
    assert arch.resolution == 28
    assert space.example_input(arch, 3).shape == (3, 1, 28, 28)
    assert space.layers(arch)[-1].num_outputs == 7


def test_example_input_sequences():
    space = get_space("hybrid_lm_tiny")
    arch = space.sample(np.random.default_rng(0))
    x = space.example_input(arch, 2)
    assert x.shape == (2, arch.resolution)
    assert int(x.max()) < space.vocab_size


def test_spaces_and_choices_survive_pickling():
    """Spaces travel to Ray workers and subprocesses by pickle; a Choice is rebuilt from its
    values (it forbids attribute writes, so the default slot pickling cannot restore it)."""
    import pickle

    from search_spaces import Choice, get_space

    choice = Choice(3, 1, 2)
    assert pickle.loads(pickle.dumps(choice)) == choice
    space = get_space("hybrid_vit_tiny")
    again = pickle.loads(pickle.dumps(space))
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    assert [space.sample(rng_a).key() for _ in range(5)] == [
        again.sample(rng_b).key() for _ in range(5)]


def test_image_space_mixers_argument_narrows_every_layer_and_the_supernet():
    """`hybrid_vit_tiny(mixers=...)` (the MNIST / CIFAR studies drop the SSM): sampled,
    largest and smallest archs hold only those mixers, and the supernet allocates no weights
    for the others; the default keeps all four (same space as before the argument)."""
    from nas.supernet import Supernet, space_fingerprint

    narrowed = get_space("hybrid_vit_tiny", in_channels=1, stems=("conv_s2",),
                         resolutions=(24, 28), mixers=("attention", "glu_mlp", "conv"))
    rng = np.random.default_rng(0)
    archs = [narrowed.largest(), narrowed.smallest()] + [narrowed.sample(rng) for _ in range(50)]
    used = {layer.mixer for arch in archs for stage in arch.stages for layer in stage.layers}
    assert used == {"attention", "glu_mlp", "conv"}
    assert all(arch.stem == "conv_s2" and arch.resolution in (24, 28) for arch in archs)
    names = [name for name, _ in Supernet(narrowed).named_parameters()]
    assert names and not any("ssm" in name.lower() for name in names)
    assert space_fingerprint(get_space("hybrid_vit_tiny")) == space_fingerprint(
        get_space("hybrid_vit_tiny", mixers=MIXERS))
    with pytest.raises(ValueError, match="Stage.mixers"):
        get_space("hybrid_vit_tiny", mixers=("mamba",))


@pytest.mark.parametrize("name", ["hybrid_lm_tiny", "hybrid_lm_small"])
def test_sequence_space_mixers_argument(name):
    narrowed = get_space(name, mixers=("attention", "glu_mlp"))
    rng = np.random.default_rng(1)
    archs = [narrowed.largest(), narrowed.smallest()] + [narrowed.sample(rng) for _ in range(30)]
    used = {layer.mixer for arch in archs for stage in arch.stages for layer in stage.layers}
    assert used == {"attention", "glu_mlp"}
    from nas.supernet import space_fingerprint

    assert space_fingerprint(get_space(name, mixers=MIXERS)) == space_fingerprint(get_space(name))
