"""Build a latency table for a search space on this machine, then calibrate and validate it.

Runs on a bare target box: it needs torch (numpy) and the project's `kernels` and
`search_spaces` only; rich draws the progress bar when it is installed, plain lines
otherwise. Bring the JSON file back and import it into a study.

    python -m nas.latency.profile --space hybrid_vit_tiny --device cpu --mode eager --batch 1 \\
        --threads 1 --out tables/vit_cpu_b1.json
    python -m nas.latency.profile --space hybrid_lm_tiny --device cuda --mode cuda_graph \\
        --batch 16 --out tables/lm_h100_b16_graph.json

The build is resumable: the table is rewritten atomically after every block of entries, and
a rerun with the same ``--out`` measures only what is missing.
"""

from __future__ import annotations

import argparse
import ast
import random
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from kernels import LayerSpec, signature
from kernels.fingerprint import DTYPES, MODES, DeviceFingerprint, device_fingerprint
from kernels.latency_table import LatencyTable, LatencyTableError, latency_metrics
from kernels.timing import TimingConfig, measure_layers, measure_models
from nas.latency.trust import latency_trust, validation_line
from nas.progress import progress_bar
from search_spaces import Arch, SearchSpace, get_space


def default_timings(device: str, mode: str = "eager") -> tuple[TimingConfig, TimingConfig]:
    """(layer timing, whole-model timing) that suit ``device`` and ``mode``.

    CPU: each table sample is a single call, taken in shuffled rounds over a block of other
    layers, so a layer runs after other work as it does inside a model (back-to-back calls
    of one small layer keep its weights and code hot and under-predict the model); whole
    models are timed warm, in samples of >= 10 ms. Rounds go on for >= 8 s per block of
    layers and >= 20 s per block of models, so a short slow phase of a shared machine
    cannot bias a whole block. GPU: samples of back-to-back calls (>= 1
    ms for layers, >= 2 ms for models), so launches pipeline as they do in a real run; CUDA
    graphs use one input each (every captured graph keeps its own memory pool).
    """
    if torch_device_type(device) == "cpu":
        return (TimingConfig(warmup=2, repeats=21, min_sample_ms=0.0, min_total_s=8.0),
                TimingConfig(warmup=2, repeats=9, min_sample_ms=10.0, min_total_s=20.0))
    inputs = 1 if mode == "cuda_graph" else TimingConfig.max_inputs
    return (TimingConfig(warmup=5, repeats=15, min_sample_ms=1.0, max_inputs=inputs),
            TimingConfig(warmup=3, repeats=15, min_sample_ms=2.0, max_inputs=inputs))


def torch_device_type(device: str) -> str:
    kind = str(device).split(":")[0]
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    return kind


