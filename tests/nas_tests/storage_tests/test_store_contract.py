"""The storage contract: one test class run against in-memory SQLite, file SQLite and a
real PostgreSQL server (see conftest.py), plus URL handling that needs no backend."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.pool import NullPool

from nas.storage import (
    ArchRecord,
    Evaluation,
    FrontRow,
    StoredLatencyEntry,
    StoreError,
    open_store,
)
from nas.storage.database import MIGRATIONS, alembic_config
from nas.storage.models import Base

HERE = Path(__file__).resolve().parent
STUDY = "contract"


def arch(index: int) -> ArchRecord:
    arch_json = json.dumps({"resolution": index, "stages": []}, separators=(",", ":"))
    return ArchRecord(hashlib.sha256(arch_json.encode()).hexdigest()[:16], arch_json,
                      flops=100 * index, params=index)


def row_counts(url: str) -> dict[str, int]:
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        counts = {name: conn.scalar(select(func.count()).select_from(table))
                  for name, table in Base.metadata.tables.items()}
    engine.dispose()
    return counts


def schema_revision(url: str) -> tuple[str, ...]:
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    engine.dispose()
    return heads


def write_everything(store, tmp_path: Path) -> None:
    """One of every kind of write; called twice by the replay test."""
    store.create_or_get_study(name=STUDY, space="hybrid_vit_tiny", study_text="study = 1\n",
                              space_overrides={"widths": (16, 32)}, seeds={"train": 0})
    store.put_archs(study=STUDY, archs=[arch(i) for i in range(1, 6)])
    ckpt = store.put_checkpoint(study=STUDY, path=tmp_path / "ckpt.pt", sha256="a" * 64, step=10)
    store.put_evaluations(study=STUDY, evaluations=[
        Evaluation(arch(i).key, metric, 0.1 * i, "supernet", checkpoint_sha256=ckpt.sha256,
                   fidelity="val_batches=4") for i in range(1, 6) for metric in ("acc", "loss")])
    store.put_evaluations(study=STUDY, evaluations=[Evaluation(arch(1).key, "acc", 0.5,
                                                               "standalone")])
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"kind": "train", "step": s, "loss": 1.0 / s}) + "\n"
                           for s in range(1, 21)) + '{"kind": "val", "step": 20, "panel": []}\n')
    store.import_metrics_log(study=STUDY, run="supernet", path=log)
    store.put_latency_table(fingerprint_id="fp1", fingerprint={"device": "cpu"}, mode="eager",
                             batch_size=1, dtype="float32",
                             entries=[StoredLatencyEntry(f"sig{i}", 1.0 + i, 0.1, 7)
                                      for i in range(4)])
    store.put_predictor(study=STUDY, kind="gnn", metrics={"kendall_tau": 0.7}, n_labels=5,
                         blob=b"zip bytes")
    store.create_search_run(study=STUDY, name="evolution", method="evolution",
                            config={"population": 8}, seed=3)
    store.put_front(study=STUDY, run="evolution", front=[
        FrontRow(arch(i).key, {"acc": 0.1 * i, "latency_ms": i}, rank=i) for i in (1, 3)])
    store.put_stage_status(study=STUDY, stage="train", status="done", detail={"steps": 20})
    store.put_trial(study=STUDY, number=0, config={"lr": 1e-3}, score=0.8)


class TestStoreContract:
    def test_empty_database_gets_the_schema(self, backend_url):
        store = open_store(backend_url)
        assert store.list_studies() == []
        engine = create_engine(backend_url, poolclass=NullPool)
        with engine.connect() as conn:
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        engine.dispose()
        assert schema_revision(backend_url) == tuple(ScriptDirectory(str(MIGRATIONS)).get_heads())
        store.close()
        open_store(backend_url).close()  # reopening an up-to-date database is a no-op

    def test_replays_never_duplicate_rows(self, backend_url, tmp_path):
        with open_store(backend_url) as store:
            write_everything(store, tmp_path)
            first = row_counts(backend_url)
            write_everything(store, tmp_path)
            assert row_counts(backend_url) == first
        assert first["evaluations"] == 11 and first["metric_logs"] == 21
        assert first["latency_entries"] == 4 and first["pareto_fronts"] == 2
        # every table is written, but the lease table: a lease is held by a running `nas run`
        # (tests/nas_tests/storage_tests/test_study_lease.py), not by results
        assert all(first[name] > 0 for name in first if name != "study_leases")

    def test_round_trips(self, backend_url, tmp_path):
        with open_store(backend_url) as store:
            write_everything(store, tmp_path)
            study = store.get_study(name=STUDY)
            assert study.space_overrides == {"widths": [16, 32]}
            assert study.study_hash == hashlib.sha256(b"study = 1\n").hexdigest()
            assert study.created_at.tzinfo is not None
            [summary] = store.list_studies()
            assert summary.stages == {"train": "done"} and summary.n_evaluations == 11
            assert summary.last_activity >= study.created_at
            assert {a.key: a.flops for a in store.get_archs(study=STUDY)} == {
                arch(i).key: 100 * i for i in range(1, 6)}
            acc = store.get_evaluations(study=STUDY, metric="acc", source="supernet")
            assert sorted(e.value for e in acc) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
            assert {e.checkpoint_sha256 for e in acc} == {"a" * 64}
            assert len(store.get_evaluations(study=STUDY, arch_keys=[arch(1).key])) == 3
            metrics = store.get_metrics(study=STUDY, run="supernet", kind="train")
            assert [m.step for m in metrics] == list(range(1, 21))
            assert metrics[1].payload["loss"] == pytest.approx(0.5)
            assert store.metric_runs(study=STUDY) == ["supernet"]
            table = store.get_latency_table(fingerprint_id="fp1", mode="eager", batch_size=1,
                                            dtype="float32")
            assert table.entries["sig2"] == StoredLatencyEntry("sig2", 3.0, 0.1, 7)
            assert [t.n_entries for t in store.list_latency_tables()] == [4]
            assert store.get_latest_predictor(study=STUDY).blob == b"zip bytes"
            assert [r.arch_key for r in store.get_front(study=STUDY, run="evolution")] == [
                arch(1).key, arch(3).key]
            assert store.list_trials(study=STUDY)[0].config == {"lr": 1e-3}

    def test_replayed_values_update_in_place(self, backend_url, tmp_path):
        with open_store(backend_url) as store:
            write_everything(store, tmp_path)
            key = arch(2).key
            store.put_evaluations(study=STUDY, evaluations=[
                Evaluation(key, "acc", 0.99, "supernet", checkpoint_sha256="a" * 64,
                           fidelity="val_batches=4")])
            assert [e.value for e in store.get_evaluations(
                study=STUDY, metric="acc", source="supernet", arch_keys=[key])] == [0.99]
            store.put_archs(study=STUDY, archs=[ArchRecord(key, arch(2).arch_json)])
            assert store.get_archs(study=STUDY, keys=[key])[0].flops == 200  # None keeps it
            store.put_latency_table(fingerprint_id="fp1", fingerprint={"device": "cpu"},
                                     mode="eager", batch_size=1, dtype="float32",
                                     entries=[StoredLatencyEntry("sig0", 9.0, 0.2, 3)],
                                     validation={"mape": 4.0})
            table = store.get_latency_table(fingerprint_id="fp1", mode="eager", batch_size=1,
                                            dtype="float32")
            assert table.validation == {"mape": 4.0} and table.entries["sig0"].median_ms == 9.0
            assert len(table.entries) == 4
            store.put_predictor(study=STUDY, kind="gnn", metrics={}, n_labels=9, blob=b"v2")
            assert store.get_latest_predictor(study=STUDY, kind="gnn").blob == b"v2"
            store.put_front(study=STUDY, run="evolution", front=[FrontRow(key, {"acc": 1}, 0)])
            assert [r.arch_key for r in store.get_front(study=STUDY, run="evolution")] == [key]
            changed = store.record_study_reproducibility(
                name=STUDY, study_path="s.py", study_text="study = 2\n",
                package_versions={"torch": "2.13.0"}, git_commit="abc", seeds={"train": 1})
            assert changed.study_text == "study = 2\n" and changed.git_commit == "abc"
            again = store.create_or_get_study(name=STUDY, space="other", study_text="x")
            assert again.study_text == "study = 2\n" and again.space == "hybrid_vit_tiny"

    def test_stage_status_transitions(self, backend_url):
        with open_store(backend_url) as store:
            store.create_or_get_study(name=STUDY, space="hybrid_vit_tiny")
            running = store.put_stage_status(study=STUDY, stage="train", status="running")
            assert running.started_at is not None and running.finished_at is None
            done = store.put_stage_status(study=STUDY, stage="train", status="done",
                                          detail={"step": 5})
            assert done.started_at == running.started_at and done.finished_at is not None
            store.put_stage_status(study=STUDY, stage="profile", status="failed")
            pending = store.put_stage_status(study=STUDY, stage="train", status="pending")
            assert pending.started_at is None and pending.finished_at is None
            assert [(s.stage, s.status) for s in store.stages(study=STUDY)] == [
                ("train", "pending"), ("profile", "failed")]
            assert store.get_stage_status(study=STUDY, stage="search") is None

    def test_bad_input_is_one_clear_error_and_writes_nothing(self, backend_url, tmp_path):
        with open_store(backend_url) as store:
            write_everything(store, tmp_path)
            before = row_counts(backend_url)
            good = Evaluation(arch(1).key, "new_metric", 1.0, "supernet")
            bad_batches = {
                "unknown arch keys": [good, Evaluation("0" * 16, "acc", 1.0, "supernet")],
                "finite": [good, Evaluation(arch(1).key, "acc", float("nan"), "supernet")],
                "source must be": [good, Evaluation(arch(1).key, "acc", 1.0, "guess")],
                "unknown checkpoints": [Evaluation(arch(1).key, "acc", 1.0, "supernet",
                                                   checkpoint_sha256="b" * 64)],
            }
            for message, batch in bad_batches.items():
                with pytest.raises(StoreError, match=message):
                    store.put_evaluations(study=STUDY, evaluations=batch)
            with pytest.raises(StoreError, match="no study named 'missing'"):
                store.put_evaluations(study="missing", evaluations=[good])
            with pytest.raises(StoreError, match="key is not the hash"):
                store.put_archs(study=STUDY, archs=[arch(7), ArchRecord("0" * 16, "{}")])
            with pytest.raises(StoreError, match="unknown arch keys"):
                store.put_front(study=STUDY, run="evolution", front=[FrontRow("f" * 16, {}, 0)])
            with pytest.raises(StoreError, match="stage status must be one of"):
                store.put_stage_status(study=STUDY, stage="train", status="finished")
            with pytest.raises(StoreError, match="not JSON data"):
                store.put_trial(study=STUDY, number=1, config={"fn": object()})
            log = tmp_path / "broken.jsonl"
            log.write_text('{"kind": "train", "step": 100}\nnot json\n{"kind": "train", "step": 1')
            with pytest.raises(StoreError, match=r"broken.jsonl:2: not JSON"):
                store.import_metrics_log(study=STUDY, run="other", path=log)
            with pytest.raises(StoreError, match="metrics log"):
                store.import_metrics_log(study=STUDY, run="other", path=tmp_path / "nope.jsonl")
            assert row_counts(backend_url) == before
            assert store.get_front(study=STUDY, run="evolution")[0].arch_key == arch(1).key

    def test_truncated_last_log_line_is_skipped(self, backend_url, tmp_path):
        with open_store(backend_url) as store:
            store.create_or_get_study(name=STUDY, space="hybrid_vit_tiny")
            log = tmp_path / "metrics.jsonl"
            log.write_text('{"kind": "train", "step": 1, "loss": NaN}\n{"kind": "train", "st')
            assert store.import_metrics_log(study=STUDY, run="r", path=log) == 1
            assert store.get_metrics(study=STUDY, run="r")[0].payload["loss"] is None

    def test_concurrent_writers_store_each_row_once(self, backend_url, tmp_path):
        if "mode=memory" in backend_url:
            pytest.skip("an in-memory database cannot be shared between processes")
        workers, gate = 4, tmp_path / "gate"
        gate.mkdir()
        procs = [subprocess.Popen([sys.executable, str(HERE / "concurrent_writer.py"),
                                   backend_url, str(w), str(gate)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for w in range(workers)]
        deadline = time.monotonic() + 60
        while len(list(gate.glob("ready-*"))) < workers and time.monotonic() < deadline:
            time.sleep(0.01)
        (gate / "go").touch()
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * workers, "\n".join(outputs)
        n_archs = 10 * (workers - 1) + 30
        counts = row_counts(backend_url)
        assert counts["studies"] == 1 and counts["archs"] == n_archs
        assert counts["study_archs"] == n_archs and counts["evaluations"] == 2 * n_archs
        assert counts["stages"] == 1
        with open_store(backend_url) as store:
            evals = store.get_evaluations(study="concurrent")
        assert len({(e.arch_key, e.metric) for e in evals}) == 2 * n_archs

    def test_newer_schema_is_refused_and_nothing_changes(self, backend_url, tmp_path):
        with open_store(backend_url) as store:
            write_everything(store, tmp_path)
        engine = create_engine(backend_url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        engine.dispose()
        before = row_counts(backend_url)
        db_file = tmp_path / "nas.db"
        file_bytes = db_file.read_bytes() if db_file.exists() else None
        with pytest.raises(StoreError, match=r"created by a newer version of nas \(schema "
                                             r"revision 9999_future\); upgrade nas"):
            open_store(backend_url)
        assert row_counts(backend_url) == before
        assert schema_revision(backend_url) == ("9999_future",)
        if file_bytes is not None:
            assert db_file.read_bytes() == file_bytes

    def test_older_schema_is_migrated(self, backend_url):
        script = ScriptDirectory(str(MIGRATIONS))
        head = script.get_current_head()
        older = ["base"] + [r.revision for r in script.walk_revisions() if r.revision != head]
        for revision in older:
            engine = create_engine(backend_url, poolclass=NullPool)
            with engine.begin() as conn:
                command.upgrade(alembic_config(conn), "head")
                command.downgrade(alembic_config(conn), revision)
            engine.dispose()
            assert schema_revision(backend_url) == (() if revision == "base" else (revision,))
            with open_store(backend_url) as store:
                store.create_or_get_study(name=f"after_{revision}", space="hybrid_vit_tiny")
                assert [s.study.name for s in store.list_studies()] == [f"after_{revision}"]
            assert schema_revision(backend_url) == (head,)
            engine = create_engine(backend_url, poolclass=NullPool)
            with engine.begin() as conn:
                command.downgrade(alembic_config(conn), "base")
            engine.dispose()

    def test_foreign_tables_are_refused(self, backend_url):
        engine = create_engine(backend_url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE studies (id INTEGER PRIMARY KEY)"))
        engine.dispose()
        with pytest.raises(StoreError, match=r"already has tables \['studies'\]"):
            open_store(backend_url)
        assert schema_revision(backend_url) == ()


class TestUrls:
    @pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
    def test_plain_in_memory_sqlite(self, url):
        with open_store(url) as store:
            store.create_or_get_study(name="m", space="hybrid_vit_tiny")
            store.put_archs(study="m", archs=[arch(1)])
            assert [a.key for a in store.get_archs(study="m")] == [arch(1).key]

    def test_unreachable_postgres_is_one_quick_clear_error(self):
        url = "postgresql+psycopg://nobody:secret@127.0.0.1:1/x"
        start = time.monotonic()
        with pytest.raises(StoreError) as info:
            open_store(url)
        assert time.monotonic() - start < 15
        message = str(info.value)
        assert "cannot open database at postgresql+psycopg://nobody:***@127.0.0.1:1/x" in message
        assert "secret" not in message and "\n" not in message

    def test_plain_postgresql_scheme_uses_psycopg(self):
        with pytest.raises(StoreError, match="at postgresql://nobody@127.0.0.1:1/x") as info:
            open_store("postgresql://nobody@127.0.0.1:1/x?connect_timeout=2")
        assert "psycopg2" not in str(info.value)  # psycopg 3 reached the (closed) port

    @pytest.mark.parametrize("url, message", [
        ("not a url", "is not a database URL"),
        ("mysql://u:pw@host/db", r"mysql://u:\*\*\*@host/db: backend 'mysql' is not supported"),
        ("sqlite+nodriver:///x.db", "cannot open database at sqlite\\+nodriver"),
    ])
    def test_malformed_urls(self, url, message):
        with pytest.raises(StoreError, match=message):
            open_store(url)

    def test_sqlite_in_missing_folder_writes_nothing(self, tmp_path):
        missing = tmp_path / "no" / "such"
        with pytest.raises(StoreError, match="does not exist"):
            open_store(f"sqlite:///{missing / 'nas.db'}")
        assert not (tmp_path / "no").exists()

    def test_default_location_and_environment(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("NAS_STORAGE", raising=False)
        with open_store() as store:
            assert store.url == f"sqlite:///{tmp_path / '.nas' / 'nas.db'}"
        assert (tmp_path / ".nas" / "nas.db").is_file()
        monkeypatch.setenv("NAS_STORAGE", f"sqlite:///{tmp_path / 'env.db'}")
        with open_store() as store:
            store.create_or_get_study(name="e", space="hybrid_vit_tiny")
        engine = create_engine(f"sqlite:///{tmp_path / 'env.db'}")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        engine.dispose()

    def test_wal_switch_waits_for_another_processs_write(self, tmp_path):
        """SQLite refuses the switch to WAL at once, without its busy timeout, while
        another connection holds a write transaction (what failed a CI run when four
        processes opened a new database together); opening waits for the writer."""
        import sqlite3
        import threading

        path = tmp_path / "nas.db"
        with open_store(f"sqlite:///{path}") as store:
            store.create_or_get_study(name="w", space="hybrid_vit_tiny")
        writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        writer.execute("PRAGMA journal_mode = DELETE")
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE studies SET space = space")
        with pytest.raises(sqlite3.OperationalError, match="locked"):  # the SQLite behaviour
            sqlite3.connect(path, timeout=5, isolation_level=None).execute(
                "PRAGMA journal_mode = WAL")
        release = threading.Timer(0.3, writer.execute, args=("COMMIT",))
        release.start()
        started = time.monotonic()
        with open_store(f"sqlite:///{path}") as store:
            assert store.get_study(name="w") is not None
        release.join()
        writer.close()
        assert time.monotonic() - started >= 0.25
        engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        engine.dispose()

    def test_migrations_ship_as_package_data(self, repo):
        tomllib = pytest.importorskip("tomllib")
        config = tomllib.loads((repo / "pyproject.toml").read_text())
        patterns = config["tool"]["setuptools"]["package-data"]["nas.storage"]
        package = MIGRATIONS.parent
        shipped = {p for pattern in patterns for p in package.glob(pattern)}
        needed = {p for p in MIGRATIONS.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
        assert needed and needed <= shipped
