"""One writer of the storage concurrency test, run as its own process.

``python concurrent_writer.py URL WORKER GATE_DIR``: announces itself with
``GATE_DIR/ready-WORKER``, waits for ``GATE_DIR/go`` so every writer opens the (empty)
database at the same moment, then writes archs ``[10 * WORKER, 10 * WORKER + 30)`` and
two metrics for each, in batches of a worker-specific random order, so the writers' rows
overlap and arrive in conflicting orders (what deadlocks PostgreSQL unless the store
writes in key order).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from pathlib import Path

from nas.storage import ArchRecord, Evaluation, open_store

ARCHS_PER_WORKER = 30
STRIDE = 10
METRICS = ("accuracy", "loss")
BATCH = 6


def arch_record(index: int) -> ArchRecord:
    arch_json = json.dumps({"resolution": 8 + index, "stages": []}, separators=(",", ":"))
    return ArchRecord(key=hashlib.sha256(arch_json.encode()).hexdigest()[:16],
                      arch_json=arch_json, flops=1000 + index, params=10 + index)


def main(url: str, worker: int, gate: Path) -> None:
    (gate / f"ready-{worker}").touch()
    deadline = time.monotonic() + 60
    while not (gate / "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.005)
    store = open_store(url)
    store.create_or_get_study(name="concurrent", space="hybrid_vit_tiny")
    indices = list(range(STRIDE * worker, STRIDE * worker + ARCHS_PER_WORKER))
    random.Random(worker).shuffle(indices)
    for start in range(0, len(indices), BATCH):
        batch = [arch_record(i) for i in indices[start:start + BATCH]]
        store.put_archs(study="concurrent", archs=batch)
        store.put_evaluations(study="concurrent", evaluations=[
            Evaluation(arch_key=a.key, metric=m, value=worker + 0.5, source="supernet")
            for a in batch for m in METRICS])
        store.put_stage_status(study="concurrent", stage="evaluate", status="running",
                               detail={"worker": worker})
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
