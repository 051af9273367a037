"""The training metrics log (``metrics.jsonl``): tolerant reading and crash-safe truncation.

One JSON object per line, each with an integer ``step`` and a string ``kind``. A writer
killed mid-line leaves an unterminated last line: readers drop it (it was never committed:
the log is flushed line by line and only a checkpoint makes steps durable). Anything else
that is wrong (a bad line in the middle, a line that is not an object with a step) raises
`MetricsLogError` naming the file and the line.

`truncate_log` cuts the log back to the last checkpoint when a run (re)starts, so a resumed
run never repeats steps: lines past the checkpoint's step are dropped, and a run starting
from step 0 (no checkpoint yet) starts from an empty log. It rewrites the file atomically
(temporary file + rename), so a crash during truncation leaves the old or the new log.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["MetricsLogError", "logged_panel", "read_log", "truncate_log"]


class MetricsLogError(ValueError):
    """A metrics log that cannot be read: names the file and line."""


def _parse(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    """``(raw line, record)`` of every committed line; a torn last line is dropped."""
    lines = text.split("\n")
    torn_tail = not text.endswith("\n")  # the last piece was never terminated
    out: list[tuple[str, dict[str, Any]]] = []
    for number, line in enumerate(lines, start=1):
        last = number == len(lines)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if last and torn_tail:
                continue
            raise MetricsLogError(f"metrics log {path}:{number}: not JSON ({err.msg}); "
                                  f"move the file away to start its log afresh") from None
        step = record.get("step") if isinstance(record, dict) else None
        if (not isinstance(record, dict) or isinstance(step, bool) or not isinstance(step, int)
                or not isinstance(record.get("kind"), str)):
            raise MetricsLogError(f"metrics log {path}:{number}: expected an object with an "
                                  f"integer 'step' and a string 'kind'")
        out.append((line, record))
    return out


def read_log(path: str | os.PathLike, *, kind: str | None = None) -> list[dict[str, Any]]:
    """Records of the log at ``path`` in file order (only those of ``kind`` if given);
    an empty list when the file does not exist. A torn last line is dropped."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MetricsLogError(f"metrics log {path}: cannot read it ({err})") from None
    return [r for _, r in _parse(path, text) if kind is None or r["kind"] == kind]


def truncate_log(path: str | os.PathLike, *, step: int) -> int:
    """Keep only the lines of ``path`` with ``step <= step`` (and drop a torn last line);
    returns the number of lines kept. With ``step == 0`` lines of step 0 are kept too (an
    evaluation before any training). A missing file is left missing."""
    path = Path(path)
    if not path.exists():
        return 0
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MetricsLogError(f"metrics log {path}: cannot read it ({err})") from None
    keep = [line for line, record in _parse(path, text) if record["step"] <= step]
    new_text = "".join(line + "\n" for line in keep)
    if new_text == text:
        return len(keep)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(keep)


def logged_panel(path: str | os.PathLike, *, step: int) -> list[dict[str, Any]] | None:
    """The validation panel the log holds for ``step`` (its last ``val`` line there), or None.
    A run resumed at a step whose panel was already evaluated and logged (killed after its
    final checkpoint) reuses it instead of logging it twice."""
    found = None
    for record in read_log(path, kind="val"):
        if record["step"] == step and isinstance(record.get("panel"), list):
            found = record["panel"]
    return found
