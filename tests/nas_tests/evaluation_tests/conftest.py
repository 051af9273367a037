"""The evaluator tests share the tiny supernet fixtures of the pool tests."""

from __future__ import annotations

from supernet_fixtures import (  # noqa: F401
    digits,
    one_torch_thread,
    tiny_archs,
    tiny_space,
    tiny_supernet,
)
