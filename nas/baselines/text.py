"""GPT-style character-level transformers: the hand-designed baselines of the sequence side.

A decoder-only transformer as in GPT-2 / nanoGPT, written out in one readable file: learned
token and position embeddings, ``n_layer`` pre-norm blocks (causal multi-head
self-attention, then a 4x GELU MLP, each a residual branch with dropout), a final
LayerNorm and an LM head tied to the token embedding. ``GPT_BASELINES`` holds nanoGPT's
shakespeare-char model (6 layers x 384, 6 heads, dropout 0.2, 10.8 M parameters) and
smaller ones that span the latency range of a searched `hybrid_lm_small` front.

`fit_lm` trains any next-token model stand-alone the way the supernet is trained: AdamW
(no decay on norms, biases and embeddings' 1-D params), linear warm-up then cosine,
gradient clipping, bf16 autocast on CUDA, and the very same random-offset windows (a
`TextStream` drawn per ``(seed, step)``), keeping the weights with the best validation
loss when a validation split is given. Torch only.

Example::

    model = build_text_baseline("gpt_6x384", seed=0)
    fit = fit_lm(model, train=data.stream, recipe=FitRecipe(steps=5000, batch_size=64,
                 lr=1e-3, weight_decay=0.1, warmup_steps=200, min_lr_ratio=0.1),
                 seed=0, device="cuda", val=(data.val.x, data.val.y))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.data.splits import TextStream
from nas.evaluation import evaluate_model, task_loss
from nas.training.config import TrainConfig
from nas.training.standalone import FitRecipe
from nas.training.trainer import lr_factor

__all__ = ["GPT", "GPT_BASELINES", "GPTConfig", "LMFit", "build_text_baseline", "fit_lm"]


@dataclass(frozen=True)
class GPTConfig:
    """Shape of one GPT: ``n_layer`` blocks of width ``n_embd`` split into ``n_head`` heads,
    reading up to ``context`` tokens of a ``vocab_size`` vocabulary; ``dropout`` on the
    embeddings, the attention weights and every residual branch (training only)."""

    n_layer: int
    n_head: int
    n_embd: int
    context: int = 256
    vocab_size: int = 256
    dropout: float = 0.2
    bias: bool = False

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "context", "vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name}: must be an int >= 1, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd {self.n_embd} is not a multiple of n_head "
                             f"{self.n_head}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"GPTConfig.dropout: must be in [0, 1), got {self.dropout!r}")


# nanoGPT's shakespeare-char model, then smaller ones down to the cheapest searched subnets
GPT_BASELINES: dict[str, GPTConfig] = {
    "gpt_6x384": GPTConfig(n_layer=6, n_head=6, n_embd=384, dropout=0.2),
    "gpt_4x256": GPTConfig(n_layer=4, n_head=4, n_embd=256, dropout=0.2),
    "gpt_2x192": GPTConfig(n_layer=2, n_head=3, n_embd=192, dropout=0.1),
}


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, C) -> (B, T, C)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)                       # 3 x (B, T, C)
        heads = (B, T, self.n_head, C // self.n_head)
        q, k, v = (t.view(heads).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, C)                       # heads side by side
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    """Position-wise C -> 4C -> C with a GELU."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, C) -> (B, T, C)."""
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, C) -> (B, T, C)."""
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Decoder-only transformer LM: token ids (B, T) -> next-token logits (B, T, vocab)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos = nn.Embedding(config.context, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied input / output embedding
        self.apply(self._init)
        for name, p in self.named_parameters():  # residual projections: GPT-2's scaled init
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: Tensor) -> Tensor:
        """idx (B, T) int64 token ids, T <= context -> logits (B, T, vocab)."""
        B, T = idx.shape
        if T > self.config.context:
            raise ValueError(f"GPT: {T} tokens exceed the context of {self.config.context}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok(idx) + self.pos(pos))                 # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))                               # (B, T, vocab)


def build_text_baseline(name: str, *, seed: int = 0, context: int | None = None,
                        vocab_size: int | None = None, dropout: float | None = None) -> GPT:
    """The baseline ``name`` of `GPT_BASELINES` initialised from ``seed`` (the caller's RNG
    is left alone); ``context`` / ``vocab_size`` / ``dropout`` replace its defaults."""
    if name not in GPT_BASELINES:
        raise ValueError(f"unknown text baseline {name!r}; known: {sorted(GPT_BASELINES)}")
    base = GPT_BASELINES[name]
    config = GPTConfig(n_layer=base.n_layer, n_head=base.n_head, n_embd=base.n_embd,
                       context=base.context if context is None else context,
                       vocab_size=base.vocab_size if vocab_size is None else vocab_size,
                       dropout=base.dropout if dropout is None else dropout, bias=base.bias)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT(config)


@dataclass
class LMFit:
    """A finished `fit_lm`: the model (eval mode, best weights loaded), the step whose
    weights it holds, their validation loss (None without ``val``) and the mean training
    loss of the last tenth of the steps."""

    model: nn.Module
    best_step: int
    best_val_loss: float | None
    final_train_loss: float


def fit_lm(model: nn.Module, *, train: TextStream | tuple[Tensor, Tensor], recipe: FitRecipe,
           seed: int, device: str | torch.device = "cpu",
           val: tuple[Tensor, Tensor] | None = None, eval_every: int | None = None,
           eval_batch_size: int = 256,
           on_step: Callable[[int, Tensor], None] | None = None) -> LMFit:
    """Train a next-token model ``(B, T) -> (B, T, V)`` in place for ``recipe.steps``.

    ``train`` is a `TextStream` (step s: ``recipe.batch_size`` windows at the offsets drawn
    from ``(seed, s)``, the supernet's own batches when ``seed`` is its training seed) or
    fixed windows ``(x (N, T), y (N, T))`` (a seeded permutation per epoch). With ``val``,
    the model is scored every ``eval_every`` steps (default: a tenth of the run) and at
    the end, and the best weights are kept. ``on_step(step, loss)`` gets the detached loss.
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("fit_lm on 'cuda' but no CUDA device is available")
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every: must be >= 1, got {eval_every}")
    model = model.to(device).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    fused: dict[str, Any] = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr, **fused)
    schedule = TrainConfig(steps=recipe.steps, warmup_steps=recipe.warmup_steps,
                           min_lr_ratio=recipe.min_lr_ratio)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, schedule))
    batch = _batcher(train, recipe.batch_size, seed, device)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else nullcontext())
    every = eval_every or max(1, recipe.steps // 10)
    best: dict = {"step": 0, "loss": None, "state": None}
    tail, tail_from = [], recipe.steps - max(1, recipe.steps // 10)

    def score(step: int) -> None:
        assert val is not None  # called only with a validation split
        loss = evaluate_model(model, val[0], val[1], batch_size=eval_batch_size,
                              device=device).loss
        model.train()
        if best["loss"] is None or loss < best["loss"]:
            best.update(step=step, loss=loss,
                        state={k: v.detach().clone() for k, v in model.state_dict().items()})

    for step in range(recipe.steps):
        xb, yb = batch(step)
        with autocast:
            loss = task_loss(model(xb), yb, label_smoothing=recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        sched.step()
        if step >= tail_from:
            tail.append(loss.detach().float())
        if on_step is not None:
            on_step(step + 1, loss.detach())
        if val is not None and ((step + 1) % every == 0 or step + 1 == recipe.steps):
            score(step + 1)
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    else:
        best["step"] = recipe.steps
    final = float(torch.stack(tail).mean()) if tail else float("nan")
    return LMFit(model=model.eval(), best_step=best["step"], best_val_loss=best["loss"],
                 final_train_loss=final)


def _batcher(train: TextStream | tuple[Tensor, Tensor], batch_size: int, seed: int,
             device: torch.device) -> Callable[[int], tuple[Tensor, Tensor]]:
    """``step -> (x, y)`` int64 ``(batch_size, T)`` on ``device``."""
    if isinstance(train, TextStream):
        stream = train.to(device)
        return lambda step: stream.take(stream.offsets(step, batch_size, seed=seed))
    if not (isinstance(train, (tuple, list)) and len(train) == 2):
        raise ValueError(f"train: expected a TextStream or (x, y) tensors, got "
                         f"{type(train).__name__}")
    x, y = train[0].to(device), train[1].to(device)
    n = x.shape[0]
    if n < batch_size:
        raise ValueError(f"training split has {n} windows, fewer than batch_size {batch_size}")
    per_epoch, gen = n // batch_size, torch.Generator().manual_seed(seed)
    order: list[Tensor] = []

    def take(step: int) -> tuple[Tensor, Tensor]:
        offset = step % per_epoch
        if offset == 0 or not order:  # a new epoch: a fresh permutation (drop_last)
            order[:] = [torch.randperm(n, generator=gen).to(device)]
        idx = order[0][offset * batch_size:(offset + 1) * batch_size]
        return x[idx], y[idx]

    return take