@dataclass(frozen=True)
class MeasureConfig:
    """Where and how to measure one latency table (a study's `nas.study.ProfilingConfig`
    says what its profile stage wants; the pipeline turns it into one of these).

    ``layer_timing`` times table entries, ``block`` specs at a time (interleaved; the table
    is saved after each block); ``model_timing`` times whole models, ``model_block`` at a
    time (interleaved). Everything measured in one block sees the same phases of a shared,
    drifting machine, so blocks are large: 64 entries on CPU (a save every few seconds),
    the whole table and every model at once on GPU (a GPU build takes seconds). Fields left
    None take the device's defaults (`default_timings`).
    """

    device: str = "cpu"
    mode: str = "eager"
    batch_size: int = 1
    dtype: str = "float32"
    threads: int | None = None
    layer_timing: TimingConfig | None = None
    model_timing: TimingConfig | None = None
    block: int | None = None
    model_block: int = 400

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {self.mode!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: expected one of {sorted(DTYPES)}, got {self.dtype!r}")
        kind = torch_device_type(self.device)
        layer, model = default_timings(self.device, self.mode)
        if self.layer_timing is None:
            object.__setattr__(self, "layer_timing", layer)
        if self.model_timing is None:
            object.__setattr__(self, "model_timing", model)
        block = self.block if self.block is not None else (64 if kind == "cpu" else 4096)
        object.__setattr__(self, "block", block)
        if block < 1 or self.model_block < 1:
            raise ValueError("block and model_block must be >= 1")

    def fingerprint(self) -> DeviceFingerprint:
        return device_fingerprint(device=self.device, batch_size=self.batch_size,
                                  mode=self.mode, dtype=self.dtype, threads=self.threads)

    def measure_kwargs(self) -> dict:
        fp = self.fingerprint()
        return {"batch_size": self.batch_size, "device": self.device,
                "dtype": DTYPES[self.dtype], "mode": self.mode,
                "threads": fp.threads if fp.device_type == "cpu" else None}


def enumerate_layer_specs(space: SearchSpace) -> list[LayerSpec]:
    """Every distinct layer spec any arch of ``space`` can contain (walks the choices)."""
    seen: dict[str, LayerSpec] = {}
    for _, spec in space.layer_slots():
        seen.setdefault(signature(spec), spec)
    return list(seen.values())


def build_table(space: SearchSpace, *, config: MeasureConfig, out: str | Path | None = None,
                on_block: Callable[[int, int], None] | None = None,
                show_progress: bool = True) -> LatencyTable:
    """Measure every layer spec of ``space`` into a `LatencyTable` of this machine.

    With ``out``, an existing table there is resumed (it must have this fingerprint) and the
    table is rewritten atomically after each block; ``on_block(measured, total)`` is called
    after each block (a test interrupts the build by raising from it).
    """
    fp = config.fingerprint()
    timing, block = config.layer_timing, config.block
    assert timing is not None and block is not None  # MeasureConfig.__post_init__ fills them
    specs = enumerate_layer_specs(space)
    if out is not None and Path(out).exists():
        table = LatencyTable.load(out, fingerprint=fp)
    else:
        table = LatencyTable(fp)
    table.meta.setdefault("space", space.name)
    table.meta["layer_timing"] = asdict(timing)
    # shuffled (seeded), so a slow phase of a shared machine hits random entries instead
    # of every entry of one resolution or width (enumeration order)
    todo = [s for s in specs if s not in table]
    random.Random(timing.seed).shuffle(todo)
    total, done = len(specs), len(specs) - len(todo)
    kwargs = config.measure_kwargs()
    start = time.perf_counter()
    with progress_bar(len(todo), f"latency table {space.name}",
                      enabled=show_progress) as advance:
        for i in range(0, len(todo), block):
            chunk = todo[i:i + block]
            for spec, m in zip(chunk, measure_layers(chunk, config=timing,
                                                     **kwargs)):
                table.add(spec, m)
            done += len(chunk)
            table.meta["build_seconds"] = (table.meta.get("build_seconds", 0.0)
                                           + time.perf_counter() - start)
            start = time.perf_counter()
            if out is not None:
                table.save(out)
            advance(len(chunk))
            if on_block is not None:
                on_block(done, total)
    return table


def measure_archs(space: SearchSpace, archs: Sequence[Arch], *, config: MeasureConfig,
                  show_progress: bool = True, description: str = "whole models") -> list[float]:
    """Median end-to-end latency (ms) of `StaticModel(space.layers(arch))` for each arch,
    measured interleaved (``model_block`` models at a time) as the table's entries were."""
    models = [space.layers(a) for a in archs]
    kwargs = config.measure_kwargs()
    timing = config.model_timing
    assert timing is not None  # MeasureConfig.__post_init__ fills it
    rounds = timing.repeats
    result: list[float] = []
    with progress_bar(rounds * len(models), description, enabled=show_progress) as advance:
        for i in range(0, len(models), config.model_block):
            chunk = models[i:i + config.model_block]

            def on_round(done: int, total: int, n: int = len(chunk)) -> None:
                advance(n)

            ms = measure_models(chunk, config=timing, on_round=on_round, **kwargs)
            result += [m.median_ms for m in ms]
    return result


def distinct_archs(space: SearchSpace, n: int, rng: np.random.Generator, *,
                   exclude: Collection[str] = ()) -> list[Arch]:
    """``n`` random archs with distinct keys, none of them in ``exclude``."""
    seen = set(exclude)
    archs: list[Arch] = []
    for _ in range(200 * n + 100):
        if len(archs) == n:
            break
        a = space.sample(rng)
        if a.key() not in seen:
            seen.add(a.key())
            archs.append(a)
    if len(archs) < n:
        raise ValueError(f"space {space.name!r} has fewer than {n} distinct archs to sample")
    return archs


def calibrate_and_validate(table: LatencyTable, space: SearchSpace, *, config: MeasureConfig,
                           n_calibration: int = 10, n_validation: int = 30, seed: int = 0,
                           repeat: bool = True, show_progress: bool = True) -> dict:
    """Fit the table's calibration on ``n_calibration`` (<= 10) random whole models and
    validate on ``n_validation`` others, all measured in one interleaved run; returns (and
    keeps in ``table.validation``) the naive and calibrated metrics.

    With ``repeat`` the validation models are measured a second time, in a run of their
    own, and ``validation["repeat"]`` holds how well the second run predicts the first
    (same metrics): the machine's own repeatability, a ceiling no table can beat there.
    """
    if not 1 <= n_calibration <= 10:
        raise ValueError(f"n_calibration: expected 1..10 models, got {n_calibration}")
    if n_validation < 2:
        raise ValueError(f"n_validation: expected >= 2 models, got {n_validation}")
    table.check(config.fingerprint())
    rng = np.random.default_rng(seed)
    archs = distinct_archs(space, n_calibration + n_validation, rng)
    measured = measure_archs(space, archs, config=config, show_progress=show_progress,
                             description="calibration + validation models")
    cal, val = archs[:n_calibration], archs[n_calibration:]
    table.calibrate([space.layers(a) for a in cal], measured[:n_calibration])
    result = table.validate([space.layers(a) for a in val], measured[n_calibration:])
    table.meta["calibration_archs"] = [a.key() for a in cal]
    table.meta["validation_archs"] = [a.key() for a in val]
    table.meta["validation_ms"] = measured[n_calibration:]
    if repeat:
        again = measure_archs(space, val, config=config, show_progress=show_progress,
                              description="validation models again (repeatability)")
        result["repeat"] = latency_metrics(again, measured[n_calibration:])
        table.validation = result
        table.meta["repeat_ms"] = again
    return result


def needs_validation(table: LatencyTable) -> bool:
    """Whether ``table`` still lacks its calibration, its validation or the machine's
    repeat measurement (a table validated before repeats were measured)."""
    validation = table.validation or {}
    return table.calibration is None or "naive" not in validation or "repeat" not in validation


def _parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise ValueError(f"--override: expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nas.latency.profile",
                                description=__doc__.split("\n")[0])
    p.add_argument("--space", required=True, help="registered search space name")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="space option, e.g. widths='((16,),(32,))' (repeatable)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--mode", default="eager", choices=MODES)
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=21, help="timed rounds per table entry")
    p.add_argument("--model-repeats", type=int, default=9, help="timed rounds per model")
    p.add_argument("--spread", type=float, default=None, metavar="SECONDS",
                   help="minimum wall time per block of measurements (default: 8 s for "
                        "layers and 20 s for models on CPU, 0 on GPU)")
    p.add_argument("--calibrate", type=int, default=10, help="models for calibration (<= 10)")
    p.add_argument("--validate", type=int, default=30, help="other models for validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="table JSON (resumed if present)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides = dict(_parse_override(o) for o in args.override)
        space = get_space(args.space, **overrides)
        if args.batch < 1 or args.repeats < 1 or args.model_repeats < 1:
            raise ValueError("--batch, --repeats and --model-repeats must be >= 1")
        layer, model = default_timings(args.device, args.mode)
        if args.spread is not None:
            if args.spread < 0:
                raise ValueError("--spread must be >= 0 seconds")
            layer = replace(layer, min_total_s=args.spread)
            model = replace(model, min_total_s=args.spread)
        config = MeasureConfig(
            device=args.device, mode=args.mode, batch_size=args.batch, dtype=args.dtype,
            threads=args.threads, layer_timing=replace(layer, repeats=args.repeats),
            model_timing=replace(model, repeats=args.model_repeats))
        fp = config.fingerprint()
        if args.out.exists():
            LatencyTable.load(args.out, fingerprint=fp)  # refuse before measuring anything
        show = not args.no_progress
        print(f"profiling {space.name} on {fp.describe()} (fingerprint {fp.id})", flush=True)
        table = build_table(space, config=config, out=args.out, show_progress=show)
        table.meta["overrides"] = {k: repr(v) for k, v in overrides.items()}
        result = calibrate_and_validate(table, space, config=config,
                                        n_calibration=args.calibrate,
                                        n_validation=args.validate, seed=args.seed,
                                        show_progress=show)
        table.save(args.out)
    except (LatencyTableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cal = table.calibration
    assert cal is not None  # calibrate_and_validate calibrated the table
    print(f"{len(table)} entries in {table.meta['build_seconds']:.1f} s -> {args.out}")
    print(f"calibration: {cal.scale:.3f} x sum + {cal.per_layer_ms:.4f} ms/layer + "
          f"{cal.intercept_ms:.4f} ms (fitted on {cal.n_models} models)")
    print(f"validation: {validation_line(result)}")
    for line in latency_trust(result).lines():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
