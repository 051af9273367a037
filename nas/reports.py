"""Printing what the store holds: `nas studies` and `nas show`."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nas.storage import Store


def _console() -> Console:
    probe = Console()
    return Console(width=max(120, probe.width))


def study_name(study: str) -> str:
    """A study name, or the name declared by a study file."""
    if study.endswith(".py") or Path(study).is_file():
        from nas.study import load_study

        return load_study(study).name
    return study


def print_studies(store: Store, *, console: Console | None = None) -> None:
    console = console or _console()
    rows = store.list_studies()
    if not rows:
        console.print(f"no studies in {store.url}; run one with: nas run studies/quickstart.py")
        return
    table = Table(title=f"studies in {store.url}")
    for col in ("name", "space", "stages", "evaluations", "last activity"):
        table.add_column(col)
    for row in rows:
        stages = " ".join(f"{k}:{v}" for k, v in row.stages.items()) or "-"
        last = row.last_activity.strftime("%Y-%m-%d %H:%M") if row.last_activity else "-"
        table.add_row(row.study.name, row.study.space, stages, str(row.n_evaluations), last)
    console.print(table)


def _stage_detail(stage: str, detail: dict | None) -> object:
    """A stage's detail as printed; the audit's report (long) as its headline."""
    if stage != "audit" or not detail:
        return detail or ""
    if "comparisons" in detail:
        from nas.audit.table import headline

        return headline(detail)
    return {k: v for k, v in detail.items() if k not in ("selection", "selection_params")}


def _exported_key(stages) -> str | None:
    """The arch the export stage last wrote (its stage detail), if it is done."""
    stage = next((s for s in stages if s.stage == "export"), None)
    if stage is None or stage.status != "done" or not stage.detail:
        return None
    return stage.detail.get("arch")


def print_study(store: Store, name: str, *, console: Console | None = None) -> None:
    console = _console() if console is None or console.width < 100 else console
    record = store.get_study(name=name)
    if record is None:
        raise ValueError(f"no study named {name!r} in {store.url}")
    stages = store.stages(study=name)
    console.print(f"study [bold]{name}[/bold] (space {record.space}, file {record.study_path})")
    lease = store.get_lease(study=name)
    if lease is not None and lease.pid != os.getpid():  # another run holds it (or held it)
        age = (datetime.now(timezone.utc) - lease.heartbeat_at).total_seconds()
        console.print(f"  run by {lease.owner()} ({lease.command}), last heartbeat "
                      f"{max(age, 0):.0f} s ago", markup=False)
    for s in stages:
        console.print(f"  {s.stage:9s} {s.status:8s} {_stage_detail(s.stage, s.detail)}")
    runs = store.list_search_runs(study=name)
    if runs:
        from nas.search.session import front_knee_key

        run = runs[-1]
        front = sorted(store.get_front(study=name, run=run.name), key=lambda r: r.rank)
        knee = front_knee_key(front, run.config)
        exported = _exported_key(stages)
        table = Table(title=f"Pareto front of search run {run.name} ({run.method}, "
                            f"{len(front)} archs)")
        present = {k for row in front for k in row.objectives}
        keys = [k for k in ("accuracy", "loss", "latency_ms", "flops", "params") if k in present]
        for col in ("rank", "arch", *keys, "pick"):
            table.add_column(col, justify="right")
        for row in front:
            cells = []
            for k in keys:
                v = row.objectives.get(k, float("nan"))
                cells.append(f"{100 * v:.2f} %" if k == "accuracy" else
                             f"{v:,.0f}" if k in ("flops", "params") else f"{v:.4g}")
            marks = [m for m, on in (("knee", row.arch_key == knee),
                                     ("exported", row.arch_key == exported)) if on]
            table.add_row(str(row.rank), row.arch_key, *cells, ", ".join(marks))
        console.print(table)
        if knee is not None:
            console.print(f"knee (the default export): {knee}")
        return
    evals = store.get_evaluations(study=name, metric="val_accuracy", source="supernet")
    if not evals:
        console.print("no evaluations yet: run `nas run` to train and evaluate the supernet")
        return
    archs = {a.key: a for a in store.get_archs(study=name)}
    table = Table(title=f"top subnets by validation accuracy (inherited weights, {len(evals)} "
                        "evaluated; no search run yet)")
    for col in ("arch", "MFLOPs", "params", "val acc %"):
        table.add_column(col)
    for e in sorted(evals, key=lambda e: -e.value)[:10]:
        a = archs.get(e.arch_key)
        table.add_row(e.arch_key, f"{(a.flops or 0) / 1e6:.2f}" if a else "-",
                      f"{a.params:,}" if a and a.params else "-", f"{100 * e.value:.2f}")
    console.print(table)
