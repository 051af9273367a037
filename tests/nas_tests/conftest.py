"""Session fixtures of the engine tests: the tiny study run through every stage once by
`nas run`, shared by the pipeline and export tests (each copies it before changing it)."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import nas, write_study  # noqa: E402


@dataclass(frozen=True)
class FinishedRun:
    root: Path  # the study file tiny.py, the store db.sqlite and the runs/ folder
    stdout: str  # what the first `nas run` printed

    def copy_to(self, where: Path) -> tuple[Path, str]:
        """A copy of the folder (study file, store, run files): its study file and URL."""
        shutil.copytree(self.root, where, dirs_exist_ok=True)
        return where / "tiny.py", f"sqlite:///{where / 'db.sqlite'}"


@pytest.fixture(scope="session")
def finished_tiny_run(tmp_path_factory) -> FinishedRun:
    """The tiny study (`write_study` defaults) run through every stage by one `nas run`.
    Read it in place or copy it; never change it."""
    root = tmp_path_factory.mktemp("finished")
    study = write_study(root)
    first = nas("run", str(study), "--storage", f"sqlite:///{root / 'db.sqlite'}", cwd=root)
    return FinishedRun(root=root, stdout=first.stdout)
