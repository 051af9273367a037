"""Build a latency table for a search space on this machine, then calibrate and validate it.

Runs on a bare target box: it needs torch (numpy) and the project's `kernels` and
`search_spaces` only; rich draws the progress bar when it is installed, plain lines
otherwise. Bring the JSON file back and import it into a study.

    python -m nas.profile --space hybrid_vit_tiny --device cpu --mode eager --batch 1 \\
        --threads 1 --out tables/vit_cpu_b1.json
    python -m nas.profile --space hybrid_lm_tiny --device cuda --mode cuda_graph --batch 16 \\
        --out tables/lm_h100_b16_graph.json

The build is resumable: the table is rewritten atomically after every block of entries, and
a rerun with the same ``--out`` measures only what is missing.
"""

from __future__ import annotations

import argparse
import ast
import random
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from kernels import LayerSpec, signature
from kernels.fingerprint import DTYPES, MODES, DeviceFingerprint, device_fingerprint
from kernels.latency_table import LatencyTable, LatencyTableError, latency_metrics
from kernels.timing import TimingConfig, measure_layers, measure_models
from nas.latency import layer_slots
from search_spaces import Arch, SearchSpace, get_space

Advance = Callable[..., None]  # advance(n=1, note="")


@contextmanager
def progress_bar(total: int, description: str, *, enabled: bool = True,
                 console: Any = None) -> Iterator[Advance]:
    """Yield ``advance(n=1, note="")``: a rich bar with ETA (``note``, e.g. the last result,
    shown beside it) if rich is importable, plain lines if not. ``console``: rich's console
    to draw on (default: rich's own)."""
    if not enabled or total <= 0:
        yield lambda n=1, note="": None
        return
    try:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
    except ImportError:
        start, done, shown = time.perf_counter(), [0], [-1]

        def advance(n: int = 1, note: str = "") -> None:
            done[0] += n
            tenth = 10 * done[0] // total
            if tenth != shown[0]:
                shown[0] = tenth
                spent = time.perf_counter() - start
                eta = spent / done[0] * (total - done[0]) if done[0] else float("nan")
                print(f"{description}: {done[0]}/{total}, {spent:.0f} s, ETA {eta:.0f} s"
                      + (f" ({note})" if note else ""), flush=True)
        yield advance
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
               TextColumn("{task.fields[note]}"))
    with Progress(*columns, transient=False, console=console) as progress:
        task = progress.add_task(description, total=total, note="")

        def advance(n: int = 1, note: str = "") -> None:
            fields: dict[str, Any] = {"note": note} if note else {}
            progress.update(task, advance=n, **fields)
        yield advance


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
class ProfileConfig:
    """Where and how to measure.

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
    for _, spec in layer_slots(space):
        seen.setdefault(signature(spec), spec)
    return list(seen.values())


def build_table(space: SearchSpace, *, config: ProfileConfig, out: str | Path | None = None,
                on_block: Callable[[int, int], None] | None = None,
                show_progress: bool = True) -> LatencyTable:
    """Measure every layer spec of ``space`` into a `LatencyTable` of this machine.

    With ``out``, an existing table there is resumed (it must have this fingerprint) and the
    table is rewritten atomically after each block; ``on_block(measured, total)`` is called
    after each block (a test interrupts the build by raising from it).
    """
    fp = config.fingerprint()
    timing, block = config.layer_timing, config.block
    assert timing is not None and block is not None  # ProfileConfig.__post_init__ fills them
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


def measure_archs(space: SearchSpace, archs: Sequence[Arch], *, config: ProfileConfig,
                  show_progress: bool = True, description: str = "whole models") -> list[float]:
    """Median end-to-end latency (ms) of `StaticModel(space.layers(arch))` for each arch,
    measured interleaved (``model_block`` models at a time) as the table's entries were."""
    models = [space.layers(a) for a in archs]
    kwargs = config.measure_kwargs()
    timing = config.model_timing
    assert timing is not None  # ProfileConfig.__post_init__ fills it
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


