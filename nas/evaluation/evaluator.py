"""The evaluator interface the search calls (`StoringEvaluator`), and its in-process
implementation (`InProcessEvaluator`).

An evaluator is a callable ``evaluate(archs) -> list[dict]``: one ``{"arch_key",
"val_loss", "val_accuracy"}`` per arch (``<split>_loss`` / ``<split>_accuracy``: the metric
names of the store), in the order given (a repeated arch is evaluated once). With
``halves=True`` each result also holds ``val_loss_a`` / ``val_loss_b``, the losses on the
first and second half of the split (`nas.evaluation.scoring.evaluate_split_halves`: their agreement
is the noise ceiling of the labels). With a store
it also writes each result as it arrives (source ``supernet``) and, by default, reuses
results already stored for the same checkpoint, fidelity and split: a search killed
mid-generation loses nothing and pays nothing twice. `InProcessEvaluator` runs in this
process; `nas.distributed.EvaluationPool` (Ray) has the same interface and gives the same
numbers, so ``--workers`` never changes a front (`nas.distributed.make_evaluator` picks one).

Example::

    with InProcessEvaluator(supernet=net, x=val.x, y=val.y, store=store, study="quickstart",
                            checkpoint_sha256=sha) as evaluate:
        results = evaluate(archs)  # [{"arch_key": ..., "val_loss": ..., "val_accuracy": ...}]
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from nas.evaluation.scoring import evaluate_many, evaluate_split_halves
from nas.storage import ArchRecord, Evaluation, Store
from nas.supernet import Supernet
from search_spaces import Arch, SearchSpace

Result = dict[str, Any]


def local_node_id() -> str:
    """The Ray node id when this process is connected to Ray, else ``"local"`` (never
    imports Ray: in-process evaluation must not pay for it)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()
    return "local"


@dataclass(frozen=True)
class BatchReport:
    """One batch of archs finished: where (node id, process id), in how many seconds, and
    how much CPU time its process used meanwhile (``cpu_seconds / seconds`` below the
    threads it runs: the process waited for a core)."""

    arch_keys: tuple[str, ...]
    node_id: str
    pid: int
    seconds: float
    cpu_seconds: float = 0.0
    attempt: int = 0




def evaluation_values(supernet: Supernet, archs: Sequence[Arch], x: Tensor, y: Tensor, *,
                      batch_size: int, device: str | torch.device | None,
                      max_batches: int | None, halves: bool) -> list[tuple[float, ...]]:
    """Per arch ``(loss, accuracy)``, or ``(loss, accuracy, loss_a, loss_b)`` with
    ``halves``: what every evaluator (in process or a Ray actor) computes, so all agree."""
    if halves:
        return [(r.full.loss, r.full.accuracy, r.half_a.loss, r.half_b.loss)
                for r in evaluate_split_halves(supernet, archs, x, y, batch_size=batch_size,
                                               device=device)]
    return [(r.loss, r.accuracy) for r in evaluate_many(
        supernet, archs, x, y, batch_size=batch_size, device=device, max_batches=max_batches)]


def default_fidelity(split: str, n_examples: int, max_batches: int | None) -> str:
    """``val=270`` (the whole split), or ``val=270,batches=4``: how a value was measured."""
    text = f"{split}={n_examples}"
    return text if max_batches is None else f"{text},batches={max_batches}"


