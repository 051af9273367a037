"""The CIFAR-10 subset (4,000 train / 1,000 test PNG strips) on the hybrid image space.

Native 32 x 32 inputs, a searched stem (patches or an overlapping 3 x 3 convolution at
stride 1 or 2), and the usual CIFAR recipe: random crops of the 4-pixel-padded image with
horizontal flips, label smoothing and stochastic depth (4,000 images overfit without them).
"""

from nas.study import DataConfig, Study, TrainConfig

study = Study(
    name="cifar10_subset",
    space="hybrid_vit_tiny",
    space_overrides={"in_channels": 3, "num_classes": 10, "resolutions": (16, 24, 32),
                     "stems": ("patch", "conv_s1", "conv_s2"),
                     "widths": ((16, 32, 48), (32, 64, 96), (64, 96, 128)),
                     "depths": ((1, 2), (1, 2), (1, 2, 3))},
    data=DataConfig(source="cifar10_subset", seed=0, val_size=1000),
    training=TrainConfig(steps=2000, batch_size=128, lr=2e-3, weight_decay=0.05,
                         warmup_steps=100, num_random=2, bins=8, eval_every=500,
                         eval_batches=None, checkpoint_every=500, device="cuda",
                         augment="crop_flip", augment_pad=4, label_smoothing=0.1,
                         drop_path=0.1),
)
