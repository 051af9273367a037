"""Timing harness: the latency of layers and whole models, measured the way they will run.

Protocol (the same for layers and whole models, so their numbers compose):

- inference only (``eval()``, ``torch.inference_mode`` in eager, ``torch.no_grad`` for graph
  capture); inputs drawn fresh from a seeded generator (standard normal activations or
  uniform token ids, never zeros, which some kernels shortcut);
- when an input is small enough to sit in cache, the harness rotates through several
  distinct inputs (total up to ``cache_bytes``) so a call never reuses the very tensor the
  previous call just read;
- several callables are timed *interleaved* (`measure_interleaved`): ``warmup`` untimed
  rounds, then ``repeats`` rounds, each taking one sample of every callable in a freshly
  shuffled order, so a slow phase of a shared machine spreads over all of them;
- a sample runs ``number`` back-to-back calls, with ``number`` chosen once per callable so
  a sample lasts ``>= min_sample_ms`` (``min_sample_ms=0``: single calls, each after other
  work, as a layer runs inside a model);
- CPU: ``time.perf_counter`` with ``torch.set_num_threads(threads)`` held fixed while
  measuring; GPU: CUDA events around each sample and ``torch.cuda.synchronize()`` after it;
- mode ``eager`` calls the module; mode ``cuda_graph`` captures one call per input in a CUDA
  graph (after warm-up on a side stream) and times ``graph.replay()``;
- result: the median per-call time over the samples and their spread as the interquartile
  range (IQR = q75 - q25 of the per-call sample times), both in milliseconds.
"""

from __future__ import annotations

import functools
import gc
import math
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from kernels.build import StaticModel, build_layer
from kernels.fingerprint import MODES
from kernels.specs import DownsampleSpec, HeadSpec, LayerSpec, MixerSpec, StemSpec


@dataclass(frozen=True)
class TimingConfig:
    """How hard to measure. Defaults suit a table build; benchmarks may lower ``repeats``.

    ``repeats`` timed rounds at least; more rounds (up to ``max_repeats``) while less than
    ``min_total_s`` has passed, so cheap measurements still spread over enough wall time to
    average out the slow phases of a shared machine.
    """

    warmup: int = 5
    repeats: int = 15
    min_sample_ms: float = 2.0
    max_calls_per_sample: int = 1000
    cache_bytes: int = 4 << 20
    max_inputs: int = 4
    seed: int = 0
    min_total_s: float = 0.0
    max_repeats: int = 1000

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ValueError(f"warmup: expected >= 0, got {self.warmup}")
        if self.repeats < 1:
            raise ValueError(f"repeats: expected >= 1, got {self.repeats}")
        if self.min_sample_ms < 0 or self.max_calls_per_sample < 1 or self.max_inputs < 1:
            raise ValueError("min_sample_ms must be >= 0, max_calls_per_sample and "
                             "max_inputs >= 1")
        if self.min_total_s < 0 or self.max_repeats < self.repeats:
            raise ValueError("min_total_s must be >= 0 and max_repeats >= repeats")


@dataclass(frozen=True)
class Measurement:
    """Per-call latency: ``median_ms`` and ``spread_ms`` (IQR) over ``repeats`` samples of
    ``calls_per_sample`` calls each."""

    median_ms: float
    spread_ms: float
    repeats: int
    calls_per_sample: int


