"""Session fixtures of the app tests: a store with a small real study, and an empty one."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixture_store import FixtureStore, build_fixture_store  # noqa: E402

from nas.storage import open_store  # noqa: E402


@pytest.fixture(scope="session")
def study_store(tmp_path_factory) -> FixtureStore:
    """Trained, evaluated, with a predictor, a latency table and a search front (~30 s).
    ``NAS_UI_FIXTURE_DIR`` reuses a directory built before (faster reruns while editing)."""
    where = os.environ.get("NAS_UI_FIXTURE_DIR")
    root = Path(where) if where else tmp_path_factory.mktemp("ui_store")
    return build_fixture_store(root)


@pytest.fixture(scope="session")
def empty_store_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui_empty') / 'empty.db'}"
    with open_store(url):
        pass
    return url
