"""Moving latency tables between `kernels.LatencyTable` (files) and the store."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from kernels import LatencyTable
from kernels.fingerprint import DeviceFingerprint
from kernels.latency_table import Calibration, LatencyEntry
from nas.storage import LatencyTableRecord, Store, StoredLatencyEntry


def store_table(store: Store, table: LatencyTable, *, space: str) -> LatencyTableRecord:
    """Save (upsert) a table with its calibration and validation under ``space``."""
    fp = table.fingerprint
    return store.put_latency_table(
        fingerprint_id=fp.id, fingerprint=fp.to_dict(), mode=fp.mode,
        batch_size=fp.batch_size, dtype=fp.dtype, space=space,
        entries=[StoredLatencyEntry(signature=k, median_ms=e.median_ms, spread_ms=e.spread_ms,
                              repeats=e.repeats) for k, e in table.entries.items()],
        calibration=None if table.calibration is None else asdict(table.calibration),
        validation={**(table.validation or {}), "meta": table.meta})


def load_stored_table(store: Store, *, space: str, device_type: str | None = None,
                      mode: str | None = None) -> LatencyTable | None:
    """The most recent stored table for ``space`` (optionally of a device type / mode)."""
    candidates = [t for t in store.list_latency_tables() if t.space == space
                  and (mode is None or t.mode == mode)
                  and (device_type is None or t.fingerprint.get("device_type") == device_type)]
    if not candidates:
        return None
    head = max(candidates, key=lambda t: t.updated_at)
    record = store.get_latency_table(fingerprint_id=head.fingerprint_id, mode=head.mode,
                                     batch_size=head.batch_size, dtype=head.dtype, space=space)
    assert record is not None  # listed just above
    return table_from_record(record)


def table_from_record(record: LatencyTableRecord) -> LatencyTable:
    """A stored table (with its entries) as the `kernels.LatencyTable` that was stored: the
    calibration, the validation and the meta `store_table` keeps inside it."""
    validation = dict(record.validation or {})
    meta = validation.pop("meta", {})
    return LatencyTable(
        DeviceFingerprint.from_dict(record.fingerprint),
        entries={k: LatencyEntry(median_ms=e.median_ms, spread_ms=e.spread_ms, repeats=e.repeats)
                 for k, e in record.entries.items()},
        calibration=None if record.calibration is None else Calibration(**record.calibration),
        validation=validation or None, meta=meta if isinstance(meta, dict) else {})


def import_table_file(store: Store, path: str | Path, *, space_name: str,
                      expected_signatures: set[str]) -> LatencyTable:
    """Check a table file from another machine against the study's space and store it.
    Refused (nothing written) if it lacks any layer the space can contain."""
    table = LatencyTable.load(path)
    missing = expected_signatures - set(table.entries)
    if missing:
        raise ValueError(f"latency table {path} lacks {len(missing)} of the "
                         f"{len(expected_signatures)} layer specs of space {space_name!r} "
                         f"(was it built for another space or overrides?)")
    store_table(store, table, space=space_name)
    return table
