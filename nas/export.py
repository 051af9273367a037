"""Export: turn one arch of a supernet into a standalone model and write it to disk.

`export_subnet` builds a `kernels.StaticModel` from the arch's layer specs and copies the
active weight slices into it, so its outputs equal the supernet's (fp32, eval mode).
`save_subnet` writes everything needed to ship it: ``arch.json``, ``layers.json`` (the
specs, to rebuild with `kernels` alone), ``weights.pt`` (a state dict that loads with
``weights_only=True``), ``model.torchscript.pt`` and, with the ``onnx`` extra,
``model.onnx`` checked against onnxruntime. TorchScript and ONNX run without this project.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from kernels import StaticModel, StemSpec, spec_from_dict, spec_to_dict
from nas.supernet import Supernet
from search_spaces import Arch


@torch.no_grad()
def export_subnet(supernet: Supernet, arch: Arch) -> StaticModel:
    """The standalone model of ``arch`` with copied weights, in eval mode, on the supernet's
    device and dtype. Raises ValueError (naming the field) if ``arch`` is not in the space."""
    plan = supernet.plan(arch)
    ref = next(supernet.parameters())
    model = StaticModel([spec for _, spec in plan], device=ref.device, dtype=ref.dtype)
    for layer, (elastic, spec) in zip(model.layers, plan):
        layer.load_state_dict({k: v.detach().clone() for k, v in
                               elastic.active_weight(spec).items()}, strict=True)
    model.arch = arch
    return model.eval()


def example_input_for(model: StaticModel, batch_size: int = 2, *,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """A valid random input for a static model, from its stem spec."""
    stem = model.specs[0]
    if not isinstance(stem, StemSpec):
        raise ValueError("the model's first layer is not a stem")
    device = next(model.parameters()).device
    if stem.modality == "image":
        r = stem.resolution
        x = torch.randn(batch_size, stem.in_channels, r, r, generator=generator)
    else:
        x = torch.randint(0, stem.vocab_size, (batch_size, stem.tokens), generator=generator)
    return x.to(device)


def load_subnet(directory: str | os.PathLike) -> StaticModel:
    """Rebuild a saved model from ``layers.json`` and ``weights.pt`` (kernels only)."""
    directory = Path(directory)
    for name in ("arch.json", "layers.json", "weights.pt"):
        if not (directory / name).is_file():
            raise ValueError(f"{directory / name}: missing; not a saved subnet directory")
    specs = [spec_from_dict(d) for d in json.loads((directory / "layers.json").read_text())]
    model = StaticModel(specs)
    state = torch.load(directory / "weights.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.arch = Arch.from_json((directory / "arch.json").read_text())
    return model.eval()


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _write_onnx(model: StaticModel, x: torch.Tensor, path: Path, expected: torch.Tensor) -> None:
    import numpy as np
    import onnxruntime

    torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["output"],
                      dynamo=False, opset_version=17)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.cpu().numpy()})[0]
    err = float(np.abs(got - expected.cpu().numpy()).max())
    if err > 1e-4:
        raise RuntimeError(f"ONNX output differs from torch by {err:.2e} (> 1e-4)")


@torch.no_grad()
def save_subnet(model: StaticModel, arch: Arch, directory: str | os.PathLike, *,
                onnx: bool | None = None) -> dict[str, Path]:
    """Write the model files into ``directory``; returns {name: path}.

    ``onnx=None`` writes ONNX when onnx and onnxruntime are importable, ``True`` requires
    them. Files are written to a temporary folder first, so a failure leaves nothing behind.
    """
    if getattr(model, "arch", arch) != arch:
        raise ValueError("arch does not match the model being saved")
    want_onnx = _onnx_available() if onnx is None else onnx
    if want_onnx and not _onnx_available():
        raise ValueError("ONNX export needs the 'onnx' extra: pip install 'nas-service[onnx]'")
    directory = Path(directory)
    model = model.eval()
    cpu_model = StaticModel(model.specs)
    cpu_model.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    cpu_model.eval()
    gen = torch.Generator().manual_seed(0)
    x = example_input_for(cpu_model, 2, generator=gen)
    expected = cpu_model(x)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=directory.parent))
    try:
        (tmp / "arch.json").write_text(arch.to_json() + "\n")
        (tmp / "layers.json").write_text(json.dumps([spec_to_dict(s) for s in model.specs],
                                                    indent=1) + "\n")
        torch.save(cpu_model.state_dict(), tmp / "weights.pt")
        with warnings.catch_warnings():  # tracer notes on shape checks that are constant here
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(cpu_model, (x,), check_trace=False)
            torch.jit.save(traced, str(tmp / "model.torchscript.pt"))
            if want_onnx:
                _write_onnx(cpu_model, x, tmp / "model.onnx", expected)
        directory.mkdir(parents=True, exist_ok=True)
        written = {}
        for f in sorted(tmp.iterdir()):
            os.replace(f, directory / f.name)
            written[f.name] = directory / f.name
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
