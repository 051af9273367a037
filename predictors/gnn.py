"""`GNNPredictor`: an ensemble of graph networks that learns a label (validation loss) from a
few hundred labelled architectures and scores many thousands per second on a CPU.

Model (one ensemble member, `EnsembleGraphNet`): op embedding + standardised numeric node
features -> linear -> ``layers`` bidirectional GIN blocks (sum of the states of the layers
feeding a node and, separately, of the layers it feeds; residual) -> sum and mean pooling ->
MLP -> one number, with the graph's feature totals (FLOPs, params, ...) fed to the head.
All members run in one batched pass (weights carry a member axis).

GIN, not GAT, by measurement (`benchmarks/predictor.py --gnn conv=gat`): on real
inherited-weight MNIST labels (4,608 subnets, 2 seeds) GATv2 aggregation reached Kendall
tau 0.835 at 256 labels against GIN's 0.818 (both near the 0.838 noise ceiling; mean
aggregation 0.815), but scored ~10x slower (about 600 vs 5,600 archs/s in one process,
loaded CPU), far under the 5,000 archs/s that search needs. ``conv="gat"`` and
``conv="mean"`` stay available.

Targets: by default (``target="auto"``) positive labels (losses, right-skewed) are learned
as standardised ``log y``, others standardised as they are; predictions come back in label
units. The defaults (500 steps, weight decay 1e-2, log target) come from a sweep of 23
settings on the MNIST labels with tuning seeds 100-103, never the benchmark's seeds 0-4:
mean tau at 128/256 labels 0.664/0.714 against 0.659/0.696 for the former 200 steps and
weight decay 1e-4; hidden 64, 10 members, 2 or 4 layers, rank weight 0 or 3, lr 3e-3 or
3e-2 and rank targets stayed within +-0.01 of those (`raw.tuning_sweep` of
`benchmarks/results/predictor.json`).

Loss (BRP-NAS style): MSE on standardised targets plus ``rank_weight`` times the logistic
pairwise ranking loss over every ordered pair of the minibatch,
``mean softplus(-(p_i - p_j))`` over pairs with ``y_i > y_j``, since search only needs the
order. Members differ by their initialisation (deep-ensemble style) and see the same
minibatches; the ensemble's mean is the prediction and its standard deviation the
uncertainty.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch_geometric.data import Data

from predictors.encoding import (
    ARCH_FEATURES,
    UNK_OP,
    ArchBatchEncoder,
    graph_feature_names,
    graph_to_data,
)
from predictors.ensemble_layers import EnsembleGraphNet
from predictors.metrics import Floats
from predictors.persistence import (
    check_labels,
    items_from_json,
    items_kind,
    items_to_json,
    read_config,
    space_from_description,
    write_config,
)
from search_spaces import Arch, SearchSpace

WEIGHTS_FILE = "weights.pt"
TARGETS = ("auto", "standard", "log", "rank")


class TargetTransform:
    """Label transform the ensemble learns in, and its inverse (monotone both ways, so the
    order of predictions is the order of the transformed ones).

    ``auto`` (the default) is ``log`` when every label is > 0 (losses) and ``standard``
    otherwise (e.g. negated accuracies from a search objective).

    ``standard``: ``(y - mean) / std``. ``log``: the same on ``log y`` (labels must be > 0;
    losses are right-skewed, so squared errors on the tail no longer dominate). ``rank``:
    normal scores of the ranks, ``Phi^-1((rank - 0.5) / n)`` (only the order of the labels
    is learned); the inverse interpolates the training pairs (score, label) and extends
    beyond them with the least-squares slope of label on score.
    """

    def __init__(self, kind: str, y: np.ndarray) -> None:
        if kind == "auto":
            kind = "log" if np.all(y > 0) else "standard"
        if kind == "log" and not np.all(y > 0):
            raise ValueError("target='log' needs labels > 0; got "
                             f"{float(y.min())} (use target='standard' or 'rank')")
        self.kind = kind
        if kind == "rank":
            scores = stats.norm.ppf((stats.rankdata(y) - 0.5) / len(y))
            order = np.argsort(scores, kind="stable")
            self._knots = (scores[order], y[order])
            spread = float(scores.var())
            self._slope = float(np.cov(scores, y, bias=True)[0, 1] / spread) if spread else 0.0
            base = scores
        else:
            base = np.log(y) if kind == "log" else y
        self.mean, self.std = float(base.mean()), float(base.std()) or 1.0
        self._base = base

    def forward(self) -> np.ndarray:
        """(B,) standardised transformed training labels."""
        return (self._base - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Predictions (any shape) in standardised transformed units -> label units."""
        base = z * self.std + self.mean
        if self.kind == "log":
            # saturate beyond 50 training standard deviations: a wild extrapolation (an
            # unseen shape, a diverged member) must not overflow to inf and turn the
            # ensemble's mean and std into NaN, which would break every ranking after it
            limit = min(700.0, abs(self.mean) + 50.0 * self.std)
            return np.exp(np.clip(base, -limit, limit))
        if self.kind == "rank":
            xs, ys = self._knots
            out = np.interp(base, xs, ys)
            out = np.where(base < xs[0], ys[0] + self._slope * (base - xs[0]), out)
            return np.where(base > xs[-1], ys[-1] + self._slope * (base - xs[-1]), out)
        return base


