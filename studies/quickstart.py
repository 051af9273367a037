"""Quickstart: scikit-learn's bundled digits (no download), a small hybrid image space, CPU."""

from nas.study import (
    AuditConfig,
    DataConfig,
    EvaluationConfig,
    ProfilingConfig,
    SearchConfig,
    Study,
    TrainConfig,
)

study = Study(
    name="quickstart",
    space="hybrid_vit_tiny",
    space_overrides={
        "in_channels": 1,
        "num_outputs": 10,
        "resolutions": (8, 12, 16),
        "patch_size": 2,
        "widths": ((16, 24, 32), (32, 48, 64)),
        "depths": ((1, 2), (1, 2, 3)),
        "head_dim": 8,
        # 2x2 patches or an overlapping 3x3 conv at stride 2 (the same token grid)
        "stems": ("patch", "conv_s2"),
    },
    data=DataConfig(source="digits", seed=0),
    training=TrainConfig(steps=400, batch_size=64, lr=3e-3, warmup_steps=20, eval_every=100,
                         checkpoint_every=50, num_random=2, bins=6, panel_size=3,
                         augment="translate", augment_pad=1, label_smoothing=0.1),
    evaluation=EvaluationConfig(n_archs=150, batch_size=512, seed=0),
    # blocks of timings spread over >= 3 s (the default 8 s / 20 s suits a real target box;
    # the quickstart is a tour and keeps the whole study under 5 minutes on 2 cores)
    profiling=ProfilingConfig(min_block_s=3.0),
    search=SearchConfig(budget=60, population=12, objectives=("accuracy", "latency_ms"), seed=0),
    # stand-alone runs of `nas audit`: a quarter of the supernet's 400 steps (CPU-sized)
    audit=AuditConfig(budget=0.25),
)