def layer_input(spec: LayerSpec, batch_size: int, *, generator: torch.Generator,
                device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> Tensor:
    """A fresh random input of one layer (or of a whole model whose first layer is ``spec``).

    image stem: (B, C, r, r) standard normal; sequence stem: (B, T) token ids uniform in the
    vocabulary; every other layer: (B, T, D) standard normal.
    """
    if isinstance(spec, StemSpec):
        if spec.modality == "image":
            shape = (batch_size, spec.in_channels, spec.resolution, spec.resolution)
            return torch.randn(shape, generator=generator).to(device=device, dtype=dtype)
        ids = torch.randint(0, spec.vocab_size, (batch_size, spec.tokens), generator=generator)
        return ids.to(device)
    if isinstance(spec, MixerSpec | HeadSpec):
        dim = spec.dim
    elif isinstance(spec, DownsampleSpec):
        dim = spec.in_dim
    else:
        raise ValueError(f"not a layer spec: {spec!r}")
    x = torch.randn((batch_size, spec.tokens, dim), generator=generator)
    return x.to(device=device, dtype=dtype)


@contextmanager
def fixed_threads(threads: int | None) -> Iterator[None]:
    """Hold ``torch.set_num_threads(threads)`` inside the block; restore the old count."""
    old = torch.get_num_threads()
    if threads is not None:
        if threads <= 0:
            raise ValueError(f"threads: expected a positive int, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _input_count(x: Tensor, config: TimingConfig) -> int:
    """How many distinct inputs to rotate through: several while they fit in cache."""
    nbytes = x.numel() * x.element_size()
    if nbytes * 2 > config.cache_bytes:
        return 1
    return max(1, min(config.max_inputs, config.cache_bytes // nbytes))


def _capture_graphs(fn: Callable[[Tensor], object],
                    inputs: Sequence[Tensor], warmup: int) -> list[torch.cuda.CUDAGraph]:
    """One CUDA graph per input, each replaying ``fn(input)``; warm-up on a side stream first
    (required before capture: lazy init and autotuning must not be captured)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(max(3, warmup)):
            for x in inputs:
                fn(x)
    torch.cuda.current_stream().wait_stream(side)
    graphs = []
    for x in inputs:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn(x)
        graphs.append(graph)
    torch.cuda.synchronize()
    return graphs


def _sampler(device: torch.device) -> Callable[[Callable[[], None]], float]:
    """``run(body) -> seconds`` for one sample: perf_counter on CPU, events on GPU."""
    if device.type == "cuda":
        def run(body: Callable[[], None]) -> float:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            body()
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end) / 1e3
        return run

    def run_cpu(body: Callable[[], None]) -> float:
        t0 = time.perf_counter()
        body()
        return time.perf_counter() - t0
    return run_cpu


class _Runner:
    """Calls one ``fn`` (or replays its graphs) ``number`` times, rotating its inputs."""

    def __init__(self, fn: Callable[[Tensor], object], inputs: list[Tensor],
                 graphs: list[torch.cuda.CUDAGraph]) -> None:
        self.fn, self.inputs, self.graphs = fn, inputs, graphs
        self.position = 0  # rotates across samples, not only within one
        self.number = 1

    def run(self, number: int) -> None:
        k, start = len(self.inputs), self.position
        if self.graphs:
            for i in range(start, start + number):
                self.graphs[i % k].replay()
        else:
            for i in range(start, start + number):
                self.fn(self.inputs[i % k])
        self.position = (start + number) % k

    def sample(self) -> None:
        self.run(self.number)


def _summary(per_call: list[float], config: TimingConfig, number: int) -> Measurement:
    median = statistics.median(per_call)
    spread = 0.0
    if len(per_call) >= 2:
        q1, _, q3 = statistics.quantiles(per_call, n=4, method="inclusive")
        spread = q3 - q1
    return Measurement(median_ms=1e3 * median, spread_ms=1e3 * spread,
                       repeats=len(per_call), calls_per_sample=number)


def measure_interleaved(calls: Sequence[tuple[Callable[[Tensor], object],
                                              Callable[[], Tensor]]], *,
                        device: torch.device | str = "cpu", mode: str = "eager",
                        threads: int | None = None,
                        config: TimingConfig = TimingConfig(),
                        on_round: Callable[[int, int], None] | None = None,
                        ) -> list[Measurement]:
    """Time several ``(fn, make_input)`` pairs in interleaved rounds; one result per pair.

    Each round takes one sample of every pair, in a freshly shuffled (seeded) order, so a
    slow phase of a shared machine hits all pairs alike instead of a few, and each call
    runs after other work, as a layer does inside a model. With one pair this is the plain
    warm-up / repeats protocol. ``make_input()`` returns a fresh random input on ``device``;
    ``on_round(done, total)`` is called after each timed round (progress bars).
    """
    device = torch.device(device)
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if mode == "cuda_graph" and device.type != "cuda":
        raise ValueError("mode 'cuda_graph' needs a CUDA device")
    if not calls:
        return []
    sample = _sampler(device)
    order = list(range(len(calls)))
    shuffle = random.Random(config.seed).shuffle
    grad_off = torch.no_grad() if mode == "cuda_graph" else torch.inference_mode()
    with fixed_threads(threads if device.type == "cpu" else None), grad_off:
        runners = []
        for fn, make_input in calls:
            first = make_input()
            inputs = [first] + [make_input() for _ in range(_input_count(first, config) - 1)]
            graphs = _capture_graphs(fn, inputs, config.warmup) if mode == "cuda_graph" else []
            runners.append(_Runner(fn, inputs, graphs))
        for _ in range(config.warmup):
            for runner in runners:
                runner.run(1)
        wanted = config.min_sample_ms / 1e3
        for runner in runners:
            one = sample(functools.partial(runner.run, 1))
            runner.number = min(config.max_calls_per_sample,
                                max(1, math.ceil(wanted / max(one, 1e-9))))
        per_call: list[list[float]] = [[] for _ in runners]
        gc_was_enabled = gc.isenabled()
        gc.disable()  # as timeit does: no collector pauses inside a sample
        start, done = time.perf_counter(), 0
        try:
            while done < config.repeats or (
                    done < config.max_repeats
                    and time.perf_counter() - start < config.min_total_s):
                shuffle(order)
                for i in order:
                    per_call[i].append(sample(runners[i].sample) / runners[i].number)
                done += 1
                if on_round is not None:
                    on_round(min(done, config.repeats), config.repeats)
        finally:
            if gc_was_enabled:
                gc.enable()
    return [_summary(times, config, r.number) for times, r in zip(per_call, runners)]


def measure_latency(fn: Callable[[Tensor], object], make_input: Callable[[], Tensor], *,
                    device: torch.device | str = "cpu", mode: str = "eager",
                    threads: int | None = None,
                    config: TimingConfig = TimingConfig()) -> Measurement:
    """Median and IQR of the per-call latency of ``fn(x)`` (see the module docstring).

    ``make_input()`` returns a fresh random input on ``device`` each call. ``threads`` (CPU)
    is held fixed while measuring; ``mode`` is ``"eager"`` or ``"cuda_graph"`` (GPU only).

    Example::

        m = measure_latency(layer, lambda: torch.randn(1, 64, 32), threads=1)
        m.median_ms, m.spread_ms
    """
    return measure_interleaved([(fn, make_input)], device=device, mode=mode, threads=threads,
                               config=config)[0]


def _make_input(spec: LayerSpec, batch_size: int, generator: torch.Generator,
                device: torch.device | str, dtype: torch.dtype) -> Callable[[], Tensor]:
    return lambda: layer_input(spec, batch_size, generator=generator, device=device, dtype=dtype)


def measure_layers(specs: Sequence[LayerSpec], *, batch_size: int,
                   device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                   mode: str = "eager", threads: int | None = None,
                   config: TimingConfig = TimingConfig(),
                   on_round: Callable[[int, int], None] | None = None) -> list[Measurement]:
    """Build each spec with `kernels.build_layer` (seeded random weights) and time them
    interleaved (`measure_interleaved`); one `Measurement` per spec, in order."""
    generator = torch.Generator().manual_seed(config.seed)
    with fixed_threads(threads if torch.device(device).type == "cpu" else None):
        torch.manual_seed(config.seed)
        modules = [build_layer(spec, device=device, dtype=dtype).eval() for spec in specs]
    calls = [(module, _make_input(spec, batch_size, generator, device, dtype))
             for module, spec in zip(modules, specs)]
    return measure_interleaved(calls, device=device, mode=mode, threads=threads, config=config,
                               on_round=on_round)


def measure_models(models: Sequence[Sequence[LayerSpec]], *, batch_size: int,
                   device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                   mode: str = "eager", threads: int | None = None,
                   config: TimingConfig = TimingConfig(),
                   on_round: Callable[[int, int], None] | None = None) -> list[Measurement]:
    """Time whole `StaticModel(specs)` end to end, interleaved; one result per model.

    A `StaticModel` built from ``space.layers(arch)`` is the exported form of that arch;
    random weights time the same as trained ones.
    """
    if any(not specs for specs in models):
        raise ValueError("models: every model needs at least one layer")
    generator = torch.Generator().manual_seed(config.seed)
    with fixed_threads(threads if torch.device(device).type == "cpu" else None):
        torch.manual_seed(config.seed)
        built = [StaticModel(list(specs), device=device, dtype=dtype).eval()
                 for specs in models]
    calls = [(model, _make_input(specs[0], batch_size, generator, device, dtype))
             for model, specs in zip(built, models)]
    return measure_interleaved(calls, device=device, mode=mode, threads=threads, config=config,
                               on_round=on_round)


def measure_layer(spec: LayerSpec, *, batch_size: int, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32, mode: str = "eager",
                  threads: int | None = None,
                  config: TimingConfig = TimingConfig()) -> Measurement:
    """One layer alone (`measure_layers` of one spec)."""
    return measure_layers([spec], batch_size=batch_size, device=device, dtype=dtype,
                          mode=mode, threads=threads, config=config)[0]


def measure_model(specs: Sequence[LayerSpec], *, batch_size: int,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                  mode: str = "eager", threads: int | None = None,
                  config: TimingConfig = TimingConfig()) -> Measurement:
    """One whole model alone (`measure_models` of one model)."""
    return measure_models([specs], batch_size=batch_size, device=device, dtype=dtype,
                          mode=mode, threads=threads, config=config)[0]
