from __future__ import annotations

import pytest
import torch

from kernels import (
    DownsampleSpec,
    HeadSpec,
    MixerSpec,
    StemSpec,
    build_layer,
    layer_params,
    signature,
    spec_from_dict,
    spec_to_dict,
)

SPECS = [
    MixerSpec("attention", 32, 16, (4, 4), head_dim=8),
    MixerSpec("attention", 32, 10, None, head_dim=16),
    MixerSpec("glu_mlp", 24, 9, (3, 3), hidden=40),
    MixerSpec("ssm", 32, 16, (4, 4), head_dim=8, state_size=4),
    MixerSpec("ssm", 32, 70, None, head_dim=16, state_size=8),
    MixerSpec("conv", 16, 25, (5, 5), kernel_size=5),
    MixerSpec("conv", 16, 12, None, kernel_size=7),
    StemSpec("image", 16, 16, (4, 4), in_channels=3, patch_size=4, resolution=16),
    StemSpec("image", 16, 256, (16, 16), in_channels=3, resolution=16, stem="conv", stride=1),
    StemSpec("image", 16, 64, (8, 8), in_channels=3, resolution=16, stem="conv", stride=2),
    StemSpec("sequence", 16, 12, vocab_size=50),
    DownsampleSpec(16, 32, 25, (5, 5)),
    DownsampleSpec(16, 32, 12, None),
    HeadSpec("image", 32, 9, 10, (3, 3)),
    HeadSpec("sequence", 32, 12, 50),
]


@pytest.mark.parametrize("spec", SPECS, ids=[signature(s)[:60] for s in SPECS])
def test_build_run_count(spec, gen):
    layer = build_layer(spec)
    assert sum(p.numel() for p in layer.parameters()) == layer_params(spec)
    assert spec_from_dict(spec_to_dict(spec)) == spec
    if isinstance(spec, StemSpec):
        x = (torch.randn(2, 3, 16, 16, generator=gen) if spec.modality == "image"
             else torch.randint(0, 50, (2, 12), generator=gen))
    else:
        dim = spec.in_dim if isinstance(spec, DownsampleSpec) else spec.dim
        x = torch.randn(2, spec.tokens, dim, generator=gen)
    y = layer(x)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("spec", [s for s in SPECS if isinstance(s, MixerSpec) and s.causal])
def test_sequence_mixers_are_causal(spec, gen):
    layer = build_layer(spec).eval()
    x = torch.randn(1, spec.tokens, spec.dim, generator=gen)
    x2 = x.clone()
    t = spec.tokens // 2
    x2[:, t:] = torch.randn(1, spec.tokens - t, spec.dim, generator=gen)
    with torch.no_grad():
        assert torch.allclose(layer(x)[:, :t], layer(x2)[:, :t], atol=1e-6)


def test_bad_specs_raise():
    with pytest.raises(ValueError, match="mixer"):
        MixerSpec("lstm", 16, 4)
    with pytest.raises(ValueError, match="head_dim"):
        MixerSpec("attention", 20, 4, head_dim=16)
    with pytest.raises(ValueError, match="grid"):
        MixerSpec("conv", 16, 5, (2, 2), kernel_size=3)
    with pytest.raises(ValueError, match="kernel_size"):
        MixerSpec("conv", 16, 4, kernel_size=4)
    with pytest.raises(ValueError, match="kind"):
        spec_from_dict({"kind": "pool"})


def test_conv_stem_specs_are_checked_and_patch_signatures_unchanged():
    with pytest.raises(ValueError, match="stride"):
        StemSpec("image", 16, 64, (8, 8), in_channels=3, resolution=16, stem="conv", stride=0)
    with pytest.raises(ValueError, match=r"gives \(8, 8\)"):
        StemSpec("image", 16, 16, (4, 4), in_channels=3, resolution=16, stem="conv", stride=2)
    with pytest.raises(ValueError, match="stem must be one of"):
        StemSpec("image", 16, 16, (4, 4), in_channels=3, patch_size=4, resolution=16,
                 stem="pool")
    patch = StemSpec("image", 16, 16, (4, 4), in_channels=3, patch_size=4, resolution=16)
    assert '"stem":' not in signature(patch) and "stride" not in signature(patch)


