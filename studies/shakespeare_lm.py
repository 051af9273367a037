"""Tiny-shakespeare, byte-level, on the reference-size hybrid causal LM space (one GPU).

`hybrid_lm_small` (up to 8 layers of attention / GLU-MLP / SSM / conv at width up to 384)
at the full 256-byte context, so every subnet is scored on the same 256 positions as the
GPT baselines of `benchmarks/lm_gpu.py`. Trained as language models are trained: batches of
random-offset windows over the train stream (`DataConfig.windows="random"`), AdamW with
warm-up + cosine 1e-3 -> 1e-4, the first 40 % of the schedule training the largest subnet
alone (`largest_first`: from the first step on, the sampled subnets kept every subnet,
the largest included, at the bigram level, about 2.45 nats / byte, for 1,800 steps; with the
largest trained first it reached 1.41), dropout 0.2 on the residual branches and the byte
embedding of the label-trained subnets (0.1 let the largest over-fit within 4,000 steps;
dropped at export), and `nas run` keeps the weights with the best validation-panel loss
(`best.pt`). Latency is profiled on the GPU in CUDA-graph mode; the
search trades the validation loss (nats / byte) against it.
"""

from nas.data import default_data_root
from nas.study import DataConfig, ProfilingConfig, SearchConfig, Study, TrainConfig

study = Study(
    name="shakespeare_lm",
    space="hybrid_lm_small",
    space_overrides={"context_lengths": (256,)},
    data=DataConfig(source="text", seq_len=256, windows="random",
                    path=str(default_data_root() / "text" / "tinyshakespeare_input.txt")),
    training=TrainConfig(steps=5000, batch_size=64, lr=1e-3, weight_decay=0.1,
                         warmup_steps=200, min_lr_ratio=0.1, num_random=2, bins=8,
                         eval_every=250, eval_batches=None, eval_batch_size=256,
                         checkpoint_every=500, device="cuda", dropout=0.2,
                         largest_first=0.4),
    profiling=ProfilingConfig(device="cuda", mode="cuda_graph", batch_size=1),
    search=SearchConfig(objectives=("loss", "latency_ms")),
)
