"""Export: one home for turning a subnet into a model people can ship.

- `nas.export.model`: `export_subnet` (the standalone `kernels.StaticModel` of an arch, with
  the supernet's weights), `save_subnet` / `load_subnet` (``arch.json``, weights,
  TorchScript, ONNX) and `DeploymentModel`;
- `nas.export.study`: `export_study`, what `nas export` and `StudyRun.export` run: pick a
  front member of a stored study, export it and write its model card;
- `nas.export.bundle`: `export_arch_zip`, the zip the app's download button offers.

Objects load lazily (PEP 562): importing the package imports nothing until a name is used,
so the app can import it without torch.
"""

from __future__ import annotations

from typing import Any

from nas.lazy import lazy_attribute

_EXPORTS = {
    "DeploymentModel": "nas.export.model",
    "export_subnet": "nas.export.model",
    "load_subnet": "nas.export.model",
    "save_subnet": "nas.export.model",
    "audit_card": "nas.export.study",
    "choose_arch": "nas.export.study",
    "export_study": "nas.export.study",
    "model_card_markdown": "nas.export.study",
    "ExportError": "nas.export.bundle",
    "ExportedZip": "nas.export.bundle",
    "export_arch_zip": "nas.export.bundle",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return __all__
