"""Hand-designed baselines and the shared stand-alone loop: shapes, sizes, learning, seeds."""

from __future__ import annotations

import pytest
import torch

from nas.baselines import IMAGE_BASELINES, build_image_baseline
from nas.evaluation import evaluate_model
from nas.training.standalone import FitRecipe, fit_model


@pytest.mark.parametrize("name", sorted(IMAGE_BASELINES))
@pytest.mark.parametrize("channels, resolution", [(1, 28), (3, 32)])
def test_baselines_run_at_native_size_and_are_small(name, channels, resolution):
    model = build_image_baseline(name, in_channels=channels, num_classes=10,
                                 resolution=resolution, seed=0)
    x = torch.randn(3, channels, resolution, resolution, generator=torch.Generator().manual_seed(0))
    assert model.eval()(x).shape == (3, 10)
    params = sum(p.numel() for p in model.parameters())
    assert 40_000 < params < 90_000  # LeNet-5 scale: the competition is small nets
    again = build_image_baseline(name, in_channels=channels, num_classes=10,
                                 resolution=resolution, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 again.state_dict().values()))


def test_lenet5_has_the_classic_size():
    model = build_image_baseline("lenet5", in_channels=1, num_classes=10, resolution=28)
    assert sum(p.numel() for p in model.parameters()) == 61_706


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 28, 28, generator=g)
    for c in range(4):
        r, col = divmod(c, 2)
        x[y == c, :, 14 * r:14 * r + 14, 14 * col:14 * col + 14] += 1.0
    return x, y


def test_fit_model_learns_with_augmentation_and_is_seeded():
    recipe = FitRecipe(steps=40, batch_size=32, lr=3e-3, weight_decay=0.01, warmup_steps=4,
                       augment="translate", augment_pad=2, label_smoothing=0.1)
    train, test = _blobs(256, 0), _blobs(128, 1)
    runs = []
    for _ in range(2):
        model = build_image_baseline("lenet5", in_channels=1, num_classes=4, resolution=28)
        runs.append(fit_model(model, train=train, recipe=recipe, seed=3))
    a, b = (r.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same weights
    assert evaluate_model(runs[0], *test, batch_size=64).accuracy > 0.9
    with pytest.raises(ValueError, match="training.augment"):
        FitRecipe(steps=4, batch_size=8, lr=1e-3, weight_decay=0.0, warmup_steps=0,
                  augment="cutmix")
    with pytest.raises(ValueError, match="baseline: 'alexnet'"):
        build_image_baseline("alexnet", in_channels=1, num_classes=10, resolution=28)
