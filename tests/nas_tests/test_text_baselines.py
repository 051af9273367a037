"""GPT baselines of the sequence side and their stand-alone loop on random windows."""

from __future__ import annotations

import pytest
import torch

from nas.baselines import GPT_BASELINES, GPTConfig, build_text_baseline, fit_lm
from nas.baselines.text import GPT, _batcher
from nas.data import load_text
from nas.evaluation import evaluate_model
from nas.training.standalone import FitRecipe


def test_gpt_sizes_match_the_reference():
    params = {n: sum(p.numel() for p in build_text_baseline(n).parameters())
              for n in GPT_BASELINES}
    # nanoGPT's shakespeare-char model: 6 x (12 C^2 + two LayerNorms) + tied 256 x C
    # embedding + 256 positions + the final LayerNorm
    assert params["gpt_6x384"] == 6 * (12 * 384**2 + 2 * 384) + 2 * 256 * 384 + 384
    assert params["gpt_6x384"] > params["gpt_4x256"] > params["gpt_2x192"]
    assert GPT_BASELINES["gpt_6x384"].dropout == 0.2


def test_gpt_is_causal_and_deterministic_in_eval():
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, context=16, dropout=0.3)).eval()
    x = torch.randint(0, 256, (3, 16), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, 9] = (y[:, 9] + 1) % 256
    with torch.no_grad():
        a, b = model(x), model(y)
        assert a.shape == (3, 16, 256)
        assert torch.equal(a[:, :9], b[:, :9]) and not torch.equal(a[:, 9:], b[:, 9:])
        assert torch.equal(model(x), a)  # dropout is off in eval mode
        assert torch.allclose(model(x[:, :7]), a[:, :7], atol=1e-6)  # shorter input: a prefix
    with pytest.raises(ValueError, match="exceed the context of 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_bad_baseline_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown text baseline 'gpt_9x9'"):
        build_text_baseline("gpt_9x9")
    with pytest.raises(ValueError, match="not a multiple of n_head"):
        GPTConfig(n_layer=1, n_head=5, n_embd=32)
    with pytest.raises(ValueError, match="dropout"):
        GPTConfig(n_layer=1, n_head=1, n_embd=32, dropout=1.0)
    recipe = FitRecipe(steps=2, batch_size=4, lr=1e-3, weight_decay=0.0, warmup_steps=0)
    with pytest.raises(ValueError, match="train: expected a TextStream"):
        fit_lm(build_text_baseline("gpt_2x192", context=8), train="text", recipe=recipe, seed=0)


def test_fit_lm_learns_on_the_supernets_windows_and_keeps_the_best():
    data = load_text(seq_len=16, max_bytes=30_000)
    stream = data.stream
    take = _batcher(stream, 8, 3, torch.device("cpu"))
    for step in (0, 5):  # the very batches the supernet trainer draws with the same seed
        want = stream.take(stream.offsets(step, 8, seed=3))
        got = take(step)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    model = build_text_baseline("gpt_2x192", seed=0, context=16, dropout=0.0)
    val = (data.val.x, data.val.y)
    before = evaluate_model(model, *val).loss
    recipe = FitRecipe(steps=30, batch_size=16, lr=3e-3, weight_decay=0.1, warmup_steps=3)
    fit = fit_lm(model, train=stream, recipe=recipe, seed=3, val=val, eval_every=10)
    assert not fit.model.training and 1 <= fit.best_step <= 30 and fit.best_step % 10 == 0
    after = evaluate_model(fit.model, *val).loss
    assert abs(after - fit.best_val_loss) < 1e-6 and after < before - 0.5
    assert fit.final_train_loss < before
