"""Start the Streamlit server on the app (``ui/app.py``) with a store URL: what `nas ui` runs.

The app's file is found without importing the `ui` package (`importlib.util.find_spec`
reads where it is installed), so the engine never imports the layer above it: `ui` imports
`nas`, never the other way round.

The URL travels in the environment (``NAS_STORAGE``), not on the command line, so a
PostgreSQL password never shows in the process list.

Example::

    from nas.app_launch import launch
    launch(storage_url="sqlite:///runs/nas.db", port=8501)   # blocks until Ctrl-C
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path


def app_path() -> Path:
    """The Streamlit app's entry file, ``app.py`` of the installed `ui` package (found, not
    imported). Raises RuntimeError if the package is not installed."""
    spec = importlib.util.find_spec("ui")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    found = [Path(p) / "app.py" for p in locations if (Path(p) / "app.py").is_file()]
    if not found:
        raise RuntimeError("the Streamlit app (package `ui`, ui/app.py) is not installed")
    return found[0].resolve()


APP_PATH = app_path()


def streamlit_command(*, port: int = 8501, headless: bool = True,
                      address: str = "127.0.0.1") -> list[str]:
    """The ``streamlit run`` command line that serves the app (no file watcher, no usage
    statistics); run it with ``NAS_STORAGE`` set to the store URL."""
    if not 0 < port < 65536:
        raise ValueError(f"port: expected 1..65535, got {port}")
    return [sys.executable, "-m", "streamlit", "run", str(APP_PATH),
            "--server.headless", "true" if headless else "false",
            "--server.address", address, "--server.port", str(port),
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--client.toolbarMode", "minimal"]


def app_environment(storage_url: str | None) -> dict[str, str]:
    """This process's environment with ``NAS_STORAGE`` set to the resolved store URL."""
    from nas.storage import ENV_VAR, resolve_url

    return {**os.environ, ENV_VAR: resolve_url(storage_url)}


def launch(*, storage_url: str | None = None, port: int = 8501, headless: bool = True,
           address: str = "127.0.0.1") -> int:
    """Serve the app on ``address:port`` over the store at ``storage_url`` (else
    ``$NAS_STORAGE``, else ``./.nas/nas.db``) until interrupted; returns the exit code.

    The store is opened once first, so a bad or unreachable URL raises `StoreError` here
    (one clear message) instead of inside the browser.
    """
    from nas.storage import open_store

    command = streamlit_command(port=port, headless=headless, address=address)
    env = app_environment(storage_url)
    with open_store(env["NAS_STORAGE"]) as store:
        shown = store.url  # password masked
    print(f"nas ui: http://{address}:{port}  (store {shown})", flush=True)
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0
