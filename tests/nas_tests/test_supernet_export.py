"""For every registered space and its smallest, largest and 5 random archs: the supernet runs,
the exported model equals it, and the counts equal what the exported model has / does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from nas import Supernet, export_subnet
from search_spaces import get_space, list_spaces

_NETS: dict[str, Supernet] = {}


def _net(name: str) -> Supernet:
    if name not in _NETS:
        torch.manual_seed(0)
        _NETS[name] = Supernet(get_space(name)).eval()
    return _NETS[name]


def _archs(name: str):
    space = get_space(name)
    rng = np.random.default_rng(7)
    return [("smallest", space.smallest()), ("largest", space.largest())] + [
        (f"random{i}", space.sample(rng)) for i in range(5)]


CASES = [(name, tag, arch) for name in list_spaces() for tag, arch in _archs(name)]


@pytest.mark.parametrize("name, tag, arch", CASES, ids=[f"{n}-{t}" for n, t, _ in CASES])
@torch.no_grad()
def test_export_equals_supernet_and_counts(name, tag, arch):
    net = _net(name)
    space = net.space
    x = space.example_input(arch, 3, generator=torch.Generator().manual_seed(1))
    y_super = net(x, arch)
    model = export_subnet(net, arch)
    y_export = model(x)
    expected_shape = (3, space.num_outputs) if space.modality == "image" else (
        3, arch.resolution, space.vocab_size)
    assert y_super.shape == expected_shape
    assert torch.isfinite(y_super).all()
    assert (y_super - y_export).abs().max().item() <= 1e-5
    assert space.params(arch) == sum(p.numel() for p in model.parameters())
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x[:1])
    measured = counter.get_total_flops()
    assert abs(space.flops(arch) - measured) <= 0.01 * measured


def _with_stem(arch, stem):
    return arch.__class__(arch.resolution, arch.stages, stem=stem)


STEM_CASES = [(stem, tag) for stem in get_space("hybrid_vit_tiny").stems()
              for tag in ("smallest", "largest", "random")]


@pytest.mark.parametrize("stem, tag", STEM_CASES, ids=[f"{s}-{t}" for s, t in STEM_CASES])
@torch.no_grad()
def test_every_stem_exports_exactly_and_counts(stem, tag):
    """Each stem choice (patch, conv stride 1, conv stride 2) at the smallest, largest and a
    random arch: export equals the supernet (1e-5), params and FLOPs equal the exported
    model's (FlopCounterMode), and the token grid follows the stem's stride."""
    net = _net("hybrid_vit_tiny")
    space = net.space
    base = {"smallest": space.smallest(), "largest": space.largest(),
            "random": space.sample(np.random.default_rng(11))}[tag]
    arch = space.validate(_with_stem(base, stem))
    x = space.example_input(arch, 3, generator=torch.Generator().manual_seed(2))
    model = export_subnet(net, arch)
    assert (net(x, arch) - model(x)).abs().max().item() <= 1e-5
    assert space.params(arch) == sum(p.numel() for p in model.parameters())
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x[:1])
    measured = counter.get_total_flops()
    assert abs(space.flops(arch) - measured) <= 0.01 * measured
    stem_spec = space.layers(arch)[0]
    side = {"patch": arch.resolution // space.patch_size,
            "conv_s1": arch.resolution, "conv_s2": -(-arch.resolution // 2)}[stem]
    assert stem_spec.grid == (side, side)
    with torch.no_grad():
        tokens = model.layers[0](x) if hasattr(model, "layers") else None
    if tokens is not None:
        assert tokens.shape == (3, side * side, arch.stages[0].width)


def test_stem_choice_is_validated_and_largest_uses_the_finest_stem():
    space = get_space("hybrid_vit_tiny")
    arch = space.largest()
    assert arch.stem == "conv_s1"  # most tokens: the strongest teacher
    with pytest.raises(ValueError, match="stem: 'conv_s3' not in"):
        space.validate(_with_stem(arch, "conv_s3"))
    with pytest.raises(ValueError, match="stem: None not in"):
        space.validate(_with_stem(arch, None))
    legacy = get_space("hybrid_vit_tiny", stems=())
    with pytest.raises(ValueError, match="has no stem choice"):
        legacy.validate(_with_stem(legacy.largest(), "patch"))
    # sampling covers every stem
    rng = np.random.default_rng(0)
    assert {space.sample(rng).stem for _ in range(60)} == set(space.stems())


@pytest.mark.parametrize("name", list_spaces())
def test_supernet_input_resizing(name):
    """Image inputs of another size are resized; longer sequences are cut to the context."""
    net = _net(name)
    space = net.space
    arch = space.smallest()
    if space.modality == "image":
        x = torch.randn(2, space.in_channels, space.resolution.max, space.resolution.max)
    else:
        x = torch.randint(0, space.vocab_size, (2, space.resolution.max))
    with torch.no_grad():
        assert (net(x, arch) - export_subnet(net, arch)(x)).abs().max() <= 1e-5


@pytest.mark.parametrize("name", list_spaces())
def test_params_grow_with_width(name):
    space = get_space(name)
    arch = space.smallest()
    stage = arch.stages[-1]
    wider = arch.__class__(arch.resolution, arch.stages[:-1] + (
        stage.__class__(stage.depth, space.stages[-1].width.max, stage.layers),), stem=arch.stem)
    assert space.params(wider) > space.params(arch)
    assert space.flops(wider) > space.flops(arch)


def test_invalid_arch_is_refused_before_anything_runs():
    net = _net("hybrid_vit_tiny")
    space = net.space
    arch = space.smallest()
    bad = arch.__class__(arch.resolution, (arch.stages[0].__class__(
        arch.stages[0].depth, 40, arch.stages[0].layers),) + arch.stages[1:], stem=arch.stem)
    x = space.example_input(arch, 1)
    with pytest.raises(ValueError, match=r"stages\[0\]\.width: 40"):
        net(x, bad)
    with pytest.raises(ValueError, match=r"stages\[0\]\.width"):
        export_subnet(net, bad)


def test_training_gradients_flow_to_shared_weights():
    torch.manual_seed(0)
    net = Supernet(get_space("hybrid_vit_tiny"))
    arch = net.space.smallest()
    x = net.space.example_input(arch, 2)
    net(x, arch).sum().backward()
    slot = net.stages[0][0]["conv"]
    grad = slot.pw_weight.grad
    d = arch.stages[0].width
    assert grad[:d, :d].abs().sum() > 0
    assert grad[d:].abs().sum() == 0  # untouched channels get no gradient
