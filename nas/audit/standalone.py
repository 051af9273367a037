"""Stand-alone training of one subnet from scratch: the reference an audit ranks against.

The model is the arch's exported form (`nas.export.export_subnet` of a freshly initialised
`Supernet`, i.e. a `kernels.StaticModel` holding the supernet's own initialisation slice),
so it is exactly the network a user would deploy, trained alone on labels with
`StandaloneRecipe`. A recipe with stochastic depth or dropout trains the arch inside that
fresh supernet instead (`RegularizedSubnet`: the masks need the supernet's forward) and
scores its export, which equals it in eval mode. Torch only: this runs on a bare GPU box.

Example::

    recipe = StandaloneRecipe.from_training(study.training, budget=0.5)
    result = train_standalone(space=space, arch=arch, seed=0, recipe=recipe,
                              train=(data.train.x, data.train.y),
                              test=(data.test.x, data.test.y), device="cuda")
    result.test_accuracy
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nas.audit.config import StandaloneRecipe
from nas.data.splits import TextStream
from nas.evaluation import evaluate_model
from nas.export.model import export_subnet
from nas.supernet import Regularizer, Supernet, step_generator
from nas.supernet.regularize import STREAM_DROP, STREAM_SAMPLE_DROP
from nas.training.standalone import FitRecipe, fit_model
from search_spaces import Arch, SearchSpace


@dataclass(frozen=True)
class StandaloneJob:
    """One stand-alone run to do: an arch (JSON, so it travels to any worker) and a seed."""

    arch_json: str
    seed: int

    @property
    def arch(self) -> Arch:
        return Arch.from_json(self.arch_json)


@dataclass(frozen=True)
class StandaloneResult:
    """A finished run: test accuracy in [0, 1] and mean loss, the mean training loss of its
    last tenth of steps, wall seconds and where it ran."""

    arch_key: str
    seed: int
    test_accuracy: float
    test_loss: float
    final_train_loss: float
    steps: int
    seconds: float
    device: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def initial_supernet(space: SearchSpace, *, seed: int) -> Supernet:
    """A fresh supernet of ``space`` initialised from ``seed``, on the CPU; the caller's
    global RNG state is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Supernet(space)


def initial_model(space: SearchSpace, arch: Arch, *, seed: int):
    """The arch's `StaticModel` with the supernet's initialisation drawn from ``seed``, on
    the CPU, in train mode."""
    return export_subnet(initial_supernet(space, seed=seed), arch).train()


class RegularizedSubnet(nn.Module):
    """One arch of a supernet, trained alone with stochastic depth / dropout.

    ``forward(x)``: x (B, C, H, W) images or (B, T) token ids -> the arch's logits. In train
    mode each call draws its masks from ``(seed, call index)`` (`step_generator`, as the
    supernet trainer does per step), so a run is reproducible; in eval mode it is the plain
    forward, which `export_subnet(net, arch)` reproduces. Why: a stand-alone reference must
    be regularized as the supernet's label-trained subnets are, or large archs over-fit and
    the audit compares against a weaker network than the recipe would give."""

    def __init__(self, net: Supernet, arch: Arch, *, drop_path: float, dropout: float,
                 seed: int) -> None:
        super().__init__()
        net.space.validate(arch)
        self.net, self.arch, self.seed = net, arch, int(seed)
        self.drop_path, self.dropout = float(drop_path), float(dropout)
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return self.net(x, self.arch)
        step, self.calls = self.calls, self.calls + 1
        regularizer = Regularizer(
            drop_path=self.drop_path, dropout=self.dropout,
            generator=step_generator(self.seed, step, STREAM_DROP, x.device),
            sample_generator=step_generator(self.seed, step, STREAM_SAMPLE_DROP))
        return self.net(x, self.arch, regularizer=regularizer)


def train_standalone(*, space: SearchSpace, arch: Arch, seed: int, recipe: StandaloneRecipe,
                     train: tuple[Tensor, Tensor] | TextStream, test: tuple[Tensor, Tensor],
                     device: str | torch.device = "cpu",
                     on_step: Callable[[int, float], None] | None = None) -> StandaloneResult:
    """Train ``arch`` from scratch on ``train = (x (N, ...), y (N, ...))`` for
    ``recipe.steps`` and score it on ``test``. ``seed`` draws the initialisation and the
    per-epoch data order; ``on_step(step, loss)`` is called after each step. A sequence
    study's ``train`` may be its `TextStream`: the run then draws random-offset windows per
    ``(seed, step)`` as the supernet does (`nas.baselines.text.fit_lm`)."""
    space.validate(arch)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("stand-alone training on 'cuda' but no CUDA device is available")
    t0 = time.perf_counter()
    net: Supernet | None = None
    model: nn.Module
    if recipe.regularized:
        net = initial_supernet(space, seed=seed)
        model = RegularizedSubnet(net, arch, drop_path=recipe.drop_path,
                                  dropout=recipe.dropout, seed=seed).train()
    else:
        model = initial_model(space, arch, seed=seed)
    fit = FitRecipe(steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr,
                    weight_decay=recipe.weight_decay, warmup_steps=recipe.warmup_steps,
                    min_lr_ratio=recipe.min_lr_ratio, grad_clip=recipe.grad_clip,
                    augment=recipe.augment, augment_pad=recipe.augment_pad,
                    label_smoothing=recipe.label_smoothing)
    tail = max(1, recipe.steps // 10)
    tail_losses: list[Tensor] = []

    def step_done(step: int, loss: Tensor) -> None:
        if step > recipe.steps - tail:
            tail_losses.append(loss.float())
        if on_step is not None:
            on_step(step, float(loss))

    if isinstance(train, TextStream):
        from nas.baselines.text import fit_lm

        model = fit_lm(model, train=train, recipe=fit, seed=seed, device=device,
                       on_step=step_done).model
    else:
        model = fit_model(model, train=train, recipe=fit, seed=seed, device=device,
                          on_step=step_done)
    if net is not None:  # the deployable network: the trained slice, without the masks
        model = export_subnet(net.eval(), arch)
    # scored in fp32, as the supernet's inherited weights are
    result = evaluate_model(model.eval(), test[0], test[1], batch_size=recipe.eval_batch_size,
                            device=device)
    final_train_loss = float(torch.stack(tail_losses).mean())
    return StandaloneResult(arch_key=arch.key(), seed=seed, test_accuracy=result.accuracy,
                            test_loss=result.loss, final_train_loss=final_train_loss,
                            steps=recipe.steps, seconds=time.perf_counter() - t0,
                            device=str(device))


def run_in_process(jobs: Iterable[StandaloneJob], *, space: SearchSpace,
                   recipe: StandaloneRecipe, train: tuple[Tensor, Tensor] | TextStream,
                   test: tuple[Tensor, Tensor], device: str | torch.device = "cpu",
                   threads: int | None = None) -> Iterator[StandaloneResult]:
    """Train the jobs one after another in this process, yielding each result as it
    finishes (``threads``: torch intra-op threads meanwhile; None leaves them)."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for job in jobs:
            yield train_standalone(space=space, arch=job.arch, seed=job.seed, recipe=recipe,
                                   train=train, test=test, device=device)
    finally:
        torch.set_num_threads(previous)
