"""Registry of search spaces: ``@register_space`` a factory, build it with ``get_space``."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from search_spaces.space import SearchSpace

SpaceFactory = Callable[..., SearchSpace]
_REGISTRY: dict[str, SpaceFactory] = {}


def register_space(factory: SpaceFactory | None = None, *, name: str | None = None):
    """Register a function returning a `SearchSpace` under ``name`` (default: its __name__).

    Example::

        @register_space
        def my_space(*, widths=(32, 64)) -> SearchSpace:
            return SearchSpace(name="my_space", ...)
    """

    def wrap(fn: SpaceFactory) -> SpaceFactory:
        key = name or fn.__name__
        if key in _REGISTRY and _REGISTRY[key] is not fn:
            raise ValueError(f"search space {key!r} is already registered")
        _REGISTRY[key] = fn
        return fn

    return wrap(factory) if factory is not None else wrap


def get_space(name: str, **overrides: Any) -> SearchSpace:
    """Build a registered space; ``None`` overrides are dropped (so CLI defaults pass through)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown search space {name!r}; registered: {list_spaces()}")
    factory = _REGISTRY[name]
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    allowed = inspect.signature(factory).parameters
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"search space {name!r} has no option(s) {unknown}; "
                         f"options: {sorted(allowed)}")
    space = factory(**kwargs)
    if not isinstance(space, SearchSpace):
        raise ValueError(f"factory of {name!r} returned {type(space).__name__}, not SearchSpace")
    return space


def list_spaces() -> list[str]:
    return sorted(_REGISTRY)
