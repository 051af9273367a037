"""End to end on a real (tiny, untrained) supernet: inherited-weight evaluation as the
evaluator, the store, the front, and the exported knee reproducing its stored accuracy."""

from __future__ import annotations

import pytest
import torch

from nas.evaluation import evaluate_many, evaluate_model
from nas.export.model import export_subnet
from nas.search import Constraints, SearchConfig, run_search
from nas.storage import open_store
from nas.supernet import Supernet


def test_search_with_a_real_supernet(space, table, tmp_path) -> None:
    torch.manual_seed(0)
    supernet = Supernet(space).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 1, 8, 8, generator=g)
    y = torch.randint(0, 4, (48,), generator=g)
    calls = []

    def evaluate(archs):
        calls.append(len(archs))
        return [{"val_loss": r.loss, "val_accuracy": r.accuracy}
                for r in evaluate_many(supernet, archs, x, y, batch_size=24)]

    store = open_store(f"sqlite:///{tmp_path / 'nas.db'}")
    store.create_or_get_study(name="tiny", space=space.name)
    config = SearchConfig(budget=14, population=6, pool_factor=6, predictor="ridge",
                          objectives=("loss", "latency_ms"), cheap_search_rounds=3,
                          constraints=Constraints(max_latency_ms=0.1))
    result = run_search(space=space, evaluate=evaluate, config=config, latency=table,
                        store=store, study="tiny", run="search", checkpoint_sha256="",
                        fidelity="val=48", progress=False)
    assert sum(calls) == 14 == result.budget_used
    assert all(c["latency_ms"] <= 0.1 for c in result.costs)

    stored = {(e.arch_key, e.metric): e for e in store.get_evaluations(study="tiny")}
    assert len(stored) == 28 and {e.fidelity for e in stored.values()} == {"val=48"}
    for arch, metrics in zip(result.archs, result.metrics):
        assert stored[(arch.key(), "val_loss")].value == pytest.approx(metrics["val_loss"])

    front = store.get_front(study="tiny", run="search")
    assert [r.arch_key for r in front] == [a.key() for a in result.front_archs()]
    knee = result.knee()
    row = next(r for r in front if r.arch_key == knee.key())
    exported = export_subnet(supernet, knee)
    again = evaluate_model(exported, x, y, batch_size=24)
    assert again.accuracy == pytest.approx(row.objectives["val_accuracy"], abs=1e-9)
    assert again.loss == pytest.approx(row.objectives["loss"], rel=1e-4)
