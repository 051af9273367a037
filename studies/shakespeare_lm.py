"""Tiny-shakespeare, byte-level, on the hybrid causal LM space (GPU-sized)."""

from nas.data import default_data_root
from nas.study import DataConfig, Study, TrainConfig

study = Study(
    name="shakespeare_lm",
    space="hybrid_lm_tiny",
    data=DataConfig(source="text", seq_len=256,
                    path=str(default_data_root() / "text" / "tinyshakespeare_input.txt")),
    training=TrainConfig(steps=6000, batch_size=64, lr=2e-3, weight_decay=0.1,
                         warmup_steps=200, num_random=2, bins=8, eval_every=1000,
                         eval_batches=None, checkpoint_every=500, device="cuda"),
)