@dataclass(frozen=True)
class GNNConfig:
    """Hyper-parameters of `GNNPredictor` (JSON round-trip via `asdict`)."""

    conv: str = "gin"  # "gin" (sum aggregation), "mean" (mean aggregation) or "gat" (GATv2)
    heads: int = 4  # attention heads when conv == "gat"
    hidden: int = 32
    layers: int = 3
    op_dim: int = 16
    ensemble: int = 5
    steps: int = 500  # optimizer steps (all members step together)
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 1e-2
    rank_weight: float = 1.0
    graph_features: bool = True  # feed per-graph feature totals to the head
    target: str = "auto"  # label transform: "auto" (log if all labels > 0), "standard", "log",
    # "rank"; see `TargetTransform`
    seed: int = 0
    threads: int | None = 1  # torch threads in fit and predict (None: leave torch's setting)
    predict_chunk: int = 2048  # graphs per forward pass when scoring

    def __post_init__(self) -> None:
        if self.conv not in ("gin", "mean", "gat"):
            raise ValueError(f"conv: expected 'gin', 'mean' or 'gat', got {self.conv!r}")
        if self.target not in TARGETS:
            raise ValueError(f"target: expected one of {TARGETS}, got {self.target!r}")
        for name in ("hidden", "heads", "layers", "op_dim", "ensemble", "steps",
                     "batch_size", "predict_chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.steps < 4:
            raise ValueError(f"steps: needs >= 4 for the one-cycle schedule, got {self.steps}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size: needs >= 2 for the pairwise loss, got {self.batch_size}")
        if self.threads is not None and (isinstance(self.threads, bool) or
                                         not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads: expected a positive int or None, got {self.threads!r}")
        for name in ("lr", "weight_decay", "rank_weight"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name}: expected a number >= 0, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GNNConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"GNNConfig: unknown option(s) {unknown}; options: {sorted(known)}")
        return cls(**data)


@dataclass
class _GraphBatch:
    op: torch.Tensor  # (R,) long op ids of the node rows
    x: torch.Tensor  # (R, F) float32 squashed numeric features of the node rows
    rows: torch.Tensor | None  # (N,) long row of each node, or None when R = N
    edge_index: torch.Tensor  # (2, E) long
    batch: torch.Tensor  # (N,) long graph index of each node
    num_graphs: int
    groups: list[tuple[int, int, int, torch.Tensor]] | None = None  # node layout by shape


def pairwise_rank_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Logistic loss over ordered pairs: ``mean softplus(p_j - p_i)`` where ``y_i > y_j``.

    pred: (..., B) (e.g. (M, B), one row per member), target: (B,) -> (...,) mean per row;
    zero when the batch holds no strictly ordered pair.
    """
    higher = target[:, None] > target[None, :]  # (B, B): y_i > y_j
    if not bool(higher.any()):
        return pred.sum(-1) * 0.0
    diff = pred[..., :, None] - pred[..., None, :]  # (..., B, B): p_i - p_j, want > 0
    return F.softplus(-diff[..., higher]).mean(-1)


class GNNPredictor:
    """Ensemble GNN performance predictor over `Arch` objects or generic networkx DAGs.

    ``items`` are either `Arch` objects of ``space`` (encoded with the vectorised
    `ArchBatchEncoder`) or ``networkx.DiGraph`` DAGs whose nodes carry an ``op`` string
    (any label: the vocabulary is learned in `fit`, unseen ops map to an UNK id) and
    optionally numeric attributes (int/float/bool; the set of feature names is fixed in
    `fit` as the union over the training graphs, a missing attribute counts as 0,
    attributes unknown to the model are ignored). `arch_to_graph` graphs mix with archs.

    Example::

        predictor = GNNPredictor(space).fit(archs, val_losses)
        mean, std = predictor.predict(candidates)  # (B,), (B,) numpy, label units
        predictor.save("runs/predictor")
        same = GNNPredictor.load("runs/predictor")
    """

    kind = "gnn"

    def __init__(self, space: SearchSpace | None = None, *,
                 config: GNNConfig | None = None, **options: Any) -> None:
        if config is not None and options:
            raise ValueError(f"pass either config or options, not both (got {sorted(options)})")
        self.space = space
        self.config = config or GNNConfig.from_dict(options)
        self._encoder = ArchBatchEncoder(space) if space is not None else None
        self._net: EnsembleGraphNet | None = None
        self._vocab: dict[str, int] = {}
        self._feature_names: tuple[str, ...] = ()
        self._transform: TargetTransform | None = None
        self._train_items: list[Any] = []
        self._train_y = np.zeros(0)
        self._table_cache: tuple[int, torch.Tensor, torch.Tensor] | None = None
        self._adjacency_cache: dict[tuple[int, ...], torch.Tensor] = {}

    # ---- encoding ------------------------------------------------------------------------

    def _arch_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows,) op ids and (rows, F) features of the encoder's node table for this model."""
        assert self._encoder is not None
        n_rows = len(self._encoder.table_ops)
        if self._table_cache is None or self._table_cache[0] != n_rows:
            unk = self._vocab.get(UNK_OP, 0)
            ops = torch.tensor([self._vocab.get(op, unk) for op in self._encoder.table_ops],
                               dtype=torch.long)
            table = self._encoder.table_features()
            columns = [ARCH_FEATURES.index(n) if n in ARCH_FEATURES else -1
                       for n in self._feature_names]
            x = np.zeros((n_rows, len(columns)), dtype=np.float32)
            for c, src in enumerate(columns):
                if src >= 0:
                    x[:, c] = table[:, src]
            self._table_cache = (n_rows, ops, torch.from_numpy(x))
        return self._table_cache[1], self._table_cache[2]

    def _stacked_adjacency(self, depths: tuple[int, ...]) -> torch.Tensor:
        """(2n, n) ``[A + I; A^T]`` of one arch shape (see `GroupedSums`), cached."""
        stacked = self._adjacency_cache.get(depths)
        if stacked is None:
            assert self._encoder is not None
            a = torch.from_numpy(self._encoder.dense_adjacency(depths))  # (n, n)
            stacked = torch.cat([a + torch.eye(len(a)), a.T])  # (2n, n)
            if self.config.conv == "mean":
                stacked = stacked / stacked.sum(1, keepdim=True).clamp_min(1)
            stacked = stacked.contiguous()
            self._adjacency_cache[depths] = stacked
        return stacked

    def _encode(self, items: Sequence[Any]) -> _GraphBatch:
        if isinstance(items[0], Arch):
            if self._encoder is None:
                raise ValueError("items are Arch objects but the predictor has no space; "
                                 "pass GNNPredictor(space)")
            encoded = self._encoder.encode(items)
            ops, table = self._arch_table()
            groups = None
            if len(items) >= 16 * len(encoded.groups):  # dense per-shape sums pay off
                groups = [(g.start, g.nodes, g.graphs, self._stacked_adjacency(g.depths))
                          for g in encoded.groups]
            return _GraphBatch(ops, table, torch.from_numpy(encoded.rows),
                               torch.from_numpy(encoded.edge_index),
                               torch.from_numpy(encoded.batch), len(items), groups)
        return self._collate([graph_to_data(g, self._vocab, self._feature_names) for g in items])

    @staticmethod
    def _collate(datas: Sequence[Data]) -> _GraphBatch:
        """Concatenate per-graph `Data` into one batch (node ids offset per graph)."""
        sizes = torch.tensor([d.num_nodes for d in datas])
        starts = torch.cumsum(sizes, 0) - sizes
        edge_index = torch.cat([d.edge_index + s for d, s in zip(datas, starts)], dim=1)
        return _GraphBatch(torch.cat([d.op for d in datas]), torch.cat([d.x for d in datas]), None,
                           edge_index, torch.repeat_interleave(torch.arange(len(datas)), sizes),
                           len(datas))

    def _learn_inputs(self, items: Sequence[Any]) -> None:
        """Fix the op vocabulary and feature names from the training items."""
        if isinstance(items[0], Arch):
            assert self._encoder is not None
            rows = self._encoder.encode(items).rows
            ops = {self._encoder.table_ops[r] for r in np.unique(rows)}
            self._feature_names = ARCH_FEATURES
        else:
            ops = {attrs.get("op") for g in items for _, attrs in g.nodes(data=True)}
            if not all(isinstance(op, str) for op in ops):
                raise ValueError("items: every graph node needs a string 'op' attribute")
            self._feature_names = graph_feature_names(items)
        self._vocab = {UNK_OP: 0, **{op: i + 1 for i, op in enumerate(sorted(ops))}}
        self._table_cache = None

    # ---- training ------------------------------------------------------------------------

    def fit(self, items: Sequence[Arch | nx.DiGraph], y: Floats) -> GNNPredictor:
        """Train the ensemble from scratch on ``items`` and labels ``y`` (B,); returns self."""
        y_arr = check_labels(items, y)
        items = list(items)
        kind = items_kind(items)
        if kind == "arch" and self.space is None:
            raise ValueError("items are Arch objects but the predictor has no space; "
                             "pass GNNPredictor(space)")
        transform = TargetTransform(self.config.target, y_arr)  # raises on bad labels
        previous = (self._vocab, self._feature_names)
        try:
            self._learn_inputs(items)
            full = self._encode(items)  # raises on a bad graph
        except ValueError:
            self._vocab, self._feature_names = previous  # a failed fit changes nothing
            self._table_cache = None
            raise
        target = torch.from_numpy(transform.forward()).float()
        with self._threads():
            self._net = self._train(items, target, full)
        self._transform = transform
        self._train_items, self._train_y = items, y_arr
        return self

    def _new_net(self) -> EnsembleGraphNet:
        cfg = self.config
        return EnsembleGraphNet(members=cfg.ensemble, num_ops=len(self._vocab),
                                num_features=len(self._feature_names), hidden=cfg.hidden,
                                layers=cfg.layers, op_dim=cfg.op_dim,
                                heads=cfg.heads if cfg.conv == "gat" else 0,
                                graph_features=cfg.graph_features, mean=cfg.conv == "mean")

    @contextmanager
    def _threads(self) -> Iterator[None]:
        """Run with ``config.threads`` torch threads, restoring the caller's setting after.

        Why 1 by default: the batched ops are small and memory-bound, so intra-op threads
        add synchronisation more than speed, and they stall when other processes share the
        cores (measured on the 2-core box under load: 7.2k archs/s on 1 thread, 1.6k on 2).
        """
        before = torch.get_num_threads()
        try:
            if self.config.threads is not None:
                torch.set_num_threads(self.config.threads)
            yield
        finally:
            torch.set_num_threads(before)

    def _train(self, items: list[Any], target: torch.Tensor,
               full: _GraphBatch) -> EnsembleGraphNet:
        """AdamW with a one-cycle schedule; every member gets its own loss term, so the sum's
        gradient trains each member independently."""
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            net = self._new_net()
            nodes = full.x if full.rows is None else full.x[full.rows]  # (N, F)
            net.feature_mean.copy_(nodes.mean(0))
            net.feature_std.copy_(nodes.std(0, unbiased=False).clamp_min(1e-6))
            if cfg.graph_features:
                totals = net.graph_totals(full.x, full.batch, full.num_graphs, full.rows)
                net.total_mean.copy_(totals.mean(0))
                net.total_std.copy_(totals.std(0, unbiased=False).clamp_min(1e-6))
            opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    foreach=True)
            # one-cycle: warm-up over 10 % of the steps, cosine decay, Adam's beta1 cycled
            # (measured ~0.01 tau better than plain warm-up + cosine on real labels)
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=max(0.1, 2 / cfg.steps))
            order = torch.Generator().manual_seed(cfg.seed)
            n = len(items)
            batch_size = min(cfg.batch_size, n)
            full_batch = batch_size == n  # then encode once
            datas = (None if isinstance(items[0], Arch) or full_batch else
                     [graph_to_data(g, self._vocab, self._feature_names) for g in items])
            perm, cursor = torch.randperm(n, generator=order), 0
            net.train()
            for _ in range(cfg.steps):
                if full_batch:
                    batch, y = full, target
                else:
                    if cursor + batch_size > n:
                        perm, cursor = torch.randperm(n, generator=order), 0
                    idx = perm[cursor:cursor + batch_size]
                    cursor += batch_size
                    picked = idx.tolist()
                    batch = (self._encode([items[i] for i in picked]) if datas is None
                             else self._collate([datas[i] for i in picked]))
                    y = target[idx]
                pred = self._forward(net, batch)  # (M, b)
                loss = F.mse_loss(pred, y.expand_as(pred), reduction="none").mean(1).sum()
                if cfg.rank_weight > 0:
                    loss = loss + cfg.rank_weight * pairwise_rank_loss(pred, y).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        return net.eval()

    @staticmethod
    def _forward(net: EnsembleGraphNet, g: _GraphBatch) -> torch.Tensor:
        return net(g.op, g.x, g.edge_index, g.batch, g.num_graphs, rows=g.rows,
                   groups=g.groups)  # (M, B)

    def update(self, items: Sequence[Arch | nx.DiGraph], y: Floats) -> GNNPredictor:
        """Add labelled items to the training set and refit from scratch (active learning)."""
        y_arr = check_labels(items, y)
        if self._train_items and items_kind(list(items)) != items_kind(self._train_items):
            raise ValueError("items: cannot mix Arch objects and graphs with the training set")
        return self.fit(self._train_items + list(items), np.concatenate([self._train_y, y_arr]))

    # ---- scoring -------------------------------------------------------------------------

    def predict(self, items: Sequence[Arch | nx.DiGraph]) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and standard deviation, (B,) float64 each, in label units."""
        if self._net is None:
            raise ValueError("predictor is not fitted: call fit() first")
        items = list(items)
        items_kind(items)  # raises on empty or mixed input
        chunk = self.config.predict_chunk
        outs = []
        # no_grad, not inference_mode: tensors cached here (adjacency of new shapes) are
        # reused by the next fit, which inference tensors would break (active learning)
        with torch.no_grad(), self._threads():
            for start in range(0, len(items), chunk):
                batch = self._encode(items[start:start + chunk])
                outs.append(self._forward(self._net, batch))  # (M, b)
        assert self._transform is not None
        preds = self._transform.inverse(torch.cat(outs, dim=1).double().numpy())  # (M, B)
        return preds.mean(0), preds.std(0)

    # ---- persistence ---------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write ``path/config.json`` (config, vocab, space, training set) and
        ``path/weights.pt`` (the ensemble's state dict, tensors only); returns ``path``."""
        if self._net is None:
            raise ValueError("predictor is not fitted: nothing to save")
        payload = {
            "config": asdict(self.config), "vocab": self._vocab,
            "feature_names": list(self._feature_names),
            "train": {"items": items_to_json(self._train_items), "y": self._train_y.tolist()},
        }
        weights = dict(self._net.state_dict())
        path = write_config(path, kind=self.kind, space=self.space, payload=payload)
        torch.save(weights, path / WEIGHTS_FILE)
        return path

    @classmethod
    def load(cls, path: str | Path, *, space: SearchSpace | None = None) -> GNNPredictor:
        """Read what `save` wrote (``torch.load(weights_only=True)``, no pickle of objects).

        ``space``: the space to score archs of; must match the stored description (by
        default the space is rebuilt from that description).
        """
        path = Path(path)
        config, description = read_config(path, kind=cls.kind)
        space = space_from_description(description, space)
        try:
            weights = torch.load(path / WEIGHTS_FILE, weights_only=True, map_location="cpu")
        except (OSError, RuntimeError) as exc:
            raise ValueError(f"{path / WEIGHTS_FILE}: cannot read weights ({exc})") from None
        # files written before the target option existed trained on standardised labels
        options = {"target": "standard", **config["config"]}
        predictor = cls(space, config=GNNConfig.from_dict(options))
        predictor._vocab = {str(k): int(v) for k, v in config["vocab"].items()}
        predictor._feature_names = tuple(config["feature_names"])
        predictor._train_items = items_from_json(config["train"]["items"])
        predictor._train_y = np.asarray(config["train"]["y"], dtype=np.float64)
        # the transform is a function of the stored training labels, so it is rebuilt exactly
        predictor._transform = TargetTransform(predictor.config.target, predictor._train_y)
        net = predictor._new_net()
        try:
            net.load_state_dict(weights)
        except RuntimeError as exc:
            raise ValueError(f"{path / WEIGHTS_FILE}: weights do not match the config "
                             f"({exc})") from None
        predictor._net = net.eval()
        return predictor

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (config, vocabulary, number of labels)."""
        return {"kind": self.kind, "config": asdict(self.config), "vocab": sorted(self._vocab),
                "feature_names": list(self._feature_names), "labels": len(self._train_y)}


__all__ = ["GNNConfig", "GNNPredictor", "pairwise_rank_loss"]