@pytest.mark.parametrize("name, expected", [("patch", ("patch", 0)), ("conv_s1", ("conv", 1)),
                                            ("conv_s2", ("conv", 2))])
def test_parse_stem(name, expected):
    from kernels import parse_stem

    assert parse_stem(name) == expected


@pytest.mark.parametrize("name", ["conv", "conv_s0", "conv_sx", "patch4", ""])
def test_parse_stem_refuses(name):
    from kernels import parse_stem

    with pytest.raises(ValueError, match="stem"):
        parse_stem(name)


@pytest.mark.parametrize("batch, channels, side, stride", [(2, 3, 7, 2), (3, 5, 8, 1),
                                                           (1, 4, 5, 2), (4, 1, 28, 1)])
def test_patches3x3_equals_unfold_and_conv(batch, channels, side, stride, gen):
    """The strided-view im2col (one copy, any batch) against torch's F.unfold and conv2d,
    values and gradients, at odd and even sides."""
    import torch.nn.functional as F

    from kernels.stem import patches3x3

    x = torch.randn(batch, channels, side, side, dtype=torch.float64, generator=gen,
                    requires_grad=True)
    fast = patches3x3(x, stride)
    ref = F.unfold(x, 3, padding=1, stride=stride).transpose(1, 2)
    assert fast.shape == ref.shape
    assert torch.equal(fast, ref)
    from kernels.stem import _patches3x3_sliced

    assert torch.equal(_patches3x3_sliced(F.pad(x, (1, 1, 1, 1)), stride), ref)  # ONNX form
    g = torch.randn(fast.shape, dtype=torch.float64, generator=gen)
    (ga,) = torch.autograd.grad(fast, x, g)
    (gb,) = torch.autograd.grad(ref, x, g)
    assert torch.allclose(ga, gb, atol=1e-12)
    w = torch.randn(6, channels, 3, 3, dtype=torch.float64, generator=gen)
    conv = F.conv2d(x, w, stride=stride, padding=1).flatten(2).transpose(1, 2)
    assert torch.allclose(fast @ w.reshape(6, -1).T, conv, atol=1e-10)


@pytest.mark.parametrize("batch, channels, side, stride", [(2, 3, 7, 2), (3, 5, 8, 1),
                                                           (1, 4, 5, 2), (4, 1, 28, 2)])
def test_conv3x3_tokens_conv2d_path_equals_im2col_reference(batch, channels, side, stride, gen):
    """The CPU path (``F.conv2d``) against the im2col reference: values and the gradients of
    input, weight and bias, with the sliced (non-contiguous) weights an elastic supernet
    passes."""
    from kernels.stem import conv3x3_tokens

    x = torch.randn(batch, channels + 2, side, side, dtype=torch.float64, generator=gen)
    x = x[:, :channels].requires_grad_()
    full_w = torch.randn(9, channels + 2, 3, 3, dtype=torch.float64, generator=gen,
                         requires_grad=True)
    full_b = torch.randn(9, dtype=torch.float64, generator=gen, requires_grad=True)
    w, b = full_w[:6, :channels], full_b[:6]  # a supernet's width slices
    outs = [conv3x3_tokens(x, w, b, stride=stride, im2col=flag) for flag in (True, False)]
    assert outs[0].shape == outs[1].shape == (batch, (-(-side // stride)) ** 2, 6)
    assert torch.allclose(outs[0], outs[1], atol=1e-12)
    assert torch.equal(conv3x3_tokens(x, w, b, stride=stride), outs[1])  # CPU default
    g = torch.randn(outs[0].shape, dtype=torch.float64, generator=gen)
    grads = [torch.autograd.grad(o, (x, full_w, full_b), g) for o in outs]
    for ga, gb in zip(*grads):
        assert torch.allclose(ga, gb, atol=1e-11)
