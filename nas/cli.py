"""The `nas` command line. Heavy packages are imported inside commands so `nas --help` is fast.

Errors print one line (``error: ...``) and exit 1; ``--debug`` shows the traceback. Every
command is registered with `_command`, the one place that turns an expected error into that
line; `_study` opens a study (checks, store, lease) and `_store` a bare store.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Optional

import typer

if TYPE_CHECKING:
    from nas.study import Study
    from nas.study_context import StudyContext

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Hardware-aware NAS: spaces, supernet training, latency, search, export.")
_state = {"debug": False}


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")):
    _state["debug"] = debug


STORAGE = typer.Option(None, "--storage", envvar="NAS_STORAGE",
                       help="SQLAlchemy URL of the store (default: sqlite file ./.nas/nas.db).")
WAIT = typer.Option(False, "--wait", help="If another run holds the study, wait for it "
                    "instead of refusing.")
ERRORS = (ValueError, OSError, RuntimeError, KeyError)


def _store(url: Optional[str]):
    from nas.storage import open_store

    return open_store(url)


def _check_args(**limits: tuple[object, float, bool]) -> None:
    """Refuse a bad command-line number before anything runs: each keyword is
    ``option_name=(value, bound, integer)``: an integer must be >= ``bound``, a float finite
    and > ``bound``; None values (option not given) are skipped."""
    for name, (value, bound, integer) in limits.items():
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if integer:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{flag}: must be an integer, got {value!r}")
            if value < bound:
                raise ValueError(f"{flag}: must be >= {bound:g}, got {value}")
        elif (isinstance(value, bool) or not isinstance(value, (int, float))
              or not math.isfinite(value) or value <= bound):
            raise ValueError(f"{flag}: must be a finite number > {bound:g}, got {value!r}")


@contextmanager
def _study(study_file: Path, storage: Optional[str], *, command: str, force: bool = False,
           device: Optional[str] = None, wait: bool = False,
           before_store: Optional[Callable[[Study], object]] = None
           ) -> Iterator[StudyContext]:
    """Check the study (space, data, recipe; then ``before_store(study)``, e.g. an input
    file's check) before any store is opened, then open the store, take the study's lease
    (refusing, or waiting with ``wait``, while another run holds it) and open the study; the
    lease is given back on the way out."""
    from nas.api import open_study_run

    with open_study_run(study_file, storage=storage, force=force, device=device,
                        runs_root="runs", wait=wait, command=command,
                        before_store=before_store) as run:
        yield run.context


def _fail(exc: BaseException) -> NoReturn:
    if _state["debug"]:
        raise exc
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


def _command(*, errors: tuple[type[Exception], ...] = ERRORS
             ) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a command of `app` whose expected ``errors`` (bad input, a missing file, a
    refused store) print one line, ``error: ...``, and exit 1 (``--debug`` re-raises them);
    anything else reaches `main`. The one error path of every command."""

    def register(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                command(*args, **kwargs)
            except errors as exc:
                _fail(exc)

        return app.command()(run)

    return register


@_command(errors=())  # nothing expected: any error is a bug (`main` reports it)
def spaces() -> None:
    """List every registered search space with its modality, size and FLOPs range."""
    from rich.console import Console
    from rich.table import Table

    from search_spaces import get_space, list_spaces

    table = Table(title="search spaces")
    for col in ("name", "modality", "archs", "FLOPs min", "FLOPs max", "params min",
                "params max"):
        table.add_column(col, justify="left" if col in ("name", "modality") else "right")
    for name in list_spaces():
        space = get_space(name)
        lo, hi = space.smallest(), space.largest()
        table.add_row(name, space.modality, f"{space.size():.3g}", f"{space.flops(lo):,}",
                      f"{space.flops(hi):,}", f"{space.params(lo):,}", f"{space.params(hi):,}")
    Console(width=max(120, Console().width)).print(table)


@_command(errors=(ValueError, OSError, RuntimeError))
def demo(
    space: str = typer.Option("hybrid_vit_tiny", help="Registered space name."),
    n: int = typer.Option(8, help="Number of random archs to sample."),
    seed: int = typer.Option(0, help="Sampling seed."),
    out: Path = typer.Option(Path("runs/demo"), help="Where the exported subnet is written."),
) -> None:
    """Sample archs, run them through an (untrained) supernet, time them, export one."""
    _check_args(n=(n, 1, True))
    from nas.demo import run_demo

    run_demo(space_name=space, n=n, seed=seed, out=out)


@_command(errors=(ValueError, OSError, RuntimeError))
def train(
    study_file: Path = typer.Argument(..., help="Study file (studies/<name>.py)."),
    sampler: Optional[str] = typer.Option(None, help="uniform | sandwich | complexity_aware | "
                                          "mixer_balanced (default: the study's)."),
    steps: Optional[int] = typer.Option(None, help="Stop at this step (the LR schedule keeps "
                                        "the study's horizon unless this is longer)."),
    epochs: Optional[float] = typer.Option(None, help="Stop after this many epochs instead."),
    device: Optional[str] = typer.Option(None, help="cpu | cuda (default: the study's)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the checkpoint in --out."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default "
                                       "runs/<study>/supernet)."),
    recipe: Optional[str] = typer.Option(None, help="'best': the best recipe `nas tune` "
                                         "stored for this study."),
    nproc: int = typer.Option(1, help="Data-parallel ranks: one per GPU (cuda), or gloo "
                              "processes on cpu; the study's batch_size is the global batch."),
    storage: Optional[str] = STORAGE,
) -> None:
    """Train the study's supernet; writes checkpoint.pt and metrics.jsonl to --out."""
    _check_args(steps=(steps, 1, True), epochs=(epochs, 0, False), nproc=(nproc, 1, True))
    from nas.training_run import run_training

    overrides = None
    if recipe is not None:
        if recipe != "best":
            raise ValueError(f"--recipe: only 'best' is known, got {recipe!r}")
        from nas.distributed import best_recipe
        from nas.study import load_study

        study = load_study(study_file)
        with _store(storage) as store:
            overrides = best_recipe(store=store, study=study.name,
                                    steps=study.training.steps)
        typer.echo(f"recipe: best stored trial {overrides}")
    run_training(study_file=study_file, sampler=sampler, steps=steps, epochs=epochs,
                 device=device, resume=resume, out=out, recipe=overrides, nproc=nproc)


@_command()
def run(
    study_file: Path = typer.Argument(..., help="Study file (studies/<name>.py)."),
    redo: list[str] = typer.Option([], "--redo", help="Re-run this stage (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Accept a changed study file."),
    device: Optional[str] = typer.Option(None, help="cpu | cuda (default: the study's)."),
    nproc: int = typer.Option(1, help="Train the supernet data-parallel on this many ranks "
                              "(GPUs, or gloo processes on cpu)."),
    wait: bool = WAIT,
    storage: Optional[str] = STORAGE,
) -> None:
    """Run every stage of the study that is not done yet (resumes after a crash)."""
    _check_args(nproc=(nproc, 1, True))
    from nas.pipeline import available_stages, run_pipeline

    unknown = [s for s in redo if s not in available_stages()]
    if unknown:
        raise ValueError(f"--redo: unknown stage(s) {unknown}; stages: "
                         f"{available_stages()}")
    with _study(study_file, storage, command="nas run", force=force, device=device,
                wait=wait) as ctx:
        run_pipeline(ctx, redo=list(redo), nproc=nproc)
        from nas.reports import print_study

        print_study(ctx.store, ctx.name, console=ctx.console)


@_command()
def profile(
    study_file: Path = typer.Argument(..., help="Study file (studies/<name>.py)."),
    import_file: Optional[Path] = typer.Option(None, "--import", help="Store this table file "
                                               "(from `python -m nas.latency.profile`) instead."),
    force: bool = typer.Option(False, "--force", help="Accept a changed study file."),
    wait: bool = WAIT,
    storage: Optional[str] = STORAGE,
) -> None:
    """Measure (or import) the latency table of the study's space and store it."""
    from nas.pipeline import check_latency_table_file, import_profile, run_stage

    if import_file is not None and not import_file.is_file():
        raise ValueError(f"--import: no such file {import_file}")
    check_file = None if import_file is None else (
        lambda study: check_latency_table_file(import_file, study=study))
    with _study(study_file, storage, command="nas profile", force=force, wait=wait,
                before_store=check_file) as ctx:
        detail = (import_profile(ctx, import_file) if import_file is not None
                  else run_stage(ctx, "profile"))
        ctx.console.print(f"profile: done {detail}")


@_command()
def predict(
    study_file: Path = typer.Argument(..., help="Study file (studies/<name>.py)."),
    workers: int = typer.Option(1, help="Ray evaluation workers (1: in process)."),
    address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS",
                                          help="Ray cluster to join."),
    force: bool = typer.Option(False, "--force", help="Accept a changed study file."),
    wait: bool = WAIT,
    storage: Optional[str] = STORAGE,
) -> None:
    """Label a sample of subnets with inherited weights, fit the predictor, store both."""
    _check_args(workers=(workers, 1, True))
    from nas.pipeline import run_stage

    with _study(study_file, storage, command="nas predict", force=force, wait=wait) as ctx:
        detail = run_stage(ctx, "evaluate", workers=workers, address=address)
        ctx.console.print(f"evaluate: done {detail}")
        ctx.console.print(f"predict: done {run_stage(ctx, 'predict')}")


@_command()
def search(
    study_file: Path = typer.Argument(..., help="Study file (studies/<name>.py)."),
    max_latency_ms: Optional[float] = typer.Option(None, help="Hard latency limit (ms)."),
    max_params: Optional[int] = typer.Option(None, help="Hard parameter-count limit."),
    budget: Optional[int] = typer.Option(None, help="Supernet evaluations (default: the "
                                         "study's)."),
    seed: Optional[int] = typer.Option(None, help="Search seed (default: the study's)."),
    workers: int = typer.Option(1, help="Ray evaluation workers (1: in process)."),
    address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS",
                                          help="Ray cluster to join."),
    run: str = typer.Option("search", "--run", help="Search run name in the store."),
    force: bool = typer.Option(False, "--force", help="Accept a changed study file."),
    wait: bool = WAIT,
    storage: Optional[str] = STORAGE,
) -> None:
    """Multi-objective Pareto search guided by the predictor and the latency table."""
    _check_args(workers=(workers, 1, True), budget=(budget, 1, True),
                max_latency_ms=(max_latency_ms, 0, False), max_params=(max_params, 1, True),
                seed=(seed, 0, True))
    from nas.pipeline import stage_search
    from nas.reports import print_study

    with _study(study_file, storage, command="nas search", force=force, wait=wait) as ctx:
        store = ctx.store
        config = ctx.study.search
        if max_latency_ms is not None or max_params is not None:
            limits = {**config.constraints.to_dict(),
                      **{k: v for k, v in (("max_latency_ms", max_latency_ms),
                                           ("max_params", max_params)) if v is not None}}
            config = config.with_overrides(constraints=limits)
        config = config.with_overrides(budget=budget, seed=seed)
        detail = stage_search(ctx, config=config, workers=workers, address=address,
                              run=run)
        if run == "search" and config == ctx.study.search:
            store.put_stage_status(study=ctx.name, stage="search", status="done",
                                   detail=detail)
        print_study(store, ctx.name, console=ctx.console)


