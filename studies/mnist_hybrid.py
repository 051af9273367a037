"""MNIST (60k train PNG strips + 10k IDX test from the shared data) on the hybrid image space."""

from nas.study import DataConfig, Study, TrainConfig

study = Study(
    name="mnist_hybrid",
    space="hybrid_vit_tiny",
    space_overrides={"in_channels": 1, "num_classes": 10, "resolutions": (16, 20, 24, 28)},
    data=DataConfig(source="mnist", seed=0),
    training=TrainConfig(steps=3000, batch_size=256, lr=2e-3, weight_decay=0.05,
                         warmup_steps=150, num_random=2, bins=8, eval_every=500,
                         eval_batches=10, checkpoint_every=500, device="cuda"),
)
