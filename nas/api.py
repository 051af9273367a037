"""The Python API: run a study as a library, the way `optuna.create_study` is used.

    import nas

    with nas.open_study("studies/quickstart.py") as study:   # SQLite ./.nas/nas.db
        study.run()                     # every stage not done yet (resumes after a crash)
        for row in study.front():       # the stored Pareto front, best first
            print(row.arch_key, row.objectives)
        card = study.export()           # the knee, with its model card

`open_study` takes a study file or a `nas.study.Study` object (written once to
``<runs_root>/<name>/study.py``, so the store keeps the text that reproduces it, as for a
file) and a storage URL (``sqlite:///...``, ``postgresql+psycopg://...``; default
``$NAS_STORAGE``, else ``./.nas/nas.db``). It is the CLI's path: the study is checked
(space, data, recipe) before any store is opened or any file written, the run holds the
study's lease while it is open (a second `nas run` of the same study is refused, or waits
with ``wait=True``), and every stage records its status, so a killed run resumes.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from nas.storage import FrontRow
    from nas.study import Study
    from nas.study_context import StudyContext

STUDY_FILE_HEADER = '''"""Written by `nas.open_study` from a Study object; the store keeps it."""

from nas.search.objectives import Constraints
from nas.study import (
    AuditConfig,
    DataConfig,
    EvaluationConfig,
    PredictorConfig,
    ProfilingConfig,
    SearchConfig,
    Study,
    TrainConfig,
)

'''


def study_file_text(study: Study) -> str:
    """The text of a study file that loads back to ``study`` (its dataclass repr).

    Raises ValueError if ``study`` holds a value whose repr does not evaluate back to it (a
    custom object): such a study must be written as a file by hand."""
    text = STUDY_FILE_HEADER + f"study = {study!r}\n"
    namespace: dict[str, Any] = {}
    try:
        exec(compile(text, "<study>", "exec"), namespace)  # noqa: S102 - our own repr
        same = namespace.get("study") == study
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot be written"
        raise ValueError(f"study {study.name!r}: cannot be written as a study file "
                         f"({type(exc).__name__}: {exc}); save it as a file") from None
    if not same:
        raise ValueError(f"study {study.name!r}: its repr does not load back to the same "
                         "study; save it as a file")
    return text


@dataclass
class StudyRun:
    """An open study: its store, its lease and the stages' shared state (`StudyContext`).

    Use it as a context manager (or call `close`): the store connection and the study's
    lease are released on the way out."""

    context: StudyContext
    _stack: ExitStack = field(repr=False)

    @property
    def name(self) -> str:
        return self.context.name

    @property
    def study(self) -> Study:
        return self.context.study

    def run(self, *, stages: Sequence[str] | None = None, redo: Sequence[str] = (),
            nproc: int = 1) -> list[str]:
        """Run the stages not done yet (plus those in ``redo``), or exactly ``stages`` in
        the pipeline's order; returns the stages run. ``nproc`` > 1 trains data-parallel."""
        from nas.pipeline import available_stages, run_pipeline, run_stage

        if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
            raise ValueError(f"nproc: must be an integer >= 1, got {nproc!r}")
        order = available_stages()
        for name, given in (("stages", stages or ()), ("redo", redo)):
            if isinstance(given, str):
                raise ValueError(f"{name}: a list of stage names, got the string {given!r}")
            unknown = [s for s in given if s not in order]
            if unknown:
                raise ValueError(f"{name}: unknown stage(s) {unknown}; stages: {order}")
        if stages is None:
            return run_pipeline(self.context, redo=list(redo), nproc=nproc)
        ran = []
        for stage in [s for s in order if s in stages]:
            run_stage(self.context, stage, **({"nproc": nproc} if stage == "train" else {}))
            ran.append(stage)
        return ran

    def status(self) -> dict[str, str | None]:
        """Each stage's stored status (``"done"``, ``"running"``, ``"failed"``; None if it
        never ran), in the pipeline's order."""
        from nas.pipeline import available_stages

        stored = {s.stage: s.status for s in self.context.store.stages(study=self.name)}
        return {stage: stored.get(stage) for stage in available_stages()}

    def front(self, *, run: str = "search") -> list[FrontRow]:
        """The stored Pareto front of search run ``run`` (empty before the search stage)."""
        store = self.context.store
        if run not in {r.name for r in store.list_search_runs(study=self.name)}:
            return []
        return store.get_front(study=self.name, run=run)

    def export(self, *, arch: str | None = None, max_latency_ms: float | None = None,
               objective: str | None = None, out: str | Path | None = None,
               finetune_steps: int = 0, run: str = "search") -> dict[str, Any]:
        """Export a front member (default: the knee; ``arch`` a key, or the most accurate
        within ``max_latency_ms``, or the best by ``objective``) as a standalone model with
        its model card; returns the card (``card["out"]`` is the folder)."""
        from nas.export.study import export_study

        if max_latency_ms is not None and not max_latency_ms > 0:
            raise ValueError(f"max_latency_ms: must be > 0, got {max_latency_ms!r}")
        if isinstance(finetune_steps, bool) or not isinstance(finetune_steps, int) or (
                finetune_steps < 0):
            raise ValueError(f"finetune_steps: must be an integer >= 0, got {finetune_steps!r}")
        return export_study(self.context, arch_key=arch, max_latency_ms=max_latency_ms,
                            objective=objective, out=out, finetune_steps=finetune_steps,
                            run=run)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> StudyRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_study(study: str | Path | Study, *, storage: str | None = None, force: bool = False,
               device: str | None = None, runs_root: str | Path = "runs",
               wait: bool = False) -> StudyRun:
    """Create the study in the store, or find it there, and hold it for this process.

    Args:
        study: a study file (``studies/<name>.py``) or a `nas.study.Study`.
        storage: SQLAlchemy URL of the store (default ``$NAS_STORAGE``, else
            ``./.nas/nas.db``).
        force: accept a study that differs from the stored one (as ``nas run --force``).
        device: ``cpu`` / ``cuda`` for every stage (default: the study's).
        runs_root: folder of the runs (checkpoints, tables, exports): ``<runs_root>/<name>``.
        wait: if another run holds the study, wait for it instead of refusing.
    """
    return open_study_run(study, storage=storage, force=force, device=device,
                          runs_root=runs_root, wait=wait, command="nas.open_study")