class StoringEvaluator:
    """The evaluator interface, and the part every evaluator shares: validation,
    de-duplication, order, the store.

    Subclasses implement `_evaluate(archs)`, a generator of ``(archs, [(loss, accuracy)],
    BatchReport)`` batches in any order; each is written to the store as soon as it is
    yielded, then reported to ``on_batch``.
    """

    def __init__(self, *, space: SearchSpace, n_examples: int, store: Store | None,
                 study: str | None, checkpoint_sha256: str, fidelity: str | None, split: str,
                 max_batches: int | None, reuse_stored: bool,
                 on_batch: Callable[[BatchReport], None] | None, halves: bool = False) -> None:
        if (store is None) != (study is None):
            raise ValueError("store and study: give both (results are stored) or neither")
        if n_examples < 1:
            raise ValueError("evaluation split is empty")
        if halves and (n_examples < 2 or max_batches is not None):
            raise ValueError("halves: the split needs >= 2 examples and no max_batches")
        self.space, self.store, self.study = space, store, study
        self.checkpoint_sha256, self.split = checkpoint_sha256, split
        self.fidelity = fidelity or default_fidelity(split, n_examples, max_batches)
        self.reuse_stored, self.on_batch = reuse_stored, on_batch
        self.halves = halves
        self.metrics = (f"{split}_loss", f"{split}_accuracy") + (
            (f"{split}_loss_a", f"{split}_loss_b") if halves else ())
        self.evaluated = 0  # archs actually run (not taken from the store)

    def __call__(self, archs: Sequence[Arch]) -> list[Result]:
        """Results of ``archs`` in their order; each distinct arch is run at most once."""
        archs = list(archs)
        for arch in archs:
            self.space.validate(arch)
        unique = {a.key(): a for a in archs}
        results = self._stored(unique) if self.store is not None and self.reuse_stored else {}
        todo = [a for k, a in unique.items() if k not in results]
        if todo and self.store is not None:
            assert self.study is not None  # store and study come together (__init__)
            self.store.put_archs(study=self.study, archs=[
                ArchRecord.from_arch(a, flops=self.space.flops(a), params=self.space.params(a))
                for a in todo])
        for batch, values, report in self._evaluate(todo):
            rows = [self._result(a.key(), *v) for a, v in zip(batch, values)]
            self._save(rows)
            self.evaluated += len(rows)
            results.update((r["arch_key"], r) for r in rows)
            if self.on_batch is not None:
                self.on_batch(report)
        return [dict(results[a.key()]) for a in archs]

    def _evaluate(self, archs: list[Arch]) -> Iterator[
            tuple[list[Arch], list[tuple[float, float]], BatchReport]]:
        # values per arch: (loss, accuracy), plus (loss_a, loss_b) with halves
        raise AttributeError(f"{type(self).__name__} must define _evaluate")

    def _stored(self, unique: dict[str, Arch]) -> dict[str, Result]:
        found: dict[str, dict[str, float]] = {}
        store, study = self.store, self.study
        assert store is not None and study is not None  # called only with a store
        for metric in self.metrics:
            for ev in store.get_evaluations(
                    study=study, metric=metric, source="supernet", split=self.split,
                    checkpoint_sha256=self.checkpoint_sha256, arch_keys=unique):
                if ev.fidelity == self.fidelity:
                    found.setdefault(ev.arch_key, {})[metric] = ev.value
        return {k: self._result(k, *(v[m] for m in self.metrics)) for k, v in found.items()
                if len(v) == len(self.metrics)}

    def _result(self, arch_key: str, *values: float) -> Result:
        return {"arch_key": arch_key, **{m: float(v) for m, v in zip(self.metrics, values)}}

    def _save(self, rows: Iterable[Result]) -> None:
        if self.store is None:
            return
        assert self.study is not None  # store and study come together (__init__)
        self.store.put_evaluations(study=self.study, evaluations=[
            Evaluation(arch_key=r["arch_key"], metric=name, value=r[name], source="supernet",
                       checkpoint_sha256=self.checkpoint_sha256, fidelity=self.fidelity,
                       split=self.split)
            for r in rows for name in self.metrics])

    def close(self) -> None:
        """Release workers (nothing to release in process)."""

    def __enter__(self) -> StoringEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessEvaluator(StoringEvaluator):
    """Evaluate archs with inherited weights in this process, ``archs_per_batch`` at a time
    (each batch of data is moved once and run through every arch of the batch).

    ``threads`` sets torch's intra-op threads for the calls (None: leave as is).
    """

    def __init__(self, *, supernet: Supernet, x: Tensor, y: Tensor, batch_size: int = 256,
                 device: str | torch.device | None = None, max_batches: int | None = None,
                 threads: int | None = None, archs_per_batch: int = 32,
                 store: Store | None = None, study: str | None = None, checkpoint_sha256: str = "",
                 fidelity: str | None = None, split: str = "val", reuse_stored: bool = True,
                 on_batch: Callable[[BatchReport], None] | None = None,
                 halves: bool = False) -> None:
        if archs_per_batch < 1 or batch_size < 1:
            raise ValueError("archs_per_batch and batch_size must be >= 1")
        super().__init__(space=supernet.space, n_examples=int(x.shape[0]), store=store,
                         study=study, checkpoint_sha256=checkpoint_sha256, fidelity=fidelity,
                         split=split, max_batches=max_batches, reuse_stored=reuse_stored,
                         on_batch=on_batch, halves=halves)
        self.supernet, self.x, self.y = supernet, x, y
        self.batch_size, self.device, self.max_batches = batch_size, device, max_batches
        self.threads, self.archs_per_batch = threads, archs_per_batch

    def _evaluate(self, archs: list[Arch]):
        import os
        import time

        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            for start in range(0, len(archs), self.archs_per_batch):
                batch = archs[start:start + self.archs_per_batch]
                t0, c0 = time.perf_counter(), time.process_time()
                values = evaluation_values(self.supernet, batch, self.x, self.y,
                                           batch_size=self.batch_size, device=self.device,
                                           max_batches=self.max_batches, halves=self.halves)
                report = BatchReport(tuple(a.key() for a in batch), local_node_id(),
                                     os.getpid(), time.perf_counter() - t0,
                                     time.process_time() - c0)
                yield batch, values, report
        finally:
            torch.set_num_threads(previous)


__all__ = ["BatchReport", "InProcessEvaluator", "Result", "StoringEvaluator", "default_fidelity",
           "evaluation_values", "local_node_id"]
