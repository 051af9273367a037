"""The CLI against a real PostgreSQL server: an empty database gets the schema, and a study
runs through its stages with every row stored there."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_helpers import nas, write_study  # noqa: E402

from nas.storage import open_store  # noqa: E402


@pytest.fixture
def pg_url(postgres_server):
    name = postgres_server.database()
    yield postgres_server.url(name)
    postgres_server.drop(name)


def test_studies_on_an_empty_postgres_database(pg_url, tmp_path):
    out = nas("studies", "--storage", pg_url, cwd=tmp_path)
    assert "no studies" in out.stdout


@pytest.mark.slow
def test_study_runs_against_postgres(pg_url, tmp_path):
    study = write_study(tmp_path, name="pgtiny", steps=6)
    nas("train", str(study), "--out", str(tmp_path / "t"), cwd=tmp_path)  # no store needed
    out = nas("run", str(study), "--storage", pg_url, cwd=tmp_path)
    assert "export: done" in out.stdout
    with open_store(pg_url) as store:
        statuses = {s.stage: s.status for s in store.stages(study="pgtiny")}
        assert set(statuses.values()) == {"done"}
        assert store.get_front(study="pgtiny", run="search")
        assert len(store.get_metrics(study="pgtiny", run="supernet", kind="train")) == 6
    listed = nas("studies", "--storage", pg_url, cwd=tmp_path)
    assert "pgtiny" in listed.stdout
