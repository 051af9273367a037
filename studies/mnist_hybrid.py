"""MNIST (60k train PNG strips + 10k IDX test from the shared data) on the hybrid image space.

The space reaches the native 28 x 28 and searches the stem (4 x 4 patches, or an
overlapping 3 x 3 convolution at stride 1 or 2), so it holds small conv nets as well as
patch transformers; the recipe regularizes (random translation by up to 2 pixels, label
smoothing, stochastic depth on the teacher), as a hand-designed MNIST net would be trained.
"""

from nas.study import DataConfig, Study, TrainConfig

study = Study(
    name="mnist_hybrid",
    space="hybrid_vit_tiny",
    space_overrides={"in_channels": 1, "num_classes": 10, "resolutions": (16, 20, 24, 28),
                     "stems": ("patch", "conv_s1", "conv_s2"),
                     "widths": ((16, 32), (32, 48, 64), (48, 64, 96)),
                     "depths": ((1, 2), (1, 2), (1, 2, 3))},
    data=DataConfig(source="mnist", seed=0),
    training=TrainConfig(steps=3000, batch_size=256, lr=2e-3, weight_decay=0.05,
                         warmup_steps=150, num_random=2, bins=8, eval_every=500,
                         eval_batches=10, checkpoint_every=500, device="cuda",
                         augment="translate", augment_pad=2, label_smoothing=0.1,
                         drop_path=0.1),
)
