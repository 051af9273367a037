"""Lazy re-exports for the packages' ``__init__`` modules (PEP 562).

A package lists ``name -> module`` and forwards its module-level ``__getattr__`` here, so
``import nas.latency`` stays cheap and a bare GPU box (torch only) never imports SQLAlchemy,
Ray or torch-geometric until a name that needs them is used.

Example (a package's ``__init__``)::

    _EXPORTS = {"store_table": "nas.latency.store"}
    __all__ = sorted(_EXPORTS)

    def __getattr__(name: str) -> Any:
        return lazy_attribute(__name__, _EXPORTS, name)
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


def lazy_attribute(package: str, exports: Mapping[str, str], name: str) -> Any:
    """``name`` from its module in ``exports``; AttributeError (naming ``package``) for a
    name the package does not export, as a plain module attribute lookup would raise."""
    if name in exports:
        return getattr(importlib.import_module(exports[name]), name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")
