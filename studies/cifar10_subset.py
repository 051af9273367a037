"""The CIFAR-10 subset (4,000 train / 1,000 test PNG strips) on the hybrid image space.

Native 32 x 32 inputs through an overlapping stride-2 3 x 3 convolution stem (resolutions 24
and 32: first-stage grids of 12 x 12 and 16 x 16), attention or depthwise convolution beside
GLU-MLP layers, and the usual CIFAR recipe: random crops of the 4-pixel-padded image with
horizontal flips, label smoothing and stochastic depth (4,000 images overfit without them).

The space is narrowed as `studies/mnist_hybrid.py` is, for the reason measured there (weight
sharing across token grids from 4 x 4 to 32 x 32 cost random subnets 7-8 points on MNIST;
`benchmarks/stem_ablation.py`, 2026-12-03). On CIFAR itself the narrowing is not yet
measured: the template's stems at 16-32 remain one `space_overrides` away. The sandwich's
bottom rotates over each mixer's corner and students take half their loss from the labels,
as in `studies/mnist_hybrid.py`, where this was measured; on CIFAR it is not yet measured.
"""

from nas.study import DataConfig, Study, TrainConfig

study = Study(
    name="cifar10_subset",
    space="hybrid_vit_tiny",
    space_overrides={"in_channels": 3, "num_outputs": 10, "resolutions": (24, 32),
                     "stems": ("conv_s2",), "mixers": ("attention", "glu_mlp", "conv"),
                     "widths": ((16, 32, 48), (32, 64, 96), (64, 96, 128)),
                     "depths": ((1, 2), (1, 2), (1, 2, 3))},
    data=DataConfig(source="cifar10_subset", seed=0, val_size=1000),
    training=TrainConfig(steps=2000, batch_size=128, lr=2e-3, weight_decay=0.05,
                         warmup_steps=100, num_random=2, bins=8, eval_every=500,
                         eval_batches=None, checkpoint_every=500, device="cuda",
                         augment="crop_flip", augment_pad=4, label_smoothing=0.1,
                         drop_path=0.1, smallest="per_mixer", distill_weight=0.5),
)