@_command()
def export(
    study_file: Path = typer.Argument(..., help="Study file (studies/<name>.py)."),
    max_latency_ms: Optional[float] = typer.Option(None, help="Most accurate front member "
                                                   "within this latency."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Export this arch key."),
    objective: Optional[str] = typer.Option(None, help="Best front member by this objective "
                                            "(default: the knee of the front)."),
    finetune_steps: int = typer.Option(0, help="Fine-tune the exported model this many steps."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default runs/<study>/export/"
                                       "<key>)."),
    run: str = typer.Option("search", "--run", help="Search run to pick from."),
    force: bool = typer.Option(False, "--force", help="Accept a changed study file."),
    wait: bool = WAIT,
    storage: Optional[str] = STORAGE,
) -> None:
    """Export a subnet from the stored front with a model card."""
    _check_args(max_latency_ms=(max_latency_ms, 0, False),
                finetune_steps=(finetune_steps, 0, True))
    from nas.export.study import export_study

    with _study(study_file, storage, command="nas export", force=force, wait=wait) as ctx:
        card = export_study(ctx, arch_key=arch, max_latency_ms=max_latency_ms,
                            objective=objective, out=out, finetune_steps=finetune_steps,
                            run=run)
        exp = card["exported_model"]
        ctx.console.print(f"exported {card['arch_key']} ({card['label']}) to {card['out']}: "
                          f"{', '.join(card['files'])}")
        ctx.console.print(f"val accuracy {100 * exp['val_accuracy']:.2f} % (reproduces the "
                          f"stored value: {exp['reproduces_stored_accuracy']})"
                          + (f", predicted latency {card['latency']['predicted_ms']:.4g} ms"
                             if "latency" in card else ""))
        if "finetune" in card:
            ft = card["finetune"]
            ctx.console.print(f"fine-tuned {ft['steps']} steps: "
                              f"{100 * ft['before']['accuracy']:.2f} % -> "
                              f"{100 * ft['after']['accuracy']:.2f} %")


@_command()
def audit(
    study_file: Path = typer.Argument(..., help="Study file (studies/<name>.py)."),
    n: int = typer.Option(12, "--n", help="Archs to audit (>= 2), spread over the FLOPs range "
                          "and the stored front."),
    seeds: int = typer.Option(2, "--seeds", help="Stand-alone runs per arch (>= 2 gives the "
                              "noise ceiling)."),
    budget: Optional[float] = typer.Option(None, help="Stand-alone steps as a fraction of the "
                                           "supernet's schedule (default: the study's)."),
    steps: Optional[int] = typer.Option(None, help="Stand-alone steps (overrides --budget)."),
    workers: int = typer.Option(1, help="Ray workers training at once (1: in process)."),
    address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS",
                                          help="Ray cluster to join."),
    device: Optional[str] = typer.Option(None, help="cpu | cuda (default: the study's)."),
    run: str = typer.Option("search", "--run", help="Search run whose front is sampled."),
    force: bool = typer.Option(False, "--force", help="Accept a changed study file."),
    wait: bool = WAIT,
    storage: Optional[str] = STORAGE,
) -> None:
    """Rank-fidelity audit: train archs from scratch, compare with the supernet's ranking."""
    _check_args(n=(n, 2, True), seeds=(seeds, 1, True), budget=(budget, 0, False),
                steps=(steps, 1, True), workers=(workers, 1, True))
    from nas.audit import print_audit, run_audit
    from nas.pipeline import check_stored_predictor

    with _study(study_file, storage, command="nas audit", force=force, device=device,
                wait=wait) as ctx:
        check_stored_predictor(ctx)  # a crafted predictor file: one line, nothing written
        outcome = run_audit(ctx, n=n, seeds=seeds, workers=workers, address=address,
                            budget=budget, steps=steps, run=run)
        print_audit(outcome.report, console=ctx.console)
        ctx.console.print(f"{outcome.trained_now} stand-alone run(s) trained now, "
                          f"{outcome.reused} found in the store")


