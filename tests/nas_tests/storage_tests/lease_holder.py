"""One run of the study-lease test, as its own process.

``python lease_holder.py URL STUDY OUT_DIR HOLD_S [wait]``: takes the lease of STUDY with
`nas.study_lease.StudyLease` (waiting for it with ``wait``), writes ``OUT_DIR/<pid>.json`` with
what happened (``{"held": true, "taken_over": ...}`` or ``{"held": false, "error": ...}``),
holds the lease (beating) for HOLD_S seconds and gives it back. With ``$LEASE_HOLDER_GATE``
set to a path, it imports everything, then waits for that file to exist before it asks for
the lease (so a test can start it early and still order it after another holder: the
imports take seconds on a busy machine, longer than a holder may hold).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from nas.storage import LeaseHeldError, open_store
from nas.study_lease import StudyLease


def main(url: str, study: str, out: Path, hold_s: float, wait: bool) -> int:
    report = out / f"{os.getpid()}.json"
    gate = os.environ.get("LEASE_HOLDER_GATE")
    while gate and not os.path.exists(gate):
        time.sleep(0.02)
    with open_store(url) as store:
        lease = StudyLease(store=store, study=study, command="lease test", wait=wait,
                           poll_s=0.1)
        try:
            lease.acquire()
        except LeaseHeldError as exc:
            report.write_text(json.dumps({"held": False, "error": str(exc)}))
            return 1
        taken = lease.taken_over
        report.write_text(json.dumps({
            "held": True, "at": time.time(),
            "taken_over": None if taken is None else {"host": taken.host, "pid": taken.pid}}))
        try:
            time.sleep(hold_s)
            lease.check()
        finally:
            lease.release()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4]),
                  len(sys.argv) > 5 and sys.argv[5] == "wait"))
