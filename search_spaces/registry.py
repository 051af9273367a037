"""Registry of search spaces: ``@register_space`` a factory, build it with ``get_space``.

Older names of factory arguments are read through one alias table,
`SPACE_OVERRIDE_ALIASES`, by `canonical_space_overrides` (what `get_space` and `Study` apply
to every ``space_overrides``), so study files and stored studies written with them still build
the same space.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable

from search_spaces.space import SearchSpace

SpaceFactory = Callable[..., SearchSpace]
_REGISTRY: dict[str, SpaceFactory] = {}

#: older factory-argument name -> its canonical name: the output size (`SearchSpace.num_outputs`)
#: was ``num_classes`` in the image factories and ``vocab_size`` in the sequence ones
SPACE_OVERRIDE_ALIASES: dict[str, str] = {"num_classes": "num_outputs", "vocab_size": "num_outputs"}


def canonical_space_overrides(overrides: Mapping[str, Any], *,
                              space: str | None = None) -> dict[str, Any]:
    """``overrides`` with every older argument name (`SPACE_OVERRIDE_ALIASES`) replaced by its
    canonical one, in place in the order given; an alias and its canonical name (or two
    aliases of one name) given with different values are a `ValueError` naming both (``None``
    counts as not given, as in `get_space`). Other keys pass unchanged: unknown ones are left
    to `get_space` to refuse.

    ``space``: a registered space whose factory itself takes an alias as an argument gets what
    that factory expects: the name kept when the factory also takes the canonical one (two
    different options), else the canonical name handed back under the alias (a factory
    written before the rename, e.g. ``def my_space(*, num_classes=10)``)."""
    params: Mapping[str, Any] = {}
    if space is not None and space in _REGISTRY:
        params = inspect.signature(_REGISTRY[space]).parameters
    out: dict[str, Any] = {}
    given: dict[str, str] = {}  # canonical name -> the key it was given under
    for key, value in overrides.items():
        canonical = SPACE_OVERRIDE_ALIASES.get(key, key)
        if key in params and canonical in params:  # the factory's own, distinct option
            canonical = key
        if canonical in out and value is not None and out[canonical] is not None:
            if out[canonical] != value:
                raise ValueError(f"space overrides {given[canonical]!r}={out[canonical]!r} and "
                                 f"{key!r}={value!r} name one option, {canonical!r}, with "
                                 f"different values: give only {canonical!r}")
            continue
        if canonical not in out or out[canonical] is None:
            given[canonical] = key
            out[canonical] = value
    for alias, canonical in SPACE_OVERRIDE_ALIASES.items():
        if alias in params and canonical not in params and canonical in out:
            out = {alias if k == canonical else k: v for k, v in out.items()}
    return out


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
    """Build a registered space; ``None`` overrides are dropped (so CLI defaults pass through)
    and older argument names are read as their canonical ones (`canonical_space_overrides`)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown search space {name!r}; registered: {list_spaces()}")
    factory = _REGISTRY[name]
    kwargs = canonical_space_overrides({k: v for k, v in overrides.items() if v is not None},
                                       space=name)
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
