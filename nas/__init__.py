"""The NAS engine: supernet, training, evaluation, export, search, storage, CLI.

The Python API: ``with nas.open_study("studies/quickstart.py") as study: study.run()``
(`nas.api`), then ``study.front()`` and ``study.export()``.

Public objects load lazily (PEP 562), so `nas --help` does not import torch, and importing
`nas` never pulls in Ray, Optuna, SQLAlchemy or Streamlit: profiling and training run on a
bare GPU box with torch alone.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Study": "nas.study",
    "StudyRun": "nas.api",
    "open_study": "nas.api",
    "Supernet": "nas.supernet",
    "export_subnet": "nas.export.model",
    "load_subnet": "nas.export.model",
    "save_subnet": "nas.export.model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
