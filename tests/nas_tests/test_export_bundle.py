"""The app's export zip (`nas.export.bundle`): what the store cannot back is refused with
what to run (moved here from the ui tests with the code)."""

from __future__ import annotations

import pytest

from nas.export.bundle import ExportError, export_arch_zip
from nas.storage import ArchRecord, open_store
from search_spaces import get_space


@pytest.fixture
def space():
    return get_space("hybrid_vit_tiny", in_channels=1, resolutions=(8,), patch_size=2,
                     widths=((8,), (8, 16)), depths=((1,), (1, 2)), head_dim=8)


def test_export_refuses_what_the_store_cannot_back(tmp_path, space):
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        with pytest.raises(ExportError, match="no study"):
            export_arch_zip(store=store, study="nope", arch_key="0" * 16)
        store.create_or_get_study(name="s", space="hybrid_vit_tiny")
        arch = space.largest()
        store.put_archs(study="s", archs=[ArchRecord.from_arch(arch)])
        with pytest.raises(ExportError, match="not stored"):
            export_arch_zip(store=store, study="s", arch_key="0" * 16)
        with pytest.raises(ExportError, match="no supernet checkpoint"):
            export_arch_zip(store=store, study="s", arch_key=arch.key())
        store.put_checkpoint(study="s", path=tmp_path / "gone.pt", sha256="a" * 64, step=1)
        with pytest.raises(ExportError, match="not on this machine"):
            export_arch_zip(store=store, study="s", arch_key=arch.key())
