"""Latency: profile a space's layers into a table on the target machine, compose and score
archs from it, judge how far it can be trusted, keep it in the store.

- `nas.latency.profile`: measure a table, calibrate and validate it on whole models (also
  ``python -m nas.latency.profile``; torch and the project's `kernels` only);
- `nas.latency.scorer`: `ArchLatencyScorer` (arch -> predicted ms from the space's slot
  table, fast enough for search);
- `nas.latency.trust`: the verdict on a table from its validation (`latency_trust`);
- `nas.latency.store`: tables between files and the study store (needs SQLAlchemy).

The names below load lazily (PEP 562), so ``python -m nas.latency.profile`` and a bare GPU
box never import the store's dependencies.
"""

from __future__ import annotations

from typing import Any

from nas.lazy import lazy_attribute

_EXPORTS = {
    "MeasureConfig": "nas.latency.profile",
    "build_table": "nas.latency.profile",
    "calibrate_and_validate": "nas.latency.profile",
    "default_timings": "nas.latency.profile",
    "enumerate_layer_specs": "nas.latency.profile",
    "measure_archs": "nas.latency.profile",
    "needs_validation": "nas.latency.profile",
    "ArchLatencyScorer": "nas.latency.scorer",
    "reference_latency": "nas.latency.scorer",
    "LatencyTrust": "nas.latency.trust",
    "latency_trust": "nas.latency.trust",
    "validation_line": "nas.latency.trust",
    "import_table_file": "nas.latency.store",
    "load_stored_table": "nas.latency.store",
    "store_table": "nas.latency.store",
    "table_from_record": "nas.latency.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return __all__
