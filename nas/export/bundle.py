"""Export one arch of a study as a zip for the app's download button.

The supernet comes from the newest checkpoint the store records for the study; its file
must still be where training wrote it and hash to the stored sha256 (weights that changed
since the numbers were stored would export a different model). With the study file in
place the export is `nas.export.study.export_study` (the files of `save_subnet` plus the
model card); without it, the files plus ``export.json`` (the stored numbers and their
sources). Errors are `ExportError`, with what to run to fix them.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from nas.storage import CheckpointRecord, Store, StudyRecord


class ExportError(ValueError):
    """The arch cannot be exported from what the store records."""


@dataclass(frozen=True)
class ExportedZip:
    """A zip of one exported arch: its file name, its bytes and the files inside."""

    file_name: str
    data: bytes
    files: tuple[str, ...]


def _checkpoint_path(store: Store, record: StudyRecord) -> tuple[CheckpointRecord, Path]:
    """The newest stored checkpoint of the study, checked to be here and unchanged."""
    from nas.study_context import sha256_file

    where = record.study_path or record.name
    checkpoints = store.list_checkpoints(study=record.name)
    if not checkpoints:
        raise ExportError(f"study {record.name!r} has no supernet checkpoint in the store: run "
                          f"`nas run {where}` (train stage)")
    ckpt = max(checkpoints, key=lambda c: (c.step, c.created_at))
    path = Path(ckpt.path)
    if not path.is_file():
        raise ExportError(f"the checkpoint of study {record.name!r} is not on this machine "
                          f"({path}): run the app where the study was trained")
    if sha256_file(path) != ckpt.sha256:
        raise ExportError(f"checkpoint {path} changed since it was stored (sha256 differs): "
                          f"re-run `nas run {where}` to record it")
    return ckpt, path


def _study_context(store: Store, record: StudyRecord, checkpoint: Path):
    """A pipeline context for `nas.export.study` when the study file is still here and
    unchanged, or changed only in the spelling of space-override keys (its data are needed to
    re-measure the exported model), else None."""
    from rich.console import Console

    from nas.study import file_hash, load_study, same_study_text
    from nas.study_context import StudyContext

    path = Path(record.study_path)
    if not record.study_path or not path.is_file():
        return None
    if file_hash(path) != record.study_hash and not same_study_text(
            record.study_text, path.read_text()):
        return None
    return StudyContext(study=load_study(path), path=path, store=store,
                        run_dir=checkpoint.parent.parent, device="cpu",
                        console=Console(quiet=True))


def _plain_export(store: Store, record: StudyRecord, arch, checkpoint: CheckpointRecord,
                  path: Path, out: Path) -> list[str]:
    """Export from the checkpoint alone, with ``export.json`` in place of a model card."""
    from nas.export.model import export_subnet, save_subnet
    from nas.supernet import Supernet
    from nas.training import load_checkpoint
    from search_spaces import get_space

    net = Supernet(get_space(record.space, **record.space_overrides))
    state = load_checkpoint(path, space_fingerprint=net.fingerprint())
    net.load_state_dict(state["model"])
    written = save_subnet(export_subnet(net.eval(), arch), arch, out)
    numbers = [{"metric": e.metric, "value": e.value, "source": e.source,
                "fidelity": e.fidelity, "split": e.split}
               for e in store.get_evaluations(study=record.name, arch_keys=[arch.key()])]
    card = {"study": record.name, "arch_key": arch.key(), "label": arch.label(),
            "arch": json.loads(arch.to_json()), "metrics": numbers,
            "checkpoint": {"sha256": checkpoint.sha256, "step": checkpoint.step},
            "note": f"study file {record.study_path or '?'} missing or changed: no model card "
                    "(the exported model was not re-measured)"}
    (out / "export.json").write_text(json.dumps(card, indent=1, default=str) + "\n")
    return sorted([*written, "export.json"])


def export_arch_zip(*, store: Store, study: str, arch_key: str) -> ExportedZip:
    """Export arch ``arch_key`` of ``study`` as `nas export --arch KEY` does (files and
    model card, the exported model re-measured on the validation split); from the stored
    checkpoint alone when the study file is gone or changed."""
    from nas.export.study import export_study
    from search_spaces import Arch

    record = store.get_study(name=study)
    if record is None:
        raise ExportError(f"no study named {study!r} in {store.url}")
    found = store.get_archs(study=study, keys=[arch_key])
    if not found:
        raise ExportError(f"arch {arch_key!r} is not stored for study {study!r}")
    arch = Arch.from_json(found[0].arch_json)
    checkpoint, path = _checkpoint_path(store, record)
    with tempfile.TemporaryDirectory(prefix="nas-export-") as tmp:
        out = Path(tmp) / f"{study}-{arch_key}"
        ctx = _study_context(store, record, path)
        if ctx is not None:
            names = export_study(ctx, arch_key=arch_key, out=out)["files"]
        else:
            names = _plain_export(store, record, arch, checkpoint, path, out)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in names:
                zf.write(out / name, arcname=f"{out.name}/{name}")
    return ExportedZip(file_name=f"{out.name}.zip", data=buffer.getvalue(), files=tuple(names))
