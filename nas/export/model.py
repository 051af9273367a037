"""Export: turn one arch of a supernet into a standalone model and write it to disk.

`export_subnet` builds a `kernels.StaticModel` from the arch's layer specs and copies the
active weight slices into it, so its outputs equal the supernet's (fp32, eval mode).
`save_subnet` writes everything needed to ship it: ``arch.json``, ``layers.json`` (the
specs, to rebuild with `kernels` alone), ``weights.pt`` (a state dict that loads with
``weights_only=True``), ``model.torchscript.pt`` and, with the ``onnx`` extra,
``model.onnx`` checked against onnxruntime. TorchScript and ONNX run without this project.

Both deployment files take any batch size (the ONNX input and output declare a symbolic
``batch`` axis). A sequence model also takes any length from 1 to its context (``length``
axis): `DeploymentModel` pads the tokens to the context, runs the model and cuts the output
back, which gives the outputs of a run at that length because every sequence layer is
causal (position t sees tokens <= t only). The cost of a shorter input is that of the full
context. Image models take the arch's resolution only (``[batch, C, R, R]``). Both files
are checked at batch 1 and 7 (and a shorter length) before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import cast

import torch

from kernels import StaticModel, StemSpec, spec_from_dict, spec_to_dict
from nas.supernet import Supernet
from search_spaces import Arch, SearchSpace


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


class DeploymentModel(torch.nn.Module):
    """What the TorchScript and ONNX files hold: ``model`` taking any batch size and, for a
    sequence model, any length 1..``context`` (module docstring)."""

    def __init__(self, model: StaticModel) -> None:
        super().__init__()
        stem = model.specs[0]
        if not isinstance(stem, StemSpec):
            raise ValueError("the model's first layer is not a stem")
        self.model = model
        self.context = stem.tokens if stem.modality == "sequence" else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.context:
            return self.model(x)
        # pad with token 0 to the context, without a data-dependent pad size (so the traced
        # graph keeps the length symbolic), run, and cut back to the input's length
        pad = x.new_zeros(1, self.context).expand(x.shape[0], self.context)
        full = torch.cat([x, pad], dim=1)[:, :self.context]
        return self.model(full)[:, :x.shape[1]]


def check_inputs(model: StaticModel, *, batch_sizes: tuple[int, ...] = (1, 7),
                 seed: int = 0) -> list[torch.Tensor]:
    """Inputs a deployment file is checked on: each batch size at the model's full size, and
    for a sequence model also a shorter length (half the context, at least 1)."""
    gen = torch.Generator().manual_seed(seed)
    inputs = [example_input_for(model, b, generator=gen) for b in batch_sizes]
    stem = cast(StemSpec, model.specs[0])  # a StaticModel starts with its stem
    if stem.modality == "sequence" and stem.tokens > 1:
        inputs.append(example_input_for(model, 3, generator=gen)[:, :max(1, stem.tokens // 2)])
    return inputs


def dynamic_axes(model: StaticModel) -> dict[str, dict[int, str]]:
    """The ONNX dynamic axes: ``batch`` always, ``length`` for a sequence model."""
    stem = cast(StemSpec, model.specs[0])  # a StaticModel starts with its stem
    axes = {0: "batch", 1: "length"} if stem.modality == "sequence" else {0: "batch"}
    return {"input": dict(axes), "output": dict(axes)}


def load_subnet(directory: str | os.PathLike, *, space: SearchSpace | None = None
                ) -> StaticModel:
    """Rebuild a saved model from ``layers.json`` and ``weights.pt`` (kernels only). With
    ``space``, refuse an ``arch.json`` outside it, or whose layers are not the arch's in that
    space. A crafted or corrupt file gives one ValueError naming it."""
    directory = Path(directory)
    for name in ("arch.json", "layers.json", "weights.pt"):
        if not (directory / name).is_file():
            raise ValueError(f"{directory / name}: missing; not a saved subnet directory")
    try:
        arch = Arch.from_json((directory / "arch.json").read_text())
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{directory / 'arch.json'}: not an arch ({exc})") from None
    try:
        specs = [spec_from_dict(d) for d in json.loads((directory / "layers.json").read_text())]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{directory / 'layers.json'}: not a list of layer specs "
                         f"({exc})") from None
    if space is not None:
        try:
            expected = space.layers(arch)
        except ValueError as exc:
            raise ValueError(f"{directory / 'arch.json'}: arch not in space {space.name!r}: "
                             f"{exc}") from None
        if [spec_to_dict(s) for s in expected] != [spec_to_dict(s) for s in specs]:
            raise ValueError(f"{directory / 'layers.json'}: its layers are not those of the "
                             f"arch in arch.json in space {space.name!r}")
    model = StaticModel(specs)
    try:
        state = torch.load(directory / "weights.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # truncated, foreign or mismatched weights: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{directory / 'weights.pt'}: does not load into the saved layers "
                         f"({first})") from None
    model.arch = arch
    return model.eval()


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _max_error(got, want: torch.Tensor) -> float:
    import numpy as np

    got = np.asarray(got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else got)
    if got.shape != tuple(want.shape):
        return float("inf")
    return float(np.abs(got - want.cpu().numpy()).max())


def _check_file(kind: str, run, model: StaticModel, inputs: list[torch.Tensor]) -> None:
    """``run(x)`` must equal ``model(x)`` (1e-4) for every input; RuntimeError otherwise."""
    for x in inputs:
        err = _max_error(run(x), model(x))
        if err > 1e-4:
            raise RuntimeError(f"{kind} output at input shape {list(x.shape)} differs from "
                               f"torch by {err:.2e} (> 1e-4)")


def _write_onnx(wrapped: DeploymentModel, x: torch.Tensor, path: Path,
                inputs: list[torch.Tensor]) -> None:
    import onnxruntime

    torch.onnx.export(wrapped, (x,), str(path), input_names=["input"], output_names=["output"],
                      dynamic_axes=dynamic_axes(wrapped.model), dynamo=False, opset_version=17)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _check_file("ONNX", lambda t: session.run(None, {"input": t.cpu().numpy()})[0],
                wrapped.model, inputs)


@torch.no_grad()
def save_subnet(model: StaticModel, arch: Arch, directory: str | os.PathLike, *,
                onnx: bool | None = None) -> dict[str, Path]:
    """Write the model files into ``directory``; returns {name: path}.

    ``onnx=None`` writes ONNX when onnx and onnxruntime are importable, ``True`` requires
    them. TorchScript and ONNX take any batch size (and a sequence model any length up to
    its context); both are run at batch 1 and 7 against the model first. Files are written
    to a temporary folder first, so a failure leaves nothing behind.
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
    wrapped = DeploymentModel(cpu_model).eval()
    inputs = check_inputs(cpu_model)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=directory.parent))
    try:
        (tmp / "arch.json").write_text(arch.to_json() + "\n")
        (tmp / "layers.json").write_text(json.dumps([spec_to_dict(s) for s in model.specs],
                                                    indent=1) + "\n")
        torch.save(cpu_model.state_dict(), tmp / "weights.pt")
        with warnings.catch_warnings():  # tracer notes on shape checks that are constant here
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(wrapped, (x,), check_trace=False)
            torch.jit.save(traced, str(tmp / "model.torchscript.pt"))
            _check_file("TorchScript", torch.jit.load(str(tmp / "model.torchscript.pt")),
                        cpu_model, inputs)
            if want_onnx:
                _write_onnx(wrapped, x, tmp / "model.onnx", inputs)
        directory.mkdir(parents=True, exist_ok=True)
        written = {}
        for f in sorted(tmp.iterdir()):
            os.replace(f, directory / f.name)
            written[f.name] = directory / f.name
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
