"""The layers' code version in the device fingerprint (`kernels.KERNELS_VERSION`).

A latency table measured under one implementation of the layers must not be resumed or read
under another; the fingerprint carries `KERNELS_VERSION`, and the source hash below ties each
version to the code it names, so a change to the kernels fails here until the version is
bumped (and a table of the old code then gets its one clear mismatch error).
"""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kernels import (
    KERNELS_VERSION,
    DeviceFingerprint,
    FingerprintMismatchError,
    LatencyTable,
    device_fingerprint,
)

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / "kernels"
#: KERNELS_VERSION -> {Python "major.minor": hash of the kernels' code}: docstrings and
#: comments do not count; ``ast.dump`` differs between Python versions (3.12 adds
#: ``type_params``), so each hash is of one version's dump
SOURCE_HASHES = {"2026-12-08": {"3.11": "63c61c018a0fb712"}}
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def kernel_sources() -> list[Path]:
    """The `kernels` modules git tracks (untracked scratch files do not count), but
    `fingerprint.py`; every ``*.py`` file under `kernels` where git is unavailable."""
    try:
        listed = subprocess.run(["git", "ls-files", "kernels"], cwd=ROOT, capture_output=True,
                                text=True, check=True, timeout=30).stdout.split()
        paths = [ROOT / p for p in listed if p.endswith(".py")]
    except (OSError, subprocess.SubprocessError):
        paths = list(KERNELS.rglob("*.py"))
    return sorted(p for p in paths if p.name != "fingerprint.py" and p.is_file())


def kernels_source_hash() -> str:
    """sha256 (16 hex) of the AST of every `kernel_sources` module, docstrings removed, in
    path order."""
    digest = hashlib.sha256()
    for path in kernel_sources():
        tree = ast.parse(path.read_bytes())
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
        digest.update(path.relative_to(KERNELS).as_posix().encode())
        digest.update(ast.dump(tree).encode())
    return digest.hexdigest()[:16]


def test_kernels_version_names_the_current_kernels_code() -> None:
    recorded = SOURCE_HASHES.get(KERNELS_VERSION, {})
    if recorded and PYTHON not in recorded:
        pytest.skip(f"source hashes are recorded for Python {sorted(recorded)}, not {PYTHON}")
    current = kernels_source_hash()
    assert recorded.get(PYTHON) == current, (
        f"the kernels' code changed (source hash {current}): if the change can change a "
        f"measured time, bump kernels.fingerprint.KERNELS_VERSION (now {KERNELS_VERSION!r}) "
        f"and add the new version with this hash (Python {PYTHON}) to SOURCE_HASHES; if it "
        f"cannot, record the hash under the current version")


def test_fingerprint_of_this_code_carries_the_version() -> None:
    fp = device_fingerprint(device="cpu", batch_size=1, threads=1)
    assert fp.kernels == KERNELS_VERSION
    assert DeviceFingerprint.from_dict(fp.to_dict()) == fp
    assert f"kernels {KERNELS_VERSION}" in fp.describe()


def test_table_of_unversioned_kernels_keeps_its_id_and_mismatches_current_code(tmp_path) -> None:
    """A table written before the field existed still loads (same id, so the store keeps
    finding it) and is refused for the current code with one error naming ``kernels``."""
    current = device_fingerprint(device="cpu", batch_size=1, threads=1)
    old = {k: v for k, v in current.to_dict().items() if k != "kernels"}
    old_fp = DeviceFingerprint.from_dict(old)
    assert old_fp.kernels == "" and "kernels unversioned" in old_fp.describe()
    text = json.dumps(old, sort_keys=True, separators=(",", ":"))
    assert old_fp.id == hashlib.sha256(text.encode()).hexdigest()[:16]  # the id as stored
    assert old_fp.id != current.id
    path = tmp_path / "old.json"
    LatencyTable(old_fp).save(path)
    table = LatencyTable.load(path)
    assert table.fingerprint == old_fp
    with pytest.raises(FingerprintMismatchError, match=r"kernels: '' vs '2026-12-08'"):
        LatencyTable.load(path, fingerprint=current)
    with pytest.raises(ValueError, match="fingerprint: expected fields"):
        DeviceFingerprint.from_dict({**old, "color": "red"})