@_command()
def studies(storage: Optional[str] = STORAGE) -> None:
    """List the studies in the store with their stage status."""
    from nas.reports import print_studies

    with _store(storage) as store:
        print_studies(store)


@_command()
def show(
    study: str = typer.Argument(..., help="Study name or study file."),
    storage: Optional[str] = STORAGE,
) -> None:
    """Print what the store holds for a study: stages, evaluations, the Pareto front.
    A study file is not run: its study is found in the store by path (or by the name
    written in the file)."""
    from nas.reports import print_study
    from nas.study import study_name_in_store

    with _store(storage) as store:
        print_study(store, study_name_in_store(study, store=store))


@_command()
def tune(
    study_file: Path = typer.Argument(..., help="Study file (studies/<name>.py)."),
    trials: int = typer.Option(16, help="Recipes to try."),
    trial_steps: int = typer.Option(100, help="Training steps per trial."),
    workers: Optional[int] = typer.Option(None, help="Trials at a time (default: by CPUs)."),
    address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS",
                                          help="Ray cluster to join."),
    metric: str = typer.Option("loss", help="Panel metric to optimise: loss | accuracy."),
    seed: int = typer.Option(0, help="Optuna seed."),
    storage: Optional[str] = STORAGE,
) -> None:
    """AutoML of the training recipe: Ray Tune + Optuna (TPE) + ASHA; trials go to the store."""
    _check_args(trials=(trials, 1, True), trial_steps=(trial_steps, 1, True),
                workers=(workers, 1, True))
    if metric not in ("loss", "accuracy"):
        raise ValueError(f"--metric: expected 'loss' or 'accuracy', got {metric!r}")
    from nas.distributed import run_tune

    with _store(storage) as store:
        summary = run_tune(study_file=study_file, trials=trials, trial_steps=trial_steps,
                           workers=workers, address=address, metric=metric, store=store,
                           seed=seed)
    typer.echo(f"{len(summary.trials)} trials stored for {summary.study} in "
               f"{summary.seconds:.0f} s; best recipe: {summary.best}")
    typer.echo(f"train with it: nas train {study_file} --recipe best")


@_command()
def ui(
    port: int = typer.Option(8501, help="Port to serve on (127.0.0.1)."),
    storage: Optional[str] = STORAGE,
) -> None:
    """Browse studies, fronts, architectures, training, latency and predictors."""
    if not 1 <= port <= 65535:
        raise ValueError(f"--port: must be 1..65535, got {port}")
    from nas.app_launch import launch

    launch(storage_url=storage, port=port)


def main() -> None:
    """The console script. An exception no command expected (a bug, or an input no check
    foresaw) still prints one line and exits 1; ``--debug`` shows its traceback."""
    try:
        app(prog_name="nas")
    except Exception as exc:  # noqa: BLE001 - the last line of defence of the CLI
        if _state["debug"]:
            raise
        text = str(exc).strip()
        first = text.splitlines()[0] if text else ""
        typer.echo(f"error: {type(exc).__name__}: {first} (unexpected; `nas --debug ...` shows "
                   f"the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
