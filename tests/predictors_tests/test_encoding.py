"""Encodings: deterministic, exact (numbers from the layer specs), and the vectorised batch
encoder equals arch -> networkx -> PyG for every arch."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from kernels import layer_flops
from predictors.encoding import (
    ARCH_FEATURES,
    ArchBatchEncoder,
    arch_to_graph,
    arch_to_vector,
    archs_to_matrix,
    graph_to_data,
    squash,
    vector_names,
)
from search_spaces import Arch, get_space

SPACES = ["hybrid_vit_tiny", "hybrid_lm_tiny"]


@pytest.fixture(params=SPACES)
def space(request):
    return get_space(request.param)


def _archs(space, rng, n=20):
    return [space.smallest(), space.largest(), *(space.sample(rng) for _ in range(n))]


def test_graph_nodes_follow_layer_specs(space, rng):
    for arch in _archs(space, rng):
        graph = arch_to_graph(space, arch)
        specs = space.layers(arch)
        assert graph.number_of_nodes() == len(specs)
        assert nx.is_directed_acyclic_graph(graph)
        assert graph.nodes[0]["op"] == ("stem_conv" if (arch.stem or "").startswith("conv")
                                        else "stem")
        assert graph.nodes[len(specs) - 1]["op"] == "head"
        assert sum(graph.nodes[i]["op"] == "downsample" for i in graph) == len(arch.stages) - 1
        assert [graph.nodes[i]["flops"] for i in graph] == [layer_flops(s) for s in specs]
        assert sum(graph.nodes[i]["flops"] for i in graph) == space.flops(arch)
        mixers = [graph.nodes[i] for i in graph if graph.nodes[i]["op"] not in
                  ("stem", "stem_conv", "downsample", "head")]
        layers = [layer for s in arch.stages for layer in s.layers]
        assert [m["op"] for m in mixers] == [layer.mixer for layer in layers]
        for node, layer in zip(mixers, layers):
            assert node["kernel_size"] == (layer.kernel_size or 0)
            assert node["hidden_ratio"] == pytest.approx(layer.hidden_ratio or 0, rel=0.02)
        # residual stream: the head hears every layer of the last stage and its entry node
        last = arch.stages[-1].depth
        assert graph.in_degree(len(specs) - 1) == last + 1


def test_residual_edges_of_a_known_arch():
    space = get_space("hybrid_vit_tiny", stems=())  # the patch-only space
    arch = Arch.from_dict({"resolution": 32, "stages": [
        {"depth": 2, "width": 32, "layers": [{"mixer": "attention"}, {"mixer": "ssm"}]},
        {"depth": 1, "width": 64, "layers": [{"mixer": "conv", "kernel_size": 3}]},
        {"depth": 1, "width": 128, "layers": [{"mixer": "glu_mlp", "hidden_ratio": 2}]}]})
    graph = arch_to_graph(space, arch)
    # 0 stem, 1 attention, 2 ssm, 3 downsample, 4 conv, 5 downsample, 6 glu, 7 head
    assert sorted(graph.edges()) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3), (3, 4),
                                     (3, 5), (4, 5), (5, 6), (5, 7), (6, 7)]
    assert graph.nodes[4]["tokens"] == 16 and graph.nodes[6]["tokens"] == 4
    assert graph.nodes[6]["hidden"] == 256 and graph.nodes[6]["stage"] == 2


def test_graph_to_data_counts_and_determinism(space, rng):
    vocab = {"<unk>": 0, "stem": 1, "attention": 2, "stem_conv": 1}
    for arch in _archs(space, rng, n=5):
        graph = arch_to_graph(space, arch)
        a = graph_to_data(graph, vocab, ARCH_FEATURES)
        b = graph_to_data(arch_to_graph(space, arch), vocab, ARCH_FEATURES)
        assert a.num_nodes == graph.number_of_nodes()
        assert a.edge_index.shape == (2, graph.number_of_edges())
        assert a.x.shape == (graph.number_of_nodes(), len(ARCH_FEATURES))
        assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
        assert a.op[0] == 1  # stem
        assert set(a.op.tolist()) <= {0, 1, 2}  # everything else is UNK or attention


def test_batch_encoder_equals_graph_path(space, rng):
    archs = _archs(space, rng, n=30)
    encoder = ArchBatchEncoder(space)
    encoded = encoder.encode(archs)
    table = encoder.table_features()
    assert sum(g.nodes * g.graphs for g in encoded.groups) == len(encoded.rows)
    assert sum(g.graphs for g in encoded.groups) == len(archs)
    for b, arch in enumerate(archs):
        graph = arch_to_graph(space, arch)
        data = graph_to_data(graph, {}, ARCH_FEATURES)
        nodes = np.flatnonzero(encoded.batch == b)  # ascending = node order of the arch
        assert len(nodes) == data.num_nodes
        np.testing.assert_allclose(table[encoded.rows[nodes]], data.x.numpy(), rtol=1e-6)
        local = {int(g): i for i, g in enumerate(nodes)}
        mine = [(local[u], local[v]) for u, v in encoded.edge_index.T.tolist() if u in local]
        assert sorted(mine) == sorted(map(tuple, data.edge_index.T.tolist()))
        ops = [encoder.table_ops[r] for r in encoded.rows[nodes]]
        assert ops == [d["op"] for _, d in sorted(graph.nodes(data=True))]
        depths = tuple(s.depth for s in arch.stages)
        adjacency = encoder.dense_adjacency(depths)
        assert sorted(zip(*np.nonzero(adjacency.T))) == sorted(graph.edges())
    group = encoded.groups[0]  # position-major layout inside a group
    first = encoded.batch[group.start:group.start + group.graphs]
    assert np.array_equal(encoded.batch[group.start + group.graphs:
                                        group.start + 2 * group.graphs], first)
    again = ArchBatchEncoder(space).encode(archs)  # a fresh encoder gives the same batch
    assert np.array_equal(again.edge_index, encoded.edge_index)
    assert np.array_equal(again.batch, encoded.batch)


def test_flat_vector_fixed_length_and_exact(space, rng):
    names = vector_names(space)
    archs = _archs(space, rng)
    matrix = archs_to_matrix(space, archs)
    assert matrix.shape == (len(archs), len(names))
    for arch, row in zip(archs, matrix):
        vec = arch_to_vector(space, arch)
        assert vec.shape == (len(names),)
        np.testing.assert_allclose(vec, row)
        assert vec[names.index("log_flops")] == pytest.approx(np.log(space.flops(arch)))
        assert vec[names.index("log_params")] == pytest.approx(np.log(space.params(arch)))
        assert vec[names.index("resolution")] == arch.resolution
        assert vec[names.index("s0.depth")] == arch.stages[0].depth


def test_generic_dag_with_any_node_ids():
    graph = nx.DiGraph()
    graph.add_node("in", op="input", size=3)
    graph.add_node(("block", 1), op="matmul", size=10.0, label="text is ignored")
    graph.add_node("out", op="mystery")
    graph.add_edges_from([("in", ("block", 1)), (("block", 1), "out"), ("in", "out")])
    data = graph_to_data(graph, {"<unk>": 0, "input": 1, "matmul": 2}, ("size", "absent"))
    assert data.op.tolist() == [1, 2, 0]  # topological order; unknown op -> UNK
    np.testing.assert_allclose(data.x[:, 0].numpy(), squash(np.array([3.0, 10.0, 0.0])),
                               rtol=1e-6)
    assert (data.x[:, 1] == 0).all()
    assert data.edge_index.shape == (2, 3)


@pytest.mark.parametrize("bad, match", [
    (nx.DiGraph([(0, 1), (1, 0)]), "not a DAG"),
    (nx.DiGraph(), "no nodes"),
])
def test_graph_to_data_rejects(bad, match):
    for node in bad.nodes:
        bad.nodes[node]["op"] = "x"
    with pytest.raises(ValueError, match=match):
        graph_to_data(bad, {}, ())


def test_graph_to_data_rejects_missing_op_and_nan():
    graph = nx.DiGraph()
    graph.add_node(0)
    with pytest.raises(ValueError, match="'op'"):
        graph_to_data(graph, {}, ())
    graph.nodes[0].update(op="a", size=float("nan"))
    with pytest.raises(ValueError, match="non-finite"):
        graph_to_data(graph, {}, ("size",))


def test_invalid_arch_is_rejected(rng):
    space = get_space("hybrid_vit_tiny")
    arch = space.sample(rng)
    bad = Arch(resolution=20, stages=arch.stages, stem=arch.stem)
    with pytest.raises(ValueError, match="resolution"):
        ArchBatchEncoder(space).encode([arch, bad])
    with pytest.raises(ValueError, match="empty"):
        ArchBatchEncoder(space).encode([])
