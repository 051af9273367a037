"""A store holding a small real study, for the app's tests and the README screenshots.

A tiny study is trained, evaluated, given a predictor, searched and exported by the real
pipeline stages (`nas.pipeline.run_stage`), then audited (`nas.audit.run_audit`, 3 archs x
2 seeds). Only the `profile` stage is replaced: its latency table is computed from each
layer's exact FLOPs instead of timed (timing every layer takes minutes on a busy 2-core
machine) and stored the way the stage stores it, with a trusted validation and repeat
ceiling, so the search and the app read it like a measured one. A second table, of
another "device" (2 threads), is stored with a poor validation and a poor repeat ceiling:
the app must flag it wherever it plots latency from it.

    python tests/ui_tests/fixture_store.py DIR    # builds DIR/ui.db, prints its URL
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STUDY = "tiny"
RUN = "search"
AUDIT_ARCHS = 3
STUDY_FILE = '''
from nas.study import (DataConfig, EvaluationConfig, PredictorConfig, SearchConfig, Study,
                       TrainConfig)

study = Study(
    name="tiny",
    space="hybrid_vit_tiny",
    space_overrides={"in_channels": 1, "num_classes": 10, "resolutions": (8,), "patch_size": 2,
                     "widths": ((8,), (8, 16)), "depths": ((1,), (1, 2)), "head_dim": 8},
    data=DataConfig(source="digits"),
    training=TrainConfig(steps=12, batch_size=32, warmup_steps=2, eval_every=6,
                         eval_batches=2, checkpoint_every=6, panel_size=2, num_random=1, bins=3),
    evaluation=EvaluationConfig(n_archs=20, batch_size=256),
    predictor=PredictorConfig(kind="ridge"),
    search=SearchConfig(budget=10, population=4, pool_factor=4, predictor="ridge", seed=0),
)
'''


@dataclass(frozen=True)
class FixtureStore:
    url: str
    root: Path
    study: str
    run: str
    archs: tuple[str, ...]
    front: tuple[str, ...]
    latency_ms: dict[str, float]


def computed_latency_table(space, *, seed: int = 0, threads: int = 1, gflops: float = 5.0,
                           noise: float = 0.04):
    """A calibrated, validated CPU table for every layer the space can contain: 1 us plus
    the layer's FLOPs at ``gflops`` GFLOP/s (spread 250 %, so a layer's error bar would
    reach below 0 if it were not clipped); 'measured' models are the prediction with
    ``noise`` relative noise, measured twice for the repeat ceiling."""
    from kernels import LatencyTable, layer_flops, signature
    from kernels.fingerprint import device_fingerprint
    from kernels.latency_table import LatencyEntry, latency_metrics

    table = LatencyTable(device_fingerprint(device="cpu", batch_size=1, threads=threads),
                         meta={"note": "entries computed from FLOPs (test fixture)"})
    for _, spec in space.layer_slots():
        ms = 0.001 + layer_flops(spec) / (gflops * 1e6)
        table.entries[signature(spec)] = LatencyEntry(ms, 2.5 * ms, 21)
    rng = np.random.default_rng(seed)
    models = [space.layers(space.sample(rng)) for _ in range(12)]
    truth = [table.predict(m, naive=True) * 1.1 for m in models]
    measured = [t * rng.normal(1.0, noise) for t in truth]
    again = [t * rng.normal(1.0, noise) for t in truth[4:]]
    table.calibrate(models[:4], measured[:4])
    result = table.validate(models[4:], measured[4:])
    result["repeat"] = latency_metrics(again, measured[4:])
    table.validation = result
    return table


def build_fixture_store(root: Path) -> FixtureStore:
    """Run the tiny study's stages in ``root`` (about half a minute on 2 free cores); the
    stages already done there are kept."""
    from rich.console import Console

    from nas.latency.store import store_table
    from nas.pipeline import run_stage
    from nas.storage import open_store
    from nas.study_context import open_study
    from search_spaces import Arch

    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{STUDY}.py"
    path.write_text(STUDY_FILE)
    url = f"sqlite:///{root / 'ui.db'}"
    with open_store(url) as store:
        ctx = open_study(path, store=store, runs_root=root / "runs",
                         console=Console(quiet=True))
        done = {s.stage for s in store.stages(study=STUDY) if s.status == "done"}
        table = computed_latency_table(ctx.space())
        other = computed_latency_table(ctx.space(), seed=1, threads=2, gflops=3.0, noise=0.4)
        for stage in ("train", "profile", "evaluate", "predict", "search", "export"):
            if stage in done:
                continue  # a directory built before is reused as it is
            if stage == "profile":
                store_table(store, other, space=ctx.space_key())  # older: not the default
                store_table(store, table, space=ctx.space_key())
                store.put_stage_status(study=STUDY, stage=stage, status="done", detail={
                    "fingerprint": table.fingerprint.id, "computed": True})
            else:
                run_stage(ctx, stage)
        audit = store.get_stage_status(study=STUDY, stage="audit")
        if audit is None or audit.status != "done":
            from nas.audit import run_audit

            run_audit(ctx, n=AUDIT_ARCHS, seeds=2, progress=False)
        space = ctx.space()
        archs = [Arch.from_json(r.arch_json) for r in store.get_archs(study=STUDY)]
        front = tuple(r.arch_key for r in store.get_front(study=STUDY, run=RUN))
    calibrated = {a.key(): table.predict(space.layers(a)) for a in archs}
    return FixtureStore(url=url, root=root, study=STUDY, run=RUN,
                        archs=tuple(a.key() for a in archs), front=front,
                        latency_ms=calibrated)


if __name__ == "__main__":
    built = build_fixture_store(Path(sys.argv[1]).resolve())
    print(built.url)
