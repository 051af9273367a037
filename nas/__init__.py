"""The NAS engine: supernet, training, evaluation, export, search, storage, CLI.

Public objects load lazily (PEP 562), so `nas --help` does not import torch, and importing
`nas` never pulls in Ray, Optuna, SQLAlchemy or Streamlit: profiling and training run on a
bare GPU box with torch alone.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Supernet": "nas.supernet",
    "export_subnet": "nas.export",
    "load_subnet": "nas.export",
    "save_subnet": "nas.export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
