"""The CIFAR-10 subset (4,000 train / 1,000 test PNG strips) on the hybrid image space."""

from nas.study import DataConfig, Study, TrainConfig

study = Study(
    name="cifar10_subset",
    space="hybrid_vit_tiny",
    space_overrides={"in_channels": 3, "num_classes": 10, "resolutions": (16, 24, 32)},
    data=DataConfig(source="cifar10_subset", seed=0, val_size=1000),
    training=TrainConfig(steps=2000, batch_size=128, lr=2e-3, weight_decay=0.05,
                         warmup_steps=100, num_random=2, bins=8, eval_every=500,
                         eval_batches=None, checkpoint_every=500, device="cuda"),
)
