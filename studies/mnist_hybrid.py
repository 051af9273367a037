"""MNIST (60k train PNG strips + 10k IDX test from the shared data) on the hybrid image space.

The space reaches the native 28 x 28 through an overlapping stride-2 3 x 3 convolution stem
(resolutions 24 and 28, so the first stage sees a 12 x 12 or 14 x 14 token grid) and mixes
tokens with attention or depthwise convolution beside GLU-MLP layers, so it holds small conv
nets as well as small hybrid transformers; the recipe regularizes (random translation by up
to 2 pixels, label smoothing, stochastic depth on the teacher), as a hand-designed MNIST net
would be trained.

Why this narrow a space (`benchmarks/stem_ablation.py`, H200, 2,400 steps, 2026-12-03,
inherited validation accuracy of 20 random subnets): the template's three stems at
resolutions 16-28 (grids 4 x 4 to 28 x 28) gave a random mean of 89.3 %; the stride-2 conv
stem at 24 / 28 gave 96.8 %, and without the SSM mixer 97.1 % (largest 99.1 %). Weight
sharing across very different token grids, and a mixer that images do not need, cost the
shared weights more than the extra choices bring.

Why ``smallest="per_mixer"`` and ``distill_weight=0.5`` (an H100 run
of 2026-12-07, 1,500 steps, seven recipes side by side, inherited validation accuracy; the
BENCHMARKS row "recipe variants" has the table): the fewest-FLOPs corner of this space is all
depthwise conv, but the CPU front's fastest members are all glu_mlp, which the plain sandwich
never trained (inherited 94.3-95.1 % against 98.8-99.0 % trained alone); rotating the
sandwich's bottom over each mixer's corner and giving every student half its loss from the
labels lifted them to 97.8-97.9 %, the smallest to 97.2 %, the random mean from 94.9 % to
96.9 % and the largest from 98.5 % to 99.0 %.
"""

from nas.study import DataConfig, Study, TrainConfig

study = Study(
    name="mnist_hybrid",
    space="hybrid_vit_tiny",
    space_overrides={"in_channels": 1, "num_outputs": 10, "resolutions": (24, 28),
                     "stems": ("conv_s2",), "mixers": ("attention", "glu_mlp", "conv"),
                     "widths": ((16, 32), (32, 48, 64), (48, 64, 96)),
                     "depths": ((1, 2), (1, 2), (1, 2, 3))},
    data=DataConfig(source="mnist", seed=0),
    training=TrainConfig(steps=3000, batch_size=256, lr=2e-3, weight_decay=0.05,
                         warmup_steps=150, num_random=2, bins=8, eval_every=500,
                         eval_batches=10, checkpoint_every=500, device="cuda",
                         augment="translate", augment_pad=2, label_smoothing=0.1,
                         drop_path=0.1, smallest="per_mixer", distill_weight=0.5),
)
