"""Input checks and the on-disk form shared by every predictor (no pickle anywhere).

A saved predictor is a directory holding ``config.json``::

    {"format": "nas-predictor", "version": 1, "kind": "gnn" | "random_forest" | ...,
     "space": SearchSpace.describe() or null, ...kind-specific payload}

plus, for the GNN, ``weights.pt`` (tensors only, read with ``weights_only=True``). The
training set (arch JSON or node-link JSON of graphs, and the labels) is stored too, so a
loaded predictor can take more labels (`update`) and the sklearn baselines can refit
deterministically instead of unpickling estimators.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from predictors.metrics import Floats
from search_spaces import Arch, Choice, SearchSpace, Stage

FORMAT = "nas-predictor"
VERSION = 1
CONFIG_FILE = "config.json"
_SPACE_ARGS = ("name", "modality", "resolution", "stages", "in_channels", "patch_size",
               "num_outputs", "vocab_size", "head_dim", "ssm_head_dim", "ssm_state_size", "stem")


def items_kind(items: Sequence[Any]) -> str:
    """``"arch"`` or ``"graph"``; ValueError for empty, mixed or other input."""
    if len(items) == 0:
        raise ValueError("items: empty")
    if all(isinstance(item, Arch) for item in items):
        return "arch"
    if all(isinstance(item, nx.DiGraph) for item in items):
        return "graph"
    kinds = sorted({type(item).__name__ for item in items})
    raise ValueError(f"items: expected all Arch objects or all networkx.DiGraph, got {kinds}")


def check_labels(items: Sequence[Any], y: Floats) -> np.ndarray:
    """Labels as a (B,) float64 array; ValueError naming the problem (length, NaN, empty)."""
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("y: expected a sequence of numbers") from None
    if arr.ndim != 1:
        raise ValueError(f"y: expected a 1-D sequence, got shape {arr.shape}")
    if len(items) == 0 and len(arr) == 0:
        raise ValueError("items and y: empty (need at least 2 labelled items)")
    if len(items) != len(arr):
        raise ValueError(f"items and y: lengths differ ({len(items)} items, {len(arr)} labels)")
    if len(arr) < 2:
        raise ValueError(f"y: need at least 2 labelled items, got {len(arr)}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"y: non-finite label(s) (NaN or inf) at index {bad[:5].tolist()}")
    items_kind(items)
    return arr


def items_to_json(items: Sequence[Any]) -> list[Any]:
    """Archs as their canonical JSON string, graphs as node-link dicts (ints as node ids)."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, Arch):
            out.append(item.to_json())
            continue
        order = list(nx.lexicographical_topological_sort(item, key=str))
        graph = nx.relabel_nodes(item, {node: i for i, node in enumerate(order)})
        data = nx.node_link_data(graph, edges="edges")
        try:
            json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"graph attributes are not JSON-serialisable ({exc})") from None
        out.append(data)
    return out


def items_from_json(data: Sequence[Any]) -> list[Any]:
    return [Arch.from_json(d) if isinstance(d, str) else nx.node_link_graph(d, edges="edges")
            for d in data]


def space_description(space: SearchSpace) -> dict[str, Any]:
    """The constructor arguments of ``space`` (its `describe()` minus derived numbers)."""
    description = space.describe()
    return {k: description[k] for k in _SPACE_ARGS if k in description}  # "stem": optional


def space_from_description(description: dict[str, Any] | None,
                           space: SearchSpace | None = None) -> SearchSpace | None:
    """Rebuild the stored space, or check that ``space`` equals it (ValueError if not)."""
    if description is None:
        return space
    if space is not None:
        if space_description(space) != description:
            raise ValueError(f"space {space.name!r} differs from the one the predictor was "
                             f"fitted on ({description['name']!r} as stored)")
        return space
    args = dict(description)
    args["resolution"] = Choice(*args["resolution"])
    args["stages"] = [Stage(depth=Choice(*s["depth"]), width=Choice(*s["width"]),
                            mixers=tuple(s["mixers"]), hidden_ratio=Choice(*s["hidden_ratio"]),
                            kernel_size=Choice(*s["kernel_size"])) for s in args["stages"]]
    return SearchSpace(**args)


def write_config(path: str | Path, *, kind: str, space: SearchSpace | None,
                 payload: dict[str, Any]) -> Path:
    """Serialise first (so a failure writes nothing), then create ``path/config.json``."""
    document = {"format": FORMAT, "version": VERSION, "kind": kind,
                "space": space_description(space) if space is not None else None, **payload}
    text = json.dumps(document, sort_keys=True, allow_nan=False, default=_json_default)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(text + "\n")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def read_config(path: str | Path, *, kind: str | None = None) -> tuple[dict[str, Any], Any]:
    """(document, space description) of a saved predictor; checks format and ``kind``."""
    file = Path(path) / CONFIG_FILE
    try:
        document = json.loads(file.read_text())
    except OSError as exc:
        raise ValueError(f"{file}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{file}: not a saved predictor (format != {FORMAT!r})")
    if document.get("version") != VERSION:
        raise ValueError(f"{file}: version {document.get('version')!r}, expected {VERSION}")
    if kind is not None and document.get("kind") != kind:
        raise ValueError(f"{file}: holds a {document.get('kind')!r} predictor, not {kind!r}")
    return document, document.get("space")


__all__ = ["check_labels", "items_from_json", "items_kind", "items_to_json", "read_config",
           "space_description", "space_from_description", "write_config"]
