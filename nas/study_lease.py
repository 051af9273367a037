"""One run per study: the lease a run holds on its study in the store (`StudyLease`).

Taken by `nas.open_study` (and every `nas` command that runs stages) before any stage
runs; `nas.study_context.StudyContext` carries it so each stage checks it first.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

from rich.console import Console

from nas.storage import LeaseHeldError, LeaseRecord, Store

LEASE_TTL_ENV = "NAS_LEASE_TTL_S"
DEFAULT_LEASE_TTL_S = 60.0


class LeaseLostError(RuntimeError):
    """Another run took the study over (this one stopped beating for too long)."""


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class StudyLease:
    """A run's hold on a study in the store (like Optuna's heartbeat): taken before any
    stage runs, beaten every ``ttl_s / 4`` seconds by a daemon thread, given back at the end.
    A second run on the study is refused with one line naming the owner (host, pid, since),
    or waits with ``wait``. An owner that stopped beating for ``ttl_s`` seconds (default
    60, ``$NAS_LEASE_TTL_S``), or whose process is gone on this host, is taken over: its
    stages left "running" are run again, resuming their partial work.

    Use as a context manager: ``with StudyLease(store=s, study="q", command="run"): ...``.
    """

    def __init__(self, *, store: Store, study: str, command: str, wait: bool = False,
                 ttl_s: float | None = None, poll_s: float = 1.0,
                 console: Console | None = None) -> None:
        ttl = ttl_s if ttl_s is not None else float(os.environ.get(LEASE_TTL_ENV,
                                                                   DEFAULT_LEASE_TTL_S))
        if not math.isfinite(ttl) or ttl <= 0:
            raise ValueError(f"lease ttl: must be a number > 0 s, got {ttl!r}")
        self.store, self.study, self.command, self.wait = store, study, command, wait
        self.ttl_s, self.poll_s = ttl, poll_s
        self.console = console or Console(stderr=True)
        self.host, self.pid, self.token = socket.gethostname(), os.getpid(), uuid.uuid4().hex
        self.taken_over: LeaseRecord | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def owner(self) -> str:
        return f"{self.host} pid {self.pid}"

    def is_stale(self, lease: LeaseRecord, now: datetime) -> bool:
        """Whether ``lease``'s owner stopped: its process is gone (same host) or it has not
        beaten for ``ttl_s`` seconds."""
        if lease.host == self.host and not _pid_alive(lease.pid):
            return True
        return (now - lease.heartbeat_at).total_seconds() > self.ttl_s

    def acquire(self) -> StudyLease:
        """Take the lease (waiting for it with ``wait``) and start beating."""
        announced = False
        while True:
            try:
                _, self.taken_over = self.store.acquire_lease(
                    study=self.study, token=self.token, host=self.host, pid=self.pid,
                    command=self.command, is_stale=self.is_stale)
                break
            except LeaseHeldError as exc:
                if not self.wait:
                    raise
                if not announced:
                    self.console.print(f"waiting for study {self.study!r}: held by "
                                       f"{exc.lease.owner()} ({exc.lease.command})",
                                       markup=False)
                    announced = True
                time.sleep(self.poll_s)
        if self.taken_over is not None:
            running = [s.stage for s in self._stages() if s.status == "running"]
            self.console.print(
                f"took study {self.study!r} over from {self.taken_over.owner()}, which stopped "
                f"beating" + (f"; resuming its stage(s) {', '.join(running)}" if running else ""),
                markup=False)
        self._thread = threading.Thread(target=self._beat, name=f"nas-lease-{self.study}",
                                        daemon=True)
        self._thread.start()
        return self

    def _stages(self) -> list:
        try:
            return self.store.stages(study=self.study)
        except ValueError:  # the study is not in the store yet
            return []

    def _beat(self) -> None:
        interval = max(0.05, self.ttl_s / 4)
        while not self._stop.wait(interval):
            try:
                held = self.store.heartbeat_lease(study=self.study, token=self.token)
            except Exception:  # a transient database error: try again at the next beat
                continue
            if not held:
                self.lost = True
                return

    def check(self) -> None:
        """Raise `LeaseLostError` if another run took the study over."""
        if self.lost:
            lease = self.store.get_lease(study=self.study)
            who = lease.owner() if lease is not None else "nobody"
            raise LeaseLostError(f"study {self.study!r} was taken over by {who} while this "
                                 f"run ({self.owner()}) was not beating; stopping")

    def release(self) -> None:
        """Stop beating and give the lease back (if still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.store.release_lease(study=self.study, token=self.token)

    def __enter__(self) -> StudyLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = ["DEFAULT_LEASE_TTL_S", "LEASE_TTL_ENV", "LeaseLostError", "StudyLease"]
