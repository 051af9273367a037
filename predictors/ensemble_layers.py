"""Graph-network layers that hold a whole ensemble: every weight has a leading member axis.

All M members of `GNNPredictor` run in one pass over the same graph batch, with node states
``(M, N, hidden)``: one Python-level forward per step instead of M, which is what makes
training a 5-member ensemble take seconds and scoring run at thousands of archs per second on
a 2-core CPU.

`DirectedGraphConv` updates a node from both directions of a DAG::

    h_i' = W_2 relu(W_in AGG_{j -> i or j = i} h_j + W_out AGG_{i -> k} h_k + b) + b_2

AGG = sum is GIN-0 (Xu et al. 2019: the ``(1 + eps)`` self term with eps = 0, which they
found as good as a learned eps), computed as one sparse product with ``A + I``; AGG =
attention is GATv2 (Brody et al. 2022: per-head softmax over the neighbours and the node
itself) through torch-geometric's `MessagePassing` with ``node_dim=1``.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import add_self_loops, scatter, softmax, spmm


class EnsembleLinear(nn.Module):
    """M independent linear maps: (M, N, in) -> (M, N, out); nn.Linear's init per member."""

    def __init__(self, members: int, in_features: int, out_features: int, *,
                 bias: bool = True) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features)
                                   .uniform_(-bound, bound))
        self.bias = (nn.Parameter(torch.empty(members, 1, out_features).uniform_(-bound, bound))
                     if bias else None)

    def forward(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """x @ W (+ bias) (+ add), fused into one baddbmm: (M, N, in) -> (M, N, out)."""
        if add is None:
            if self.bias is None:
                return torch.bmm(x, self.weight)
            add = self.bias
        elif self.bias is not None:
            add = add + self.bias
        return torch.baddbmm(add, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last axis with a per-member affine: (M, N, h) -> (M, N, h)."""

    def __init__(self, members: int, hidden: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, hidden))
        self.bias = nn.Parameter(torch.zeros(members, 1, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, F.layer_norm(x, x.shape[-1:]), self.weight)


def block_adjacency(edge_index: torch.Tensor, num_nodes: int, members: int, *,
                    self_loops: bool = False, mean: bool = False) -> torch.Tensor:
    """Sparse CSR ``(M N, M N)`` matrix with ``A[m N + dst, m N + src] = 1`` for every edge
    (and ``A[i, i] = 1`` with ``self_loops``): the sum over in-neighbours of all M members'
    states in one `spmm` (the mean with ``mean``: each row divided by its count)."""
    src, dst = edge_index  # (E,), (E,)
    if self_loops:
        loop = torch.arange(num_nodes)
        src, dst = torch.cat([src, loop]), torch.cat([dst, loop])
    order = torch.argsort(dst, stable=True)
    src, dst = src[order], dst[order]
    offsets = torch.arange(members).repeat_interleave(len(src)) * num_nodes  # (M E,)
    cols = src.repeat(members) + offsets
    counts = torch.bincount(dst.repeat(members) + offsets, minlength=members * num_nodes)
    crow = torch.zeros(members * num_nodes + 1, dtype=torch.long)
    torch.cumsum(counts, 0, out=crow[1:])
    size = (members * num_nodes, members * num_nodes)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": spmm is what we use
        warnings.simplefilter("ignore", UserWarning)
        values = (1.0 / counts.clamp_min(1).float()).repeat_interleave(counts) if mean \
            else torch.ones(len(cols))
        return torch.sparse_csr_tensor(crow, cols, values, size=size)


class SparseSums:
    """In- (plus self) and out-neighbour sums for any batch of graphs, by sparse products."""

    def __init__(self, edge_index: torch.Tensor, num_nodes: int, members: int, *,
                 mean: bool = False) -> None:
        self.incoming = block_adjacency(edge_index, num_nodes, members, self_loops=True,
                                        mean=mean)
        self.outgoing = block_adjacency(edge_index.flip(0), num_nodes, members, mean=mean)

    def __call__(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, n, hidden = h.shape
        flat = h.reshape(m * n, hidden)
        return (spmm(self.incoming, flat).view(m, n, hidden),  # itself + its inputs
                spmm(self.outgoing, flat).view(m, n, hidden))  # the layers it feeds


class GroupedSums:
    """The same sums for batches laid out by shape (`StructureGroup`): per group one dense
    ``(2n, n) @ (M, n, graphs * h)`` matmul with the stacked ``[A + I; A^T]`` of its shape,
    several times faster on CPU than a sparse product over the whole batch.

    ``groups``: (start, nodes, graphs, stacked adjacency (2 nodes, nodes)) per group.
    """

    def __init__(self, groups: list[tuple[int, int, int, torch.Tensor]]) -> None:
        self.groups = groups

    def __call__(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, _, hidden = h.shape
        incoming, outgoing = [], []
        for start, nodes, graphs, stacked in self.groups:
            block = h[:, start:start + nodes * graphs].reshape(m, nodes, graphs * hidden)
            both = torch.matmul(stacked, block)  # (M, 2 nodes, graphs * h)
            incoming.append(both[:, :nodes].reshape(m, nodes * graphs, hidden))
            outgoing.append(both[:, nodes:].reshape(m, nodes * graphs, hidden))
        if len(self.groups) == 1:
            return incoming[0], outgoing[0]
        return torch.cat(incoming, dim=1), torch.cat(outgoing, dim=1)

    def pool(self, h: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        """Sum over each graph's nodes: (M, N, h) -> (M, B, h), a dense reduce per group."""
        m, _, hidden = h.shape
        out = h.new_zeros(m, num_graphs, hidden)
        for start, nodes, graphs, _ in self.groups:
            block = h[:, start:start + nodes * graphs].reshape(m, nodes, graphs, hidden)
            out[:, batch[start:start + graphs]] = block.sum(1)  # graph order of the group
        return out


class AttentionAggregate(MessagePassing):
    """GATv2 aggregation over each node's in-edges plus itself: (M, N, h) -> (M, N, h)."""

    def __init__(self, members: int, hidden: int, heads: int) -> None:
        super().__init__(aggr="add", node_dim=1)
        if hidden % heads:
            raise ValueError(f"hidden={hidden} is not a multiple of heads={heads}")
        self.heads = heads
        self.source = EnsembleLinear(members, hidden, hidden)
        self.target = EnsembleLinear(members, hidden, hidden)
        self.attention = nn.Parameter(
            torch.empty(members, 1, heads, hidden // heads).uniform_(-0.5, 0.5))

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        m, n, hidden = h.shape
        edge_index, _ = add_self_loops(edge_index, num_nodes=n)
        source = self.source(h).view(m, n, self.heads, -1)  # (M, N, H, C)
        target = self.target(h).view(m, n, self.heads, -1)
        out = self.propagate(edge_index, x=(source, target), size=(n, n))  # (M, N, H, C)
        return out.reshape(m, n, hidden)

    def message(self, x_j: torch.Tensor, x_i: torch.Tensor, index: torch.Tensor,
                size_i: int | None) -> torch.Tensor:
        score = (F.leaky_relu(x_j + x_i, 0.2) * self.attention).sum(-1)  # (M, E, H)
        alpha = softmax(score, index, num_nodes=size_i, dim=1)  # over each node's in-edges
        return x_j * alpha.unsqueeze(-1)  # (M, E, H, C)


class DirectedGraphConv(nn.Module):
    """One bidirectional message-passing block (formula in the module docstring)."""

    def __init__(self, members: int, hidden: int, *, heads: int = 0) -> None:
        super().__init__()
        self.heads = heads
        if heads:
            self.attend_in = AttentionAggregate(members, hidden, heads)
            self.attend_out = AttentionAggregate(members, hidden, heads)
        self.w_in = EnsembleLinear(members, hidden, hidden)
        self.w_out = EnsembleLinear(members, hidden, hidden, bias=False)
        self.w_2 = EnsembleLinear(members, hidden, hidden)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor,
                sums: SparseSums | GroupedSums | None = None) -> torch.Tensor:
        """h: (M, N, hidden) -> (M, N, hidden); ``sums`` computes the sum aggregation."""
        if self.heads:
            incoming = self.attend_in(h, edge_index)  # (M, N, h)
            outgoing = self.attend_out(h, edge_index.flip(0))  # (M, N, h)
        else:
            sums = sums or SparseSums(edge_index, h.shape[1], h.shape[0])
            incoming, outgoing = sums(h)
        z = self.w_in(incoming, add=self.w_out(outgoing))  # (M, N, h)
        return self.w_2(torch.relu_(z))


class EnsembleGraphNet(nn.Module):
    """M graph networks in one module: graph batch -> (M, B) predictions.

    Per member: op embedding ++ standardised features -> linear -> ``layers`` x
    [h + relu(LayerNorm(conv(h)))] -> [sum pool, mean pool, graph totals] -> MLP, where the
    graph totals are the standardised ``squash(sum over nodes of each raw feature)`` (total
    FLOPs, parameters, width, ...: a strong prior that pooling embeddings only
    approximates). Node inputs may come as a table plus ``rows`` (one table row per node),
    so for archs the input layer runs on a few hundred distinct rows instead of every node.
    """

    feature_mean: torch.Tensor  # buffers, registered in __init__
    feature_std: torch.Tensor
    total_mean: torch.Tensor
    total_std: torch.Tensor

    def __init__(self, *, members: int, num_ops: int, num_features: int, hidden: int,
                 layers: int, op_dim: int, heads: int = 0, graph_features: bool = True,
                 mean: bool = False) -> None:
        super().__init__()
        self.members, self.heads, self.mean = members, heads, mean
        self.register_buffer("feature_mean", torch.zeros(num_features))
        self.register_buffer("feature_std", torch.ones(num_features))
        self.register_buffer("total_mean", torch.zeros(num_features if graph_features else 0))
        self.register_buffer("total_std", torch.ones(num_features if graph_features else 0))
        self.op_embedding = nn.Parameter(torch.randn(members, num_ops, op_dim))
        self.input = EnsembleLinear(members, op_dim + num_features, hidden)
        self.convs = nn.ModuleList(DirectedGraphConv(members, hidden, heads=heads)
                                   for _ in range(layers))
        self.norms = nn.ModuleList(EnsembleLayerNorm(members, hidden) for _ in range(layers))
        head_in = 2 * hidden + (num_features if graph_features else 0)
        self.head = nn.Sequential(EnsembleLinear(members, head_in, hidden), nn.ReLU(),
                                  EnsembleLinear(members, hidden, 1))

    @staticmethod
    def graph_totals(x: torch.Tensor, batch: torch.Tensor, num_graphs: int,
                     rows: torch.Tensor | None = None) -> torch.Tensor:
        """Squashed per-graph sums of the raw node features: x (R, F) squashed -> (B, F)."""
        raw = torch.sign(x) * torch.expm1(x.abs())  # undo squash: (R, F)
        if rows is not None:
            raw = raw[rows]  # (N, F)
        total = scatter(raw.double(), batch, dim=0, dim_size=num_graphs, reduce="sum")
        return (torch.sign(total) * torch.log1p(total.abs())).float()  # (B, F)

    def forward(self, op: torch.Tensor, x: torch.Tensor, edge_index: torch.Tensor,
                batch: torch.Tensor, num_graphs: int, rows: torch.Tensor | None = None,
                groups: list[tuple[int, int, int, torch.Tensor]] | None = None) -> torch.Tensor:
        """op (R,) long, x (R, F) squashed features, rows (N,) long or None (then R = N),
        edge_index (2, E), batch (N,), groups (see `GroupedSums`, optional) -> (M, B)."""
        m = self.members
        standard = (x - self.feature_mean) / self.feature_std  # (R, F)
        h = torch.cat([self.op_embedding[:, op],  # (M, R, op_dim)
                       standard.unsqueeze(0).expand(m, -1, -1)], dim=-1)  # (M, R, op_dim + F)
        h = self.input(h)  # (M, R, hidden)
        if rows is not None:
            h = h[:, rows]  # (M, N, hidden)
        sums = None
        if not self.heads:  # built once, used by every layer
            sums = (GroupedSums(groups) if groups else
                    SparseSums(edge_index, h.shape[1], m, mean=self.mean))
        for conv, norm in zip(self.convs, self.norms):
            h = h + torch.relu_(norm(conv(h, edge_index, sums)))  # (M, N, hidden)
        if isinstance(sums, GroupedSums):
            total = sums.pool(h, batch, num_graphs)  # (M, B, hidden)
        else:
            total = scatter(h, batch, dim=1, dim_size=num_graphs, reduce="sum")
        counts = torch.bincount(batch, minlength=num_graphs).clamp_min(1)  # (B,)
        pooled = [total, total / counts[None, :, None]]  # (M, B, hidden) each
        if self.total_mean.numel():
            totals = self.graph_totals(x, batch, num_graphs, rows)  # (B, F)
            totals = (totals - self.total_mean) / self.total_std
            pooled.append(totals.unsqueeze(0).expand(m, -1, -1))  # (M, B, F)
        return self.head(torch.cat(pooled, dim=-1)).squeeze(-1)  # (M, B)


__all__ = ["AttentionAggregate", "DirectedGraphConv", "EnsembleGraphNet", "EnsembleLayerNorm",
           "EnsembleLinear", "GroupedSums", "SparseSums", "block_adjacency"]
