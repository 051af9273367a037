"""The NAS engine: supernet, training, evaluation, export, search, storage, CLI.

The Python API: ``with nas.open_study("studies/quickstart.py") as study: study.run()``
(`nas.api`), then ``study.front()`` and ``study.export()``.

Public objects load lazily (PEP 562), so `nas --help` does not import torch, and importing
`nas` never pulls in Ray, Optuna, SQLAlchemy or Streamlit: profiling and training run on a
bare GPU box with torch alone.
"""

from __future__ import annotations

from typing import Any

from nas.lazy import lazy_attribute

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
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return __all__
