"""Rank-fidelity audit: does the supernet (and the predictor) rank subnets the way
stand-alone training does?

The core (`AuditConfig`, `StandaloneRecipe`, `select_archs`, `train_standalone`,
`rank_fidelity`) needs torch, numpy and scipy only, so it runs on a bare GPU box
(`benchmarks/audit.py`); `run_audit` binds it to a study's store and, when asked, to Ray.
Objects load lazily (PEP 562): importing the package imports nothing until a name is used,
and only `run_audit` brings in SQLAlchemy (and Ray with workers).

Example::

    from nas.audit import run_audit
    outcome = run_audit(ctx, n=12, seeds=2)  # ctx = nas.study_context.open_study(...)
    print_audit(outcome.report)
"""

from __future__ import annotations

from typing import Any

from nas.lazy import lazy_attribute

_EXPORTS = {
    "AuditConfig": "nas.audit.config",
    "StandaloneRecipe": "nas.audit.config",
    "SelectedArch": "nas.audit.selection",
    "select_archs": "nas.audit.selection",
    "StandaloneJob": "nas.audit.standalone",
    "StandaloneResult": "nas.audit.standalone",
    "run_in_process": "nas.audit.standalone",
    "train_standalone": "nas.audit.standalone",
    "disagreements": "nas.audit.fidelity",
    "rank_fidelity": "nas.audit.fidelity",
    "AUDIT_STAGE": "nas.audit.study_audit",
    "AuditOutcome": "nas.audit.study_audit",
    "run_audit": "nas.audit.study_audit",
    "stored_audit": "nas.audit.study_audit",
    "audit_summary": "nas.audit.table",
    "print_audit": "nas.audit.table",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return __all__