def calibrate_and_validate(table: LatencyTable, space: SearchSpace, *, config: ProfileConfig,
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


def _metrics_text(m: Mapping[str, Any]) -> str:
    return (f"MAPE {100 * m['mape']:.1f} %, within +-10 % {100 * m['within10']:.0f} %, "
            f"Kendall {m['kendall']:.3f} (n={m['n']})")


def validation_line(result: dict) -> str:
    """``calibrated: MAPE 3.1 %, within +-10 % 96 %, Kendall 0.93 (n=30) | naive: ... |
    repeat ceiling (same models measured twice): ...``."""
    parts = [f"{name}: {_metrics_text(result[name])}" for name in ("calibrated", "naive")
             if name in result]
    if isinstance(result.get("repeat"), dict):
        parts.append(f"repeat ceiling (same models measured twice): "
                     f"{_metrics_text(result['repeat'])}")
    else:
        parts.append("repeat ceiling: not measured")
    return " | ".join(parts)


MIN_WITHIN10 = 0.8  # share of models a trusted table predicts within +-10 %
CEILING_SLACK = 0.1  # how far below the repeat ceiling (share within +-10 %) is "worse"

TRUST_ADVICE = (
    "run it on an idle machine (other jobs shift every timing)",
    "pin the process to one core: `taskset -c 1 <the profile command>`",
    "use fewer threads: `--threads 1` for `python -m nas.profile`, or OMP_NUM_THREADS=1",
    "spread the measurements over longer: `--spread 30` for `python -m nas.profile`, or "
    "`ProfilingConfig(min_block_s=30)` in the study",
)


@dataclass(frozen=True)
class LatencyTrust:
    """How far a latency table's predictions can be trusted (`latency_trust`).

    ``status``: ``trusted``, ``unreliable`` or ``unvalidated`` (never checked against whole
    models). ``within10`` / ``mape`` are the table's own validation (calibrated when it has
    a calibration); ``repeat_within10`` / ``repeat_mape`` the machine's repeat ceiling, None
    when it was not measured. ``reasons`` say what is wrong; ``advice`` what to do.
    """

    status: str
    prediction: str = ""
    within10: float | None = None
    mape: float | None = None
    repeat_within10: float | None = None
    repeat_mape: float | None = None
    reasons: tuple[str, ...] = ()
    advice: tuple[str, ...] = ()

    @property
    def trusted(self) -> bool:
        return self.status == "trusted"

    def summary(self) -> str:
        """One line: the verdict, the table's validation and the repeat ceiling."""
        if self.status == "unvalidated":
            return "latency table not validated against whole models: its error is unknown"
        ceiling = ("repeat ceiling not measured" if self.repeat_within10 is None else
                   f"this machine repeats within +-10 % for "
                   f"{100 * self.repeat_within10:.0f} % of models")
        assert self.within10 is not None and self.mape is not None  # set once validated
        head = "trusted" if self.trusted else "UNRELIABLE"
        return (f"latency table {head}: {self.prediction} prediction within +-10 % for "
                f"{100 * self.within10:.0f} % of models (MAPE {100 * self.mape:.1f} %); "
                f"{ceiling}")

    def lines(self) -> list[str]:
        """The summary, then (unless trusted) each reason and each piece of advice."""
        out = [self.summary()]
        if not self.trusted:
            out += [f"  - {r}" for r in self.reasons]
            if self.advice:
                out.append("  to measure a better table:")
                out += [f"  - {a}" for a in self.advice]
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyTrust:
        """The verdict from `to_dict` (a model card's, read back from JSON)."""
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in data.items()}
        return cls(**fields)


def latency_trust(validation: Mapping[str, Any] | None, *,
                  min_within10: float = MIN_WITHIN10,
                  slack: float = CEILING_SLACK) -> LatencyTrust:
    """The verdict on a table from its stored ``validation`` (``naive`` / ``calibrated`` /
    ``repeat`` metrics, as `calibrate_and_validate` leaves them).

    Unreliable when the table predicts fewer than ``min_within10`` of the validation models
    within +-10 %, or when its share within +-10 % is more than ``slack`` below the
    machine's repeat ceiling (the same models measured twice): then the table, not the
    machine, loses accuracy. The one verdict `nas profile`, `nas run`, the model card and
    the app show.
    """
    if not 0 < min_within10 <= 1 or not 0 <= slack < 1:
        raise ValueError(f"min_within10 must be in (0, 1] and slack in [0, 1), got "
                         f"{min_within10} and {slack}")
    validation = validation or {}
    prediction = next((k for k in ("calibrated", "naive") if isinstance(validation.get(k),
                                                                         dict)), None)
    if prediction is None:
        return LatencyTrust("unvalidated", reasons=("no validation against whole models",),
                            advice=("profile it again with `nas profile STUDY` (it validates "
                                    "on whole models)",))
    m = validation[prediction]
    within, mape = float(m["within10"]), float(m["mape"])
    rep = validation.get("repeat") if isinstance(validation.get("repeat"), dict) else None
    rep_within = None if rep is None else float(rep["within10"])
    rep_mape = None if rep is None else float(rep["mape"])
    reasons = []
    if within < min_within10:
        reasons.append(f"it predicts only {100 * within:.0f} % of the validation models within "
                       f"+-10 % (a trusted table: {100 * min_within10:.0f} %)")
    if rep_within is not None and within < rep_within - slack:
        reasons.append(f"it is worse than this machine's repeat ceiling: the same models "
                       f"measured twice agree within +-10 % for {100 * rep_within:.0f} %, the "
                       f"table for {100 * within:.0f} %")
    if rep_within is not None and rep_within < min_within10:
        reasons.append(f"this machine does not repeat its own measurements: only "
                       f"{100 * rep_within:.0f} % of the models measured twice agree within "
                       "+-10 % (a busy or throttled machine)")
    status = "unreliable" if reasons else "trusted"
    if reasons and rep_within is None:
        reasons.append("the machine's repeat ceiling was not measured, so whether the machine "
                       "or the table is at fault is unknown (profile again to measure it)")
    return LatencyTrust(status, prediction=prediction, within10=within, mape=mape,
                        repeat_within10=rep_within, repeat_mape=rep_mape,
                        reasons=tuple(reasons),
                        advice=TRUST_ADVICE if status == "unreliable" else ())


def _parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise ValueError(f"--override: expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nas.profile", description=__doc__.split("\n")[0])
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
        config = ProfileConfig(
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
