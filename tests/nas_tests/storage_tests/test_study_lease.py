"""The study lease with real processes on SQLite and PostgreSQL: a second run is refused
(naming the owner) or waits; a dead owner is taken over; older stores migrate to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from nas.storage import LeaseHeldError, open_store
from nas.storage.values import utc_now
from nas.study_lease import StudyLease

HOLDER = Path(__file__).with_name("lease_holder.py")


@pytest.fixture(params=["sqlite_file", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite_file":
        yield f"sqlite:///{tmp_path / 'nas.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = server.database()
    yield server.url(name)
    server.drop(name)


def _start(url: str, out: Path, hold_s: float, wait: bool = False,
           gate: Path | None = None) -> subprocess.Popen:
    """A lease holder process; with ``gate`` it asks for the lease once that file exists."""
    args = [sys.executable, str(HOLDER), url, "q", str(out), str(hold_s)]
    env = {**os.environ, "LEASE_HOLDER_GATE": str(gate)} if gate else None
    return subprocess.Popen(args + (["wait"] if wait else []), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _report(out: Path, proc: subprocess.Popen, timeout: float = 60) -> dict:
    path = out / f"{proc.pid}.json"
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None and not path.exists():
            raise AssertionError(f"holder exited {proc.returncode}: {proc.stderr.read()}")
        assert time.monotonic() < deadline, "no report from the lease holder"
        time.sleep(0.05)
    time.sleep(0.05)
    return json.loads(path.read_text())


def test_second_process_is_refused_naming_the_owner(url, tmp_path):
    open_store(url).close()  # create the schema once, before the race
    gate = tmp_path / "go"
    first = _start(url, tmp_path, hold_s=4)
    second = _start(url, tmp_path, hold_s=0, gate=gate)  # imports while the first starts
    assert _report(tmp_path, first)["held"]
    gate.touch()  # the second asks only now, while the first holds the lease
    got = _report(tmp_path, second)
    assert second.wait(60) == 1
    assert not got["held"]
    assert f"{socket.gethostname()} pid {first.pid} since" in got["error"]
    assert "--wait" in got["error"] and "\n" not in got["error"]
    assert first.wait(60) == 0
    with open_store(url) as store:
        assert store.get_lease(study="q") is None  # given back


def test_waiting_process_gets_the_lease_after_the_owner(url, tmp_path):
    open_store(url).close()
    gate = tmp_path / "go"
    first = _start(url, tmp_path, hold_s=3)
    second = _start(url, tmp_path, hold_s=0, wait=True, gate=gate)
    held_first = _report(tmp_path, first)
    gate.touch()  # it asks while the first holds the lease, so it has to wait
    got = _report(tmp_path, second)
    assert got["held"] and got["taken_over"] is None
    assert first.wait(60) == 0 and second.wait(60) == 0
    assert got["at"] >= held_first["at"] + 3 - 0.5  # only after the first let go


def test_killed_owner_is_taken_over(url, tmp_path):
    open_store(url).close()
    gate = tmp_path / "go"
    first = _start(url, tmp_path, hold_s=60)
    second = _start(url, tmp_path, hold_s=0, gate=gate)
    assert _report(tmp_path, first)["held"]
    os.kill(first.pid, signal.SIGKILL)
    first.wait(30)
    gate.touch()  # it asks once the owner is dead
    got = _report(tmp_path, second)
    assert second.wait(60) == 0
    assert got["held"] and got["taken_over"] == {"host": socket.gethostname(),
                                                 "pid": first.pid}


def test_other_host_is_taken_over_only_when_it_stopped_beating(url):
    with open_store(url) as store:
        def stale(lease, now):  # as StudyLease judges another host: by heartbeat only
            return (now - lease.heartbeat_at) > timedelta(seconds=30)

        store.acquire_lease(study="q", token="a" * 32, host="otherbox", pid=1,
                            command="nas run", is_stale=stale)
        with pytest.raises(LeaseHeldError, match="otherbox pid 1 since"):
            store.acquire_lease(study="q", token="b" * 32, host="here", pid=2,
                                command="nas run", is_stale=stale)

        def old(lease, now):  # the same check an hour later
            return stale(lease, now + timedelta(hours=1))

        lease, previous = store.acquire_lease(study="q", token="b" * 32, host="here", pid=2,
                                              command="nas run", is_stale=old)
        assert previous.host == "otherbox" and lease.host == "here"
        assert not store.heartbeat_lease(study="q", token="a" * 32)  # the old owner lost it
        assert store.heartbeat_lease(study="q", token="b" * 32)


def test_lease_thread_beats_and_detects_a_takeover(tmp_path):
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    with open_store(url) as store:
        lease = StudyLease(store=store, study="q", command="test", ttl_s=0.4).acquire()
        try:
            first = store.get_lease(study="q").heartbeat_at
            time.sleep(0.5)
            assert store.get_lease(study="q").heartbeat_at > first
            # another run on another host takes it over (as if this one had stalled)
            store.release_lease(study="q", token=lease.token)
            store.acquire_lease(study="q", token="c" * 32, host="otherbox", pid=9,
                                command="nas run", is_stale=lambda *_: True)
            time.sleep(0.4)
            with pytest.raises(RuntimeError, match="taken over by otherbox pid 9"):
                lease.check()
        finally:
            lease.release()
        assert store.get_lease(study="q").host == "otherbox"  # not ours to give back


def test_store_at_the_first_revision_migrates_and_leases(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine, inspect

    from nas.storage.database import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        assert "study_leases" not in inspect(conn).get_table_names()
    engine.dispose()
    with open_store(url) as store:
        lease, _ = store.acquire_lease(study="old", token="d" * 32, host="h", pid=3,
                                       command="nas run", is_stale=lambda *_: False)
        assert store.get_lease(study="old") == lease
        assert abs((lease.heartbeat_at - utc_now()).total_seconds()) < 60


def test_show_names_the_run_holding_the_study(tmp_path):
    from rich.console import Console

    from nas.reports import print_study

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    with open_store(url) as store:
        store.create_or_get_study(name="q", space="hybrid_vit_tiny")
        store.acquire_lease(study="q", token="e" * 32, host="otherbox", pid=77,
                            command="nas run", is_stale=lambda *_: False)
        console = Console(record=True, width=160)
        print_study(store, "q", console=console)
        assert "run by otherbox pid 77 since" in console.export_text()


def test_evaluations_of_a_store_before_0003_keep_their_checkpoint(tmp_path):
    """Migration 0003 renames ``evaluations.checkpoint`` (a sha256) to ``checkpoint_sha256``:
    an evaluation written by the older schema is read back with its checkpoint, and a replay
    of it updates that row instead of adding a second (the unique key follows the column)."""
    from alembic import command
    from sqlalchemy import create_engine, inspect, text

    from nas.storage import ArchRecord, Evaluation
    from nas.storage.database import alembic_config
    from search_spaces import get_space

    url = f"sqlite:///{tmp_path / 'old.db'}"
    sha = "c" * 64
    arch = get_space("hybrid_vit_tiny").largest()
    with open_store(url) as store:
        store.create_or_get_study(name="old", space="hybrid_vit_tiny")
        store.put_archs(study="old", archs=[ArchRecord.from_arch(arch)])
        store.put_checkpoint(study="old", path="ck.pt", sha256=sha, step=10)
    engine = create_engine(url)
    with engine.begin() as conn:  # back to the schema of 0002, and a row written by it
        command.downgrade(alembic_config(conn), "0002")
        assert "checkpoint" in {c["name"] for c in inspect(conn).get_columns("evaluations")}
        conn.execute(text(
            "INSERT INTO evaluations (study_id, arch_key, metric, value, source, checkpoint, "
            "fidelity, split, recorded_at) VALUES (1, :k, 'val_accuracy', 0.5, 'supernet', :s, "
            "'', 'val', :t)"), {"k": arch.key(), "s": sha, "t": utc_now()})
    engine.dispose()
    with open_store(url) as store:  # migrates to the head
        [ev] = store.get_evaluations(study="old", checkpoint_sha256=sha)
        assert (ev.arch_key, ev.value, ev.checkpoint_sha256) == (arch.key(), 0.5, sha)
        store.put_evaluations(study="old", evaluations=[
            Evaluation(arch.key(), "val_accuracy", 0.75, "supernet", checkpoint_sha256=sha)])
        [ev] = store.get_evaluations(study="old")
        assert ev.value == 0.75