def open_study_run(study: str | Path | Study, *, storage: str | None, force: bool,
                   device: str | None, runs_root: str | Path, wait: bool, command: str,
                   before_store: Callable[[Study], object] | None = None) -> StudyRun:
    """`open_study` for the API and the CLI alike: ``command`` names the lease's holder;
    ``before_store(study)`` runs after the study is checked and before the store is opened
    (the CLI checks an input file there), so a bad input writes nothing."""
    from nas.storage import open_store
    from nas.study import Study, check_study
    from nas.study_context import open_study as open_context
    from nas.study_context import prepare_study
    from nas.study_lease import StudyLease

    text: str | None = None  # a Study object's file text, written once the store is open
    if isinstance(study, Study):
        checked = check_study(study, device=device)  # before anything is written
        text = study_file_text(study)
        path = Path(runs_root) / study.name / "study.py"
    elif isinstance(study, (str, Path)):
        path = Path(study)
        checked = prepare_study(path, device=device)  # StudyFileError for a missing file
    else:
        raise TypeError(f"study: a study file path or a nas.study.Study, got "
                        f"{type(study).__name__}")
    if before_store is not None:
        before_store(checked.study)
    stack = ExitStack()
    try:
        store = stack.enter_context(open_store(storage))
        lease = stack.enter_context(StudyLease(store=store, study=checked.study.name,
                                               command=command, wait=wait))
        if text is not None and (not path.is_file() or path.read_text() != text):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        context = open_context(path, store=store, force=force, device=device,
                               runs_root=runs_root, checked=checked, lease=lease)
    except BaseException:
        stack.close()
        raise
    return StudyRun(context=context, _stack=stack)


__all__ = ["StudyRun", "open_study", "study_file_text"]
