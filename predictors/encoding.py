"""Architecture encodings: arch -> networkx DAG -> PyG `Data`, a vectorised batch encoder for
the hot path, and a flat vector for the sklearn baselines.

Graph of an `Arch` (`arch_to_graph`): one node per layer spec of ``space.layers(arch)``
(stem, mixers, downsamples, head), in data-flow order, ids ``0..n-1``. Node attributes::

    op           "stem" | "stem_conv" | "downsample" | "head" | a mixer ("attention",
                 "glu_mlp", "ssm", "conv")
    width        residual width the layer writes (downsample: its output width)
    hidden_ratio GLU hidden ratio (0 for other ops)
    kernel_size  conv kernel size (0 for other ops)
    hidden       GLU hidden size (0 for other ops)
    tokens       tokens the layer sees (the spec's ``tokens``; downsample: before pooling)
    stage        stage index (stem: 0, downsample: the stage it leads into, head: the last)
    layer_index  index of a mixer inside its stage (0 for the other ops)
    flops        exact FLOPs per sample of the layer (`kernels.layer_flops`)
    params       exact parameter count of the layer (`kernels.layer_params`)

Edges (residuals): a layer is ``x + f(norm(x))``, so inside a stage the residual stream
entering mixer ``k`` is ``x_entry + f_0 + ... + f_{k-1}``. A node stands for its branch
output ``f_k``; it gets an edge from the stage's entry node (stem or downsample) and from
every earlier mixer of its stage (their outputs are summed into its input), and the stage's
exit node (next downsample or head) gets an edge from all of them. The plain chain
``entry -> f_0 -> f_1 -> ... -> exit`` is a subset of these edges. This is the exact
dependency structure of a pre-norm residual stage (a DenseNet-shaped DAG per stage), so a
message-passing step sees every term that reaches a layer.

Numeric features are squashed with ``sign(v) * log1p(|v|)`` (counts such as FLOPs span
orders of magnitude); models standardise them afterwards with training statistics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch_geometric.data import Data

from kernels import (
    DownsampleSpec,
    HeadSpec,
    LayerSpec,
    MixerSpec,
    StemSpec,
    layer_flops,
    layer_params,
)
from search_spaces import Arch, SearchSpace

ARCH_FEATURES: tuple[str, ...] = ("width", "hidden_ratio", "kernel_size", "hidden", "tokens",
                                  "stage", "layer_index", "flops", "params")
UNK_OP = "<unk>"


def squash(values: np.ndarray) -> np.ndarray:
    """``sign(v) * log1p(|v|)``, elementwise; the transform every numeric feature goes through."""
    return np.sign(values) * np.log1p(np.abs(values))


def _node_attributes(spec: LayerSpec, stage: int, layer_index: int) -> dict[str, Any]:
    attrs: dict[str, Any] = dict.fromkeys(ARCH_FEATURES, 0)
    if isinstance(spec, MixerSpec):
        attrs.update(op=spec.mixer, width=spec.dim, hidden=spec.hidden,
                     kernel_size=spec.kernel_size, layer_index=layer_index)
        if spec.mixer == "glu_mlp":
            attrs["hidden_ratio"] = spec.hidden / spec.dim
    elif isinstance(spec, StemSpec):
        # conv stems are their own op (their stride shows in ``tokens``)
        attrs.update(op="stem_conv" if spec.stem == "conv" else "stem", width=spec.dim)
    elif isinstance(spec, DownsampleSpec):
        attrs.update(op="downsample", width=spec.out_dim)
    elif isinstance(spec, HeadSpec):
        attrs.update(op="head", width=spec.dim)
    else:
        raise ValueError(f"not a layer spec: {spec!r}")
    attrs.update(tokens=spec.tokens, stage=stage, flops=layer_flops(spec),
                 params=layer_params(spec))
    return attrs


def _stage_edges(entry: int, members: Sequence[int], exit_node: int) -> list[tuple[int, int]]:
    """Residual-stream edges of one stage (see the module docstring)."""
    sources = [entry]
    edges = []
    for node in [*members, exit_node]:
        edges += [(src, node) for src in sources]
        sources.append(node)
    return edges


def _arch_nodes(space: SearchSpace, arch: Arch) -> tuple[list[dict], list[tuple[int, int]]]:
    specs = space.layers(arch)  # validates
    nodes = [_node_attributes(specs[0], 0, 0)]
    edges: list[tuple[int, int]] = []
    pos = 1
    entry = 0
    for i, stage in enumerate(arch.stages):
        if i > 0:
            nodes.append(_node_attributes(specs[pos], i, 0))  # the downsample entering stage i
            pos += 1
        members = list(range(pos, pos + stage.depth))
        nodes += [_node_attributes(specs[pos + j], i, j) for j in range(stage.depth)]
        pos += stage.depth
        exit_node = pos  # the next downsample, or the head
        edges += _stage_edges(entry, members, exit_node)
        entry = exit_node
    nodes.append(_node_attributes(specs[pos], len(arch.stages) - 1, 0))
    return nodes, edges


def arch_to_graph(space: SearchSpace, arch: Arch) -> nx.DiGraph:
    """The arch as a DAG (nodes ``0..n-1`` in data-flow order; attributes above).

    Example::

        g = arch_to_graph(space, arch)
        g.nodes[0]["op"]  # "stem"
    """
    nodes, edges = _arch_nodes(space, arch)
    graph = nx.DiGraph(arch=arch.to_json(), space=space.name)
    for i, attrs in enumerate(nodes):
        graph.add_node(i, **attrs)
    graph.add_edges_from(edges)
    return graph


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, str)


def graph_feature_names(graphs: Sequence[nx.DiGraph]) -> tuple[str, ...]:
    """Sorted names of the numeric node attributes (besides ``op``) found in ``graphs``."""
    names: set[str] = set()
    for graph in graphs:
        for _, attrs in graph.nodes(data=True):
            names.update(k for k, v in attrs.items() if k != "op" and _numeric(v))
    return tuple(sorted(names))


def graph_to_data(graph: nx.DiGraph, vocab: Mapping[str, int],
                  feature_names: Sequence[str]) -> Data:
    """A DAG as a PyG `Data`: ``op`` (N,) long ids, ``x`` (N, F) float32, ``edge_index`` (2, E).

    Nodes are ordered topologically (ties broken by ``str(node)``, so any node ids work).
    Each node needs an ``op`` string; ops missing from ``vocab`` get ``vocab[UNK_OP]`` (or 0).
    ``x[:, f]`` is ``squash(node[feature_names[f]])``; a missing or non-numeric attribute
    counts as 0. Raises ValueError for a non-DAG, an empty graph, a node without ``op`` or a
    non-finite feature.
    """
    if not isinstance(graph, nx.DiGraph):
        raise ValueError(f"graph: expected a networkx.DiGraph, got {type(graph).__name__}")
    if graph.number_of_nodes() == 0:
        raise ValueError("graph: has no nodes")
    if not nx.is_directed_acyclic_graph(graph):
        raise ValueError("graph: is not a DAG (it has a cycle)")
    order = list(nx.lexicographical_topological_sort(graph, key=str))
    index = {node: i for i, node in enumerate(order)}
    unk = vocab.get(UNK_OP, 0)
    ops, rows = [], []
    for node in order:
        attrs = graph.nodes[node]
        op = attrs.get("op")
        if not isinstance(op, str):
            raise ValueError(f"graph node {node!r}: needs a string 'op' attribute, got {op!r}")
        ops.append(vocab.get(op, unk))
        row = [float(attrs[n]) if _numeric(attrs.get(n)) else 0.0 for n in feature_names]
        if not all(math.isfinite(v) for v in row):
            raise ValueError(f"graph node {node!r}: non-finite feature in {row}")
        rows.append(row)
    x = squash(np.asarray(rows, dtype=np.float64).reshape(len(order), len(feature_names)))
    edges = np.asarray([(index[u], index[v]) for u, v in graph.edges()], dtype=np.int64)
    edge_index = torch.from_numpy(edges.reshape(-1, 2).T.copy())
    return Data(x=torch.from_numpy(x.astype(np.float32)), op=torch.tensor(ops, dtype=torch.long),
                edge_index=edge_index, num_nodes=len(order))


@dataclass(frozen=True)
class StructureGroup:
    """The graphs of one batch that share a shape (the same stage depths).

    They are laid out position-major: node ``p`` of the group's graph ``g`` is batch node
    ``start + p * graphs + g``, so node states ``(M, nodes * graphs, h)`` of the group view as
    ``(M, nodes, graphs * h)`` and one small dense matmul with the shape's adjacency
    aggregates every graph of the group at once.
    """

    start: int
    nodes: int
    graphs: int
    depths: tuple[int, ...]


@dataclass
class ArchBatch:
    """A batch of archs as arrays: ``rows`` (N,) node table rows, ``edge_index`` (2, E),
    ``batch`` (N,) arch index of each node, ``groups`` the node layout by shape."""

    rows: np.ndarray
    edge_index: np.ndarray
    batch: np.ndarray
    groups: list[StructureGroup]


class ArchBatchEncoder:
    """Vectorised encoding of many archs of one space: no networkx, no per-arch `Data`.

    Every node of every arch is a row of a lookup table (keyed by resolution, stage, widths,
    position and layer choice; filled on first sight from the layer's slot in the space's
    slot table, the spec ``space.layers`` gives too, so its numbers equal `arch_to_graph`'s),
    and every edge pattern is a template keyed by the stage depths. ``encode(archs)`` returns
    arrays that index those tables, grouped by shape (see `StructureGroup`); building the
    batch costs a few dict look-ups per layer.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._rows: dict[tuple, int] = {}
        self._ops: list[str] = []
        self._features: list[list[float]] = []
        self._templates: dict[tuple[int, ...], np.ndarray] = {}
        self._depths = [frozenset(stage.depth) for stage in space.stages]

    @property
    def table_ops(self) -> list[str]:
        """Op of each table row."""
        return self._ops

    def table_features(self, raw: bool = False) -> np.ndarray:
        """(rows, len(ARCH_FEATURES)) float64 features of the table rows (squashed unless raw)."""
        table = np.asarray(self._features, dtype=np.float64).reshape(-1, len(ARCH_FEATURES))
        return table if raw else squash(table)

    def _keys(self, arch: Arch) -> list[tuple]:
        r = arch.input_key
        stages = arch.stages
        if len(stages) != len(self._depths):
            self.space.validate(arch)  # raises, naming the problem
        keys: list[tuple] = [("stem", r, stages[0].width)]
        prev = 0
        for i, stage in enumerate(stages):
            if stage.depth not in self._depths[i]:
                self.space.validate(arch)
            if i > 0:
                keys.append(("downsample", r, i, prev, stage.width))
            width = stage.width  # primitive keys: hashing LayerArch objects costs more
            keys += [("mixer", r, i, width, j, layer.mixer, layer.hidden_ratio,
                      layer.kernel_size) for j, layer in enumerate(stage.layers)]
            prev = stage.width
        keys.append(("head", r, prev))
        return keys

    def _learn(self, arch: Arch, keys: list[tuple]) -> None:
        """Add the rows of ``arch``'s new nodes, each from its slot of the space's slot table
        (`SearchSpace.slot_spec`); node ``keys`` come from `_keys`."""
        space = self.space
        space.validate(arch)
        last = len(arch.stages) - 1
        for key, slot in zip(keys, space.arch_slots(arch)):
            if key in self._rows:
                continue
            kind = key[0]
            stage, position = ((key[2], key[4]) if kind == "mixer" else
                               (key[2], 0) if kind == "downsample" else
                               (last if kind == "head" else 0, 0))
            attrs = _node_attributes(space.slot_spec(slot), stage, position)
            self._rows[key] = len(self._ops)
            self._ops.append(attrs["op"])
            self._features.append([float(attrs[n]) for n in ARCH_FEATURES])

    def template(self, depths: tuple[int, ...]) -> np.ndarray:
        """(2, E) edges (source, target) of one graph with these stage depths."""
        template = self._templates.get(depths)
        if template is None:
            edges: list[tuple[int, int]] = []
            entry, pos = 0, 1
            for i, depth in enumerate(depths):
                pos += i > 0
                edges += _stage_edges(entry, list(range(pos, pos + depth)), pos + depth)
                pos += depth
                entry = pos
            template = np.asarray(edges, dtype=np.int64).T.copy()  # (2, E)
            self._templates[depths] = template
        return template

    def dense_adjacency(self, depths: tuple[int, ...]) -> np.ndarray:
        """(n, n) float32 ``A[target, source] = 1`` of one graph with these stage depths."""
        template = self.template(depths)
        n = sum(depths) + len(depths) + 1
        adjacency = np.zeros((n, n), dtype=np.float32)
        adjacency[template[1], template[0]] = 1.0
        return adjacency

    def encode(self, archs: Sequence[Arch]) -> ArchBatch:
        """Encode a batch of archs (layout in `StructureGroup`)."""
        if len(archs) == 0:
            raise ValueError("archs: empty")
        table = self._rows
        by_shape: dict[tuple[int, ...], tuple[list[int], list[list[int]]]] = {}
        for a, arch in enumerate(archs):
            if not isinstance(arch, Arch):
                raise ValueError(f"archs[{a}]: expected an Arch, got {type(arch).__name__}")
            keys = self._keys(arch)
            try:
                ids = [table[k] for k in keys]
            except KeyError:
                self._learn(arch, keys)
                ids = [table[k] for k in keys]
            members, id_lists = by_shape.setdefault(tuple(s.depth for s in arch.stages), ([], []))
            members.append(a)
            id_lists.append(ids)
        rows, batch, edges, groups = [], [], [], []
        start = 0
        for depths, (members, id_lists) in by_shape.items():
            count = len(members)
            id_table = np.asarray(id_lists, dtype=np.int64)  # (G, n)
            nodes = id_table.shape[1]
            rows.append(id_table.T.reshape(-1))  # position-major
            batch.append(np.tile(np.asarray(members, dtype=np.int64), nodes))
            template = self.template(depths)  # (2, E)
            offsets = np.arange(count, dtype=np.int64)
            edges.append((template[:, :, None] * count + offsets + start).reshape(2, -1))
            groups.append(StructureGroup(start, nodes, count, depths))
            start += nodes * count
        return ArchBatch(np.concatenate(rows), np.concatenate(edges, axis=1),
                         np.concatenate(batch), groups)

    def totals(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Exact (flops, params) per arch, (B,) float64 each, summed from the table."""
        encoded = self.encode(archs)
        raw = self.table_features(raw=True)
        weights = raw[encoded.rows]
        flops = np.bincount(encoded.batch, weights=weights[:, ARCH_FEATURES.index("flops")],
                            minlength=len(archs))
        params = np.bincount(encoded.batch, weights=weights[:, ARCH_FEATURES.index("params")],
                             minlength=len(archs))
        return flops, params


def vector_names(space: SearchSpace) -> list[str]:
    """Names of the `arch_to_vector` entries of ``space`` (fixed length per space)."""
    names = []
    for i, stage in enumerate(space.stages):
        names += [f"s{i}.depth", f"s{i}.width"]
        for j in range(stage.depth.max):
            names += [f"s{i}.l{j}.{m}" for m in stage.mixers]
            names += [f"s{i}.l{j}.hidden_ratio", f"s{i}.l{j}.kernel_size"]
    if space.stem is not None:
        names += [f"stem.{stem}" for stem in space.stem]
    return names + ["resolution", "log_flops", "log_params"]


def archs_to_matrix(space: SearchSpace, archs: Sequence[Arch], *,
                    encoder: ArchBatchEncoder | None = None) -> np.ndarray:
    """(B, len(vector_names(space))) float64 flat encodings; see `arch_to_vector`."""
    encoder = encoder or ArchBatchEncoder(space)
    flops, params = encoder.totals(archs)  # validates
    width = len(vector_names(space))
    out = np.zeros((len(archs), width), dtype=np.float64)
    for a, arch in enumerate(archs):
        col = 0
        for stage_space, stage in zip(space.stages, arch.stages):
            out[a, col:col + 2] = (stage.depth, stage.width)
            col += 2
            slot = len(stage_space.mixers) + 2
            for j, layer in enumerate(stage.layers):
                base = col + j * slot
                out[a, base + stage_space.mixers.index(layer.mixer)] = 1.0
                out[a, base + slot - 2] = layer.hidden_ratio or 0.0
                out[a, base + slot - 1] = layer.kernel_size or 0.0
            col += stage_space.depth.max * slot
        if space.stem is not None:
            out[a, col + space.stem.values.index(arch.stem)] = 1.0
            col += len(space.stem)
        out[a, col] = arch.resolution
    out[:, -2] = np.log(flops)
    out[:, -1] = np.log(params)
    return out


def arch_to_vector(space: SearchSpace, arch: Arch) -> np.ndarray:
    """Flat encoding for the baselines, fixed length per space (names: `vector_names`).

    Per stage: depth, width, then per layer slot up to the stage's max depth a one-hot of the
    stage's mixers, the hidden ratio and the kernel size (all zero for absent layers); then
    a one-hot of the stem (spaces with a stem choice), resolution, log FLOPs and log params.
    """
    return archs_to_matrix(space, [arch])[0]


__all__ = ["ARCH_FEATURES", "UNK_OP", "ArchBatch", "ArchBatchEncoder", "StructureGroup",
           "arch_to_graph", "arch_to_vector", "archs_to_matrix", "graph_feature_names",
           "graph_to_data", "squash", "vector_names"]
