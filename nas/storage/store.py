"""`Store`: the repository API over the study database; no SQL lives outside this package.

Every method runs in one short transaction and returns plain records (`records.py`), never
session-bound objects. Writes are upserts on natural keys (``INSERT ... ON CONFLICT``), so
replaying a result never duplicates it; their verbs say so: ``put_*`` writes a row by its key
(inserting or updating it), ``get_*`` / ``list_*`` read, and only the identity rows have
their own verbs (`create_or_get_study`, `create_search_run`, the lease methods). Several
processes may write at once (see
`transactions.py`). Bad input raises one `StoreError` before anything is written. Open
one `Store` per process (an engine must not cross a fork).

Example::

    store = open_store()  # ./.nas/nas.db, $NAS_STORAGE, or open_store("postgresql://...")
    store.create_or_get_study(name="quickstart", space="hybrid_vit_tiny")
    store.put_archs(study="quickstart", archs=[ArchRecord.from_arch(arch, flops=f)])
    store.put_evaluations(study="quickstart",
                          evaluations=[Evaluation(arch.key(), "accuracy", 0.91, "supernet")])
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from nas.storage.database import connect, prepare_schema, resolve_url
from nas.storage.models import (
    SOURCES,
    STATUSES,
    ArchRow,
    CheckpointRow,
    EvaluationRow,
    LatencyEntryRow,
    LatencyTableRow,
    MetricLogRow,
    ParetoRow,
    PredictorRow,
    SearchRunRow,
    StageRow,
    StudyArchRow,
    StudyLeaseRow,
    StudyRow,
    TrialRow,
)
from nas.storage.records import (
    ArchRecord,
    CheckpointRecord,
    Evaluation,
    FrontRow,
    LatencyTableRecord,
    LeaseHeldError,
    LeaseRecord,
    MetricRecord,
    PredictorRecord,
    SearchRunRecord,
    StageStatus,
    StoredLatencyEntry,
    StoreError,
    StudyRecord,
    StudySummary,
    TrialRecord,
)
from nas.storage.transactions import Transactions, table_of
from nas.storage.values import (
    as_utc,
    checked_count,
    checked_float,
    checked_name,
    json_data,
    to_record,
    utc_now,
)


def open_store(url: str | None = None) -> Store:
    """Open (creating or migrating the schema) the store at ``url``, else ``$NAS_STORAGE``,
    else ``./.nas/nas.db``; raises `StoreError` naming the URL if it cannot be used."""
    engine, shown = connect(resolve_url(url))
    try:
        prepare_schema(engine, shown)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine=engine, url=shown)


class Store(Transactions):
    """Repository over one database (see the module docstring); use `open_store`."""

    # -- studies ------------------------------------------------------------------------

    def create_or_get_study(self, *, name: str, space: str,
                            space_overrides: dict[str, Any] | None = None,
                            study_path: str | Path = "", study_text: str = "",
                            study_hash: str | None = None,
                            package_versions: dict[str, Any] | None = None,
                            git_commit: str | None = None,
                            seeds: dict[str, Any] | None = None) -> StudyRecord:
        """The study ``name``, created with these fields if new (an existing one is returned
        unchanged: compare its ``study_hash`` and call `record_study_reproducibility`)."""
        now = utc_now()
        values = dict(name=checked_name(name, "study name"), space=checked_name(space, "space"),
                      space_overrides=json_data(space_overrides or {}, "space_overrides"),
                      study_path=str(study_path), study_text=study_text,
                      study_hash=study_hash or hashlib.sha256(study_text.encode()).hexdigest(),
                      package_versions=json_data(package_versions or {}, "package_versions"),
                      git_commit=git_commit, seeds=json_data(seeds or {}, "seeds"),
                      created_at=now, updated_at=now)

        def work(conn: Connection) -> StudyRecord:
            self._upsert(conn, StudyRow, [values], ["name"])
            table = table_of(StudyRow)
            return to_record(StudyRecord, conn.execute(
                select(table).where(table.c.name == name)).one())

        return self._run(work, write=True)

    def get_study(self, *, name: str) -> StudyRecord | None:
        def work(conn: Connection) -> StudyRecord | None:
            table = table_of(StudyRow)
            row = conn.execute(select(table).where(table.c.name == name)).first()
            return None if row is None else to_record(StudyRecord, row)

        return self._run(work, write=False)

    def record_study_reproducibility(self, *, name: str, study_path: str | Path,
                                     study_text: str, package_versions: dict[str, Any],
                                     git_commit: str | None, seeds: dict[str, Any],
                                     study_hash: str | None = None, space: str | None = None,
                                     space_overrides: dict[str, Any] | None = None,
                                     ) -> StudyRecord:
        """Overwrite what reproduces study ``name`` (after a forced resume of a changed file)."""
        values: dict[str, Any] = dict(
            study_path=str(study_path), study_text=study_text,
            study_hash=study_hash or hashlib.sha256(study_text.encode()).hexdigest(),
            package_versions=json_data(package_versions, "package_versions"),
            git_commit=git_commit, seeds=json_data(seeds, "seeds"), updated_at=utc_now())
        if space is not None:
            values["space"] = checked_name(space, "space")
        if space_overrides is not None:
            values["space_overrides"] = json_data(space_overrides, "space_overrides")

        def work(conn: Connection) -> StudyRecord:
            study_id = self._study_id(conn, name)
            table = table_of(StudyRow)
            conn.execute(update(table).where(table.c.id == study_id).values(values))
            return to_record(StudyRecord, conn.execute(
                select(table).where(table.c.id == study_id)).one())

        return self._run(work, write=True)

    def list_studies(self) -> list[StudySummary]:
        """Every study with its stage statuses, number of evaluations and last activity."""
        def work(conn: Connection) -> list[StudySummary]:
            studies, stages, evals = table_of(StudyRow), table_of(StageRow), table_of(EvaluationRow)
            rows = conn.execute(select(studies).order_by(studies.c.name)).all()
            by_study: dict[int, dict[str, str]] = {}
            latest: dict[int, list[datetime]] = {}
            for sid, stage, status, at in conn.execute(select(
                    stages.c.study_id, stages.c.stage, stages.c.status, stages.c.updated_at
            ).order_by(stages.c.id)):
                by_study.setdefault(sid, {})[stage] = status
                latest.setdefault(sid, []).append(as_utc(at))
            counts: dict[int, int] = {}
            for sid, n, at in conn.execute(select(
                    evals.c.study_id, func.count(), func.max(evals.c.recorded_at)
            ).group_by(evals.c.study_id)):
                counts[sid] = int(n)
                latest.setdefault(sid, []).append(as_utc(at))
            return [StudySummary(
                study=(record := to_record(StudyRecord, row)), stages=by_study.get(record.id, {}),
                n_evaluations=counts.get(record.id, 0),
                last_activity=max([record.updated_at, *latest.get(record.id, [])]),
            ) for row in rows]

        return self._run(work, write=False)

    # -- archs and evaluations ----------------------------------------------------------

    def put_arch(self, *, study: str, key: str, arch_json: str, flops: int | None = None,
                    params: int | None = None) -> None:
        self.put_archs(study=study, archs=[ArchRecord(key, arch_json, flops, params)])

    def put_archs(self, *, study: str, archs: Iterable[ArchRecord]) -> None:
        """Store archs (shared by all studies) and link them to ``study`` with their FLOPs
        and params (a ``None`` keeps what is stored)."""
        now, arch_rows, links = utc_now(), {}, {}
        for arch in archs:
            arch.check()
            arch_rows[arch.key] = dict(key=arch.key, arch_json=arch.arch_json, created_at=now)
            links[arch.key] = dict(arch_key=arch.key,
                                   flops=checked_count(arch.flops, "flops", optional=True),
                                   params=checked_count(arch.params, "params", optional=True))

        def work(conn: Connection) -> None:
            study_id = self._study_id(conn, study)
            self._upsert(conn, ArchRow, list(arch_rows.values()), ["key"])
            self._upsert(conn, StudyArchRow, [{**r, "study_id": study_id}
                                              for r in links.values()],
                         ["study_id", "arch_key"], ["flops", "params"], ["flops", "params"])

        self._run(work, write=True)

    def get_archs(self, *, study: str, keys: Iterable[str] | None = None) -> list[ArchRecord]:
        """Archs linked to ``study`` (by `put_archs` or an evaluation), sorted by key."""
        def work(conn: Connection) -> list[ArchRecord]:
            links, archs = table_of(StudyArchRow), table_of(ArchRow)
            query = (select(archs.c.key, archs.c.arch_json, links.c.flops, links.c.params)
                     .join(links, links.c.arch_key == archs.c.key)
                     .where(links.c.study_id == self._study_id(conn, study))
                     .order_by(archs.c.key))
            rows = conn.execute(query).all()
            wanted = None if keys is None else set(keys)
            return [to_record(ArchRecord, r) for r in rows if wanted is None or r.key in wanted]

        return self._run(work, write=False)

    def put_evaluations(self, *, study: str, evaluations: Iterable[Evaluation]) -> int:
        """Record evaluations; a replay (same study, arch, metric, source, checkpoint,
        fidelity, split) updates the value instead of adding a row. Returns the rows given
        (after merging duplicates). Archs must be stored first (`put_archs`)."""
        now = utc_now()
        rows: dict[tuple[str, ...], dict[str, Any]] = {}
        for ev in evaluations:
            what = f"evaluation of arch {ev.arch_key!r}"
            if ev.source not in SOURCES:
                raise StoreError(f"{what}: source must be one of {SOURCES}, got {ev.source!r}")
            row: dict[str, Any] = dict(
                arch_key=checked_name(ev.arch_key, f"{what}: arch_key", 64),
                metric=checked_name(ev.metric, f"{what}: metric", 100),
                value=checked_float(ev.value, f"{what}: {ev.metric}"), source=ev.source,
                checkpoint_sha256=ev.checkpoint_sha256 or "", fidelity=ev.fidelity or "",
                split=checked_name(ev.split, f"{what}: split", 50), recorded_at=now)
            rows[(row["arch_key"], row["metric"], ev.source, row["checkpoint_sha256"],
                  row["fidelity"], row["split"])] = row

        def work(conn: Connection) -> int:
            study_id = self._study_id(conn, study)
            missing = self._missing_archs(conn, (r["arch_key"] for r in rows.values()))
            if missing:
                raise StoreError(f"unknown arch keys {missing[:5]} ({len(missing)} in all): "
                                 "store them with put_archs first")
            shas = {r["checkpoint_sha256"] for r in rows.values()} - {""}
            ckpt = table_of(CheckpointRow)
            known = set(conn.scalars(select(ckpt.c.sha256).where(
                ckpt.c.study_id == study_id, ckpt.c.sha256.in_(sorted(shas))))) if shas else set()
            if shas - known:
                raise StoreError(f"unknown checkpoints {sorted(shas - known)[:3]} of study "
                                 f"{study!r}: add them with put_checkpoint first")
            self._upsert(conn, StudyArchRow, [dict(study_id=study_id, arch_key=k) for k in
                                              sorted({r["arch_key"] for r in rows.values()})],
                         ["study_id", "arch_key"])
            self._upsert(conn, EvaluationRow, [{**r, "study_id": study_id}
                                               for r in rows.values()],
                         ["study_id", "arch_key", "metric", "source", "checkpoint_sha256",
                          "fidelity", "split"], ["value", "recorded_at"])
            return len(rows)

        return self._run(work, write=True)

    def get_evaluations(self, *, study: str, metric: str | None = None,
                        source: str | None = None, split: str | None = None,
                        checkpoint_sha256: str | None = None,
                        arch_keys: Iterable[str] | None = None) -> list[Evaluation]:
        """Evaluations of ``study`` matching every filter given, oldest first."""
        def work(conn: Connection) -> list[Evaluation]:
            table = table_of(EvaluationRow)
            query = select(table).where(table.c.study_id == self._study_id(conn, study))
            for column, value in (("metric", metric), ("source", source), ("split", split),
                                  ("checkpoint_sha256", checkpoint_sha256)):
                if value is not None:
                    query = query.where(table.c[column] == value)
            rows = conn.execute(query.order_by(table.c.id)).all()
            wanted = None if arch_keys is None else set(arch_keys)
            return [to_record(Evaluation, r) for r in rows
                    if wanted is None or r.arch_key in wanted]

        return self._run(work, write=False)

    # -- checkpoints and training metrics -----------------------------------------------

    def put_checkpoint(self, *, study: str, path: str | Path, sha256: str,
                       step: int) -> CheckpointRecord:
        """Record a checkpoint (idempotent on its sha256; a new path or step is kept)."""
        row = dict(path=str(path), sha256=checked_name(sha256, "sha256", 64),
                   step=checked_count(step, "step"), created_at=utc_now())

        def work(conn: Connection) -> CheckpointRecord:
            study_id = self._study_id(conn, study)
            self._upsert(conn, CheckpointRow, [{**row, "study_id": study_id}],
                         ["study_id", "sha256"], ["path", "step"])
            table = table_of(CheckpointRow)
            return to_record(CheckpointRecord, conn.execute(select(table).where(
                table.c.study_id == study_id, table.c.sha256 == sha256)).one())

        return self._run(work, write=True)

    def list_checkpoints(self, *, study: str) -> list[CheckpointRecord]:
        def work(conn: Connection) -> list[CheckpointRecord]:
            table = table_of(CheckpointRow)
            return [to_record(CheckpointRecord, r) for r in conn.execute(select(table).where(
                table.c.study_id == self._study_id(conn, study)).order_by(table.c.step))]

        return self._run(work, write=False)

    def import_metrics_log(self, *, study: str, run: str, path: str | Path) -> int:
        """Import a JSONL metrics log (one object with int ``step`` and str ``kind`` per
        line); a re-import updates rows in place. An unterminated last line (a writer killed
        mid-line) is skipped. Returns the number of records imported."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise StoreError(f"metrics log {path}: {err.strerror or err}") from None
        lines, records = text.split("\n"), {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                if number == len(lines):
                    continue
                raise StoreError(f"metrics log {path}:{number}: not JSON ({err.msg})") from None
            if (not isinstance(record, dict) or isinstance(record.get("step"), bool)
                    or not isinstance(record.get("step"), int)
                    or not isinstance(record.get("kind"), str) or not record["kind"]):
                raise StoreError(f"metrics log {path}:{number}: expected an object with an "
                                 "integer 'step' and a string 'kind'")
            records[(record["step"], record["kind"])] = dict(
                run=checked_name(run, "run"), step=record["step"],
                kind=checked_name(record["kind"], "kind", 50),
                payload=json_data(record, f"metrics log {path}:{number}"))

        def work(conn: Connection) -> int:
            study_id = self._study_id(conn, study)
            self._upsert(conn, MetricLogRow, [{**r, "study_id": study_id}
                                              for r in records.values()],
                         ["study_id", "run", "step", "kind"], ["payload"])
            return len(records)

        return self._run(work, write=True)

    def get_metrics(self, *, study: str, run: str, kind: str | None = None) -> list[MetricRecord]:
        """The metrics log of ``run``, by step then kind."""
        def work(conn: Connection) -> list[MetricRecord]:
            table = table_of(MetricLogRow)
            query = select(table).where(table.c.study_id == self._study_id(conn, study),
                                        table.c.run == run)
            if kind is not None:
                query = query.where(table.c.kind == kind)
            rows = conn.execute(query.order_by(table.c.step, table.c.kind))
            return [to_record(MetricRecord, r) for r in rows]

        return self._run(work, write=False)

    def metric_runs(self, *, study: str) -> list[str]:
        """Names of the runs whose metrics logs were imported into ``study``."""
        def work(conn: Connection) -> list[str]:
            table = table_of(MetricLogRow)
            return list(conn.scalars(select(table.c.run).distinct().where(
                table.c.study_id == self._study_id(conn, study)).order_by(table.c.run)))

        return self._run(work, write=False)

    # -- latency tables -----------------------------------------------------------------

    def put_latency_table(self, *, fingerprint_id: str, fingerprint: dict[str, Any],
                           mode: str, batch_size: int, dtype: str,
                           entries: Iterable[StoredLatencyEntry] = (), space: str = "",
                           calibration: dict[str, Any] | None = None,
                           validation: dict[str, Any] | None = None) -> LatencyTableRecord:
        """Create or extend the table of (fingerprint, mode, batch, dtype, space): entries
        are upserted by layer signature; ``calibration``/``validation`` replace the stored
        ones when given. ``space`` is ``""`` for a table shared by every space. Returns
        the table without its entries (see `get_latency_table`)."""
        now = utc_now()
        header = dict(fingerprint_id=checked_name(fingerprint_id, "fingerprint_id", 64),
                      fingerprint=json_data(fingerprint, "fingerprint"),
                      mode=checked_name(mode, "mode", 50),
                      batch_size=checked_count(batch_size, "batch_size"),
                      dtype=checked_name(dtype, "dtype", 50), space=space,
                      calibration=json_data(calibration, "calibration"),
                      validation=json_data(validation, "validation"),
                      created_at=now, updated_at=now)
        rows = {e.signature: dict(
            signature=checked_name(e.signature, "layer signature", 100_000),
            median_ms=checked_float(e.median_ms, f"median_ms of {e.signature}"),
            spread_ms=checked_float(e.spread_ms, f"spread_ms of {e.signature}"),
            repeats=checked_count(e.repeats, f"repeats of {e.signature}")) for e in entries}
        keys = ["fingerprint_id", "mode", "batch_size", "dtype", "space"]

        def work(conn: Connection) -> LatencyTableRecord:
            self._upsert(conn, LatencyTableRow, [header], keys,
                         ["fingerprint", "calibration", "validation", "updated_at"],
                         ["calibration", "validation"])
            where = {k: header[k] for k in keys}
            table_id = self._latency_tables(conn, **where)[0].id
            self._upsert(conn, LatencyEntryRow, [{**r, "table_id": table_id}
                                                 for r in rows.values()],
                         ["table_id", "signature"], ["median_ms", "spread_ms", "repeats"])
            return self._latency_tables(conn, **where)[0]

        return self._run(work, write=True)

    def _latency_tables(self, conn: Connection, **where: Any) -> list[LatencyTableRecord]:
        table, entries = table_of(LatencyTableRow), table_of(LatencyEntryRow)
        n_entries = (select(func.count()).where(entries.c.table_id == table.c.id)
                     .scalar_subquery().label("n_entries"))
        query = select(table, n_entries).where(*(table.c[k] == v for k, v in where.items()))
        return [to_record(LatencyTableRecord, r) for r in conn.execute(query.order_by(table.c.id))]

    def get_latency_table(self, *, fingerprint_id: str, mode: str, batch_size: int,
                          dtype: str, space: str = "") -> LatencyTableRecord | None:
        """The table with all its entries, or None when none was saved for these settings."""
        where = dict(fingerprint_id=fingerprint_id, mode=mode, batch_size=batch_size,
                     dtype=dtype, space=space)

        def work(conn: Connection) -> LatencyTableRecord | None:
            found = self._latency_tables(conn, **where)
            if not found:
                return None
            table = table_of(LatencyEntryRow)
            rows = conn.execute(select(table).where(table.c.table_id == found[0].id))
            return replace(found[0], entries={r.signature: to_record(StoredLatencyEntry, r)
                                              for r in rows})

        return self._run(work, write=False)

    def list_latency_tables(self) -> list[LatencyTableRecord]:
        """Every stored table (without entries; ``n_entries`` counts them)."""
        return self._run(self._latency_tables, write=False)

    # -- predictors ---------------------------------------------------------------------

    def put_predictor(self, *, study: str, kind: str, metrics: dict[str, Any], n_labels: int,
                       blob: bytes | None = None, path: str | Path | None = None,
                       ) -> PredictorRecord:
        """Store a fitted predictor as ``blob`` (its saved files, e.g. a zip) or ``path``;
        saving identical content again only refreshes its metrics and time."""
        if (blob is None) == (path is None):
            raise StoreError("put_predictor: give exactly one of blob and path")
        content = blob if blob is not None else str(path).encode()
        row = dict(kind=checked_name(kind, "predictor kind", 100),
                   content_hash=hashlib.sha256(content).hexdigest(),
                   blob=None if blob is None else bytes(blob),
                   path=None if path is None else str(path),
                   metrics=json_data(metrics, "predictor metrics"),
                   n_labels=checked_count(n_labels, "n_labels"), created_at=utc_now())

        def work(conn: Connection) -> PredictorRecord:
            study_id = self._study_id(conn, study)
            self._upsert(conn, PredictorRow, [{**row, "study_id": study_id}],
                         ["study_id", "kind", "content_hash"], ["metrics", "created_at"])
            table = table_of(PredictorRow)
            return to_record(PredictorRecord, conn.execute(select(table).where(
                table.c.study_id == study_id, table.c.kind == row["kind"],
                table.c.content_hash == row["content_hash"])).one())

        return self._run(work, write=True)

    def get_latest_predictor(self, *, study: str,
                             kind: str | None = None) -> PredictorRecord | None:
        def work(conn: Connection) -> PredictorRecord | None:
            table = table_of(PredictorRow)
            query = select(table).where(table.c.study_id == self._study_id(conn, study))
            if kind is not None:
                query = query.where(table.c.kind == kind)
            row = conn.execute(query.order_by(table.c.created_at.desc(),
                                              table.c.id.desc())).first()
            return None if row is None else to_record(PredictorRecord, row)

        return self._run(work, write=False)

    # -- searches and Pareto fronts -----------------------------------------------------

    def create_search_run(self, *, study: str, name: str, method: str,
                          config: dict[str, Any], seed: int) -> SearchRunRecord:
        """The search run ``name`` of ``study``, created (status pending) if new."""
        now = utc_now()
        row = dict(name=checked_name(name, "search run name"),
                   method=checked_name(method, "method", 100),
                   config=json_data(config, "search config"), seed=checked_count(seed, "seed"),
                   status="pending", created_at=now, updated_at=now)

        def work(conn: Connection) -> SearchRunRecord:
            study_id = self._study_id(conn, study)
            self._upsert(conn, SearchRunRow, [{**row, "study_id": study_id}], ["study_id", "name"])
            return self._search_run(conn, study_id, name)

        return self._run(work, write=True)

    def _search_run(self, conn: Connection, study_id: int, name: str) -> SearchRunRecord:
        table = table_of(SearchRunRow)
        row = conn.execute(select(table).where(table.c.study_id == study_id,
                                               table.c.name == name)).first()
        if row is None:
            raise StoreError(f"no search run named {name!r} in this study")
        return to_record(SearchRunRecord, row)

    def put_search_run_status(self, *, study: str, name: str, status: str) -> None:
        if status not in STATUSES:
            raise StoreError(f"status must be one of {STATUSES}, got {status!r}")

        def work(conn: Connection) -> None:
            run = self._search_run(conn, self._study_id(conn, study), name)
            table = table_of(SearchRunRow)
            conn.execute(update(table).where(table.c.id == run.id).values(
                status=status, updated_at=utc_now()))

        self._run(work, write=True)

    def list_search_runs(self, *, study: str) -> list[SearchRunRecord]:
        def work(conn: Connection) -> list[SearchRunRecord]:
            table = table_of(SearchRunRow)
            return [to_record(SearchRunRecord, r) for r in conn.execute(select(table).where(
                table.c.study_id == self._study_id(conn, study)).order_by(table.c.id))]

        return self._run(work, write=False)

    def put_front(self, *, study: str, run: str, front: Iterable[FrontRow]) -> None:
        """Replace the Pareto front of search run ``run`` (archs must be stored)."""
        rows = [dict(arch_key=checked_name(r.arch_key, "front arch_key", 64),
                     objectives=json_data(r.objectives, "objectives"),
                     rank=checked_count(r.rank, "rank")) for r in front]
        if len({r["arch_key"] for r in rows}) != len(rows):
            raise StoreError("front: an arch appears twice")

        def work(conn: Connection) -> None:
            search = self._search_run(conn, self._study_id(conn, study), run)
            missing = self._missing_archs(conn, (r["arch_key"] for r in rows))
            if missing:
                raise StoreError(f"front: unknown arch keys {missing[:5]}: store them first")
            table = table_of(ParetoRow)
            conn.execute(delete(table).where(table.c.search_run_id == search.id))
            self._upsert(conn, ParetoRow, [{**r, "search_run_id": search.id} for r in rows],
                         ["search_run_id", "arch_key"])

        self._run(work, write=True)

    def get_front(self, *, study: str, run: str) -> list[FrontRow]:
        def work(conn: Connection) -> list[FrontRow]:
            search = self._search_run(conn, self._study_id(conn, study), run)
            table = table_of(ParetoRow)
            return [to_record(FrontRow, r) for r in conn.execute(select(table).where(
                table.c.search_run_id == search.id).order_by(table.c.rank, table.c.arch_key))]

        return self._run(work, write=False)

    # -- pipeline stages and trials -----------------------------------------------------

    def put_stage_status(self, *, study: str, stage: str, status: str,
                         detail: dict[str, Any] | None = None) -> StageStatus:
        """Set a stage's status: ``running`` stamps the start, ``done``/``failed`` the
        finish, ``pending`` clears both; ``detail`` replaces the stored one."""
        if status not in STATUSES:
            raise StoreError(f"stage status must be one of {STATUSES}, got {status!r}")
        now = utc_now()
        row = dict(stage=checked_name(stage, "stage", 50), status=status,
                   detail=json_data(detail, "stage detail"), updated_at=now,
                   started_at=now if status in ("running", "done", "failed") else None,
                   finished_at=now if status in ("done", "failed") else None)

        def work(conn: Connection) -> StageStatus:
            study_id = self._study_id(conn, study)
            keep = ["started_at"] if status in ("done", "failed") else []
            self._upsert(conn, StageRow, [{**row, "study_id": study_id}], ["study_id", "stage"],
                         ["status", "detail", "updated_at", "started_at", "finished_at"],
                         keep_stored=keep)
            table = table_of(StageRow)
            return to_record(StageStatus, conn.execute(select(table).where(
                table.c.study_id == study_id, table.c.stage == stage)).one())

        return self._run(work, write=True)

    def get_stage_status(self, *, study: str, stage: str) -> StageStatus | None:
        return next((s for s in self.stages(study=study) if s.stage == stage), None)

    def stages(self, *, study: str) -> list[StageStatus]:
        """Every recorded stage of ``study`` in the order first recorded."""
        def work(conn: Connection) -> list[StageStatus]:
            table = table_of(StageRow)
            return [to_record(StageStatus, r) for r in conn.execute(select(table).where(
                table.c.study_id == self._study_id(conn, study)).order_by(table.c.id))]

        return self._run(work, write=False)

    def put_trial(self, *, study: str, number: int, config: dict[str, Any],
                  score: float | None = None, status: str = "done") -> None:
        """Record (or update) hyper-parameter trial ``number``."""
        now = utc_now()
        row = dict(number=checked_count(number, "trial number"), config=json_data(config, "config"),
                   score=None if score is None else checked_float(score, "trial score"),
                   status=checked_name(status, "trial status", 50), created_at=now, updated_at=now)

        def work(conn: Connection) -> None:
            self._upsert(conn, TrialRow, [{**row, "study_id": self._study_id(conn, study)}],
                         ["study_id", "number"], ["config", "score", "status", "updated_at"])

        self._run(work, write=True)

    def list_trials(self, *, study: str) -> list[TrialRecord]:
        def work(conn: Connection) -> list[TrialRecord]:
            table = table_of(TrialRow)
            return [to_record(TrialRecord, r) for r in conn.execute(select(table).where(
                table.c.study_id == self._study_id(conn, study)).order_by(table.c.number))]

        return self._run(work, write=False)

    # -- study leases: one run at a time per study ---------------------------------------

    def acquire_lease(self, *, study: str, token: str, host: str, pid: int, command: str,
                      is_stale: Callable[[LeaseRecord, datetime], bool],
                      ) -> tuple[LeaseRecord, LeaseRecord | None]:
        """Take the lease of ``study`` for the run ``token`` (``host``, ``pid``), in one
        transaction: free, already ours, or held by an owner that ``is_stale(lease, now)``
        says stopped beating (then it is taken over). Returns the lease and the one taken
        over (None if none); raises `LeaseHeldError` naming the owner otherwise."""
        now = utc_now()
        row = dict(study=checked_name(study, "study name"), token=checked_name(token, "token", 64),
                   host=checked_name(host, "host", 255), pid=checked_count(pid, "pid"),
                   command=str(command)[:200], since=now, heartbeat_at=now)

        def work(conn: Connection) -> tuple[LeaseRecord, LeaseRecord | None]:
            table = table_of(StudyLeaseRow)
            query = select(table).where(table.c.study == study).with_for_update()
            held = conn.execute(query).first()
            if held is None:
                inserted = conn.execute(self._insert(StudyLeaseRow).values(**row)
                                        .on_conflict_do_nothing(index_elements=["study"]))
                if inserted.rowcount == 1:
                    return LeaseRecord(**row), None
                held = conn.execute(query).one()  # another run inserted it meanwhile
            current = to_record(LeaseRecord, held)
            if current.token == token:
                conn.execute(update(table).where(table.c.study == study).values(
                    heartbeat_at=now))
                return replace(current, heartbeat_at=now), None
            if not is_stale(current, now):
                age = (now - current.heartbeat_at).total_seconds()
                raise LeaseHeldError(
                    f"study {study!r} is being run by {current.owner()} ({current.command}; "
                    f"last heartbeat {max(age, 0):.0f} s ago): pass --wait to wait for it, "
                    f"or stop that run", lease=current)
            conn.execute(update(table).where(table.c.study == study,
                                             table.c.token == current.token).values(row))
            return LeaseRecord(**row), current

        return self._run(work, write=True)

    def heartbeat_lease(self, *, study: str, token: str) -> bool:
        """Beat the lease of ``study`` held by ``token``; False if the run lost it."""
        def work(conn: Connection) -> bool:
            table = table_of(StudyLeaseRow)
            done = conn.execute(update(table).where(
                table.c.study == study, table.c.token == token).values(heartbeat_at=utc_now()))
            return done.rowcount == 1

        return self._run(work, write=True)

    def release_lease(self, *, study: str, token: str) -> None:
        """Give the lease of ``study`` back (only if ``token`` still holds it)."""
        def work(conn: Connection) -> None:
            table = table_of(StudyLeaseRow)
            conn.execute(delete(table).where(table.c.study == study, table.c.token == token))

        self._run(work, write=True)

    def get_lease(self, *, study: str) -> LeaseRecord | None:
        """The run holding ``study`` now (possibly a dead one), or None."""
        def work(conn: Connection) -> LeaseRecord | None:
            table = table_of(StudyLeaseRow)
            row = conn.execute(select(table).where(table.c.study == study)).first()
            return None if row is None else to_record(LeaseRecord, row)

        return self._run(work, write=False)
