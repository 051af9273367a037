"""Checking and converting values on their way into and out of the database.

Input checks raise `StoreError` naming the field before anything is written; JSON data is
reduced to what every backend stores alike; times come back timezone-aware in UTC.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime, timezone
from typing import Any, TypeVar

from nas.storage.records import StoreError

T = TypeVar("T")
CHUNK = 500  # rows per statement: far below SQLite's bound-parameter limit


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: Any) -> Any:
    if not isinstance(value, datetime):
        return value
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(
        timezone.utc)


def to_record(cls: type[T], row: Any, **extra: Any) -> T:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    data = {k: as_utc(v) for k, v in row._mapping.items() if k in names}
    return cls(**{**data, **extra})


def json_data(value: Any, what: str) -> Any:
    """``value`` as plain JSON data (tuples -> lists, NaN/inf -> None, numpy -> Python)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        if not all(isinstance(k, (str, int)) for k in value):
            raise StoreError(f"{what}: dict keys must be strings")
        return {str(k): json_data(v, what) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_data(v, what) for v in value]
    if hasattr(value, "tolist"):
        return json_data(value.tolist(), what)
    raise StoreError(f"{what}: {type(value).__name__} is not JSON data "
                     "(use numbers, strings, lists and dicts)")


def checked_name(value: Any, what: str, limit: int = 200) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise StoreError(f"{what}: expected a non-empty string of at most {limit} characters, "
                         f"got {value!r}")
    return value


def checked_count(value: Any, what: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    try:
        number = operator.index(value)
    except TypeError:
        raise StoreError(f"{what}: expected an integer, got {value!r}") from None
    if number < 0:
        raise StoreError(f"{what}: expected >= 0, got {number}")
    return number


def checked_float(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StoreError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise StoreError(f"{what}: expected a finite number, got {number}")
    return number


def in_chunks(rows: Sequence[T]) -> Iterable[Sequence[T]]:
    return (rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK))
