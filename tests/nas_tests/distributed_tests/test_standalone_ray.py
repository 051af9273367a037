"""Stand-alone trainings of an audit as Ray tasks on the real two-node test cluster: the
same results as in process, whichever worker ran them."""

from __future__ import annotations

import numpy as np
import pytest

from nas.audit import StandaloneJob, StandaloneRecipe, run_in_process
from nas.distributed.standalone import run_on_ray

pytestmark = pytest.mark.slow


def test_ray_workers_train_the_same_runs_as_one_process(ray_cluster, tiny_space, digits):
    rng = np.random.default_rng(11)
    jobs = [StandaloneJob(tiny_space.sample(rng).to_json(), seed) for seed in (0, 1)]
    recipe = StandaloneRecipe(steps=6, batch_size=32, lr=2e-3, weight_decay=0.05,
                              warmup_steps=1, min_lr_ratio=0.05, grad_clip=1.0)
    data = dict(space=tiny_space, recipe=recipe, train=(digits.train.x, digits.train.y),
                test=(digits.test.x, digits.test.y))
    local = {(r.arch_key, r.seed): r for r in run_in_process(jobs, threads=1, **data)}
    remote = list(run_on_ray(jobs, workers=2, address=ray_cluster.address, **data))
    assert sorted((r.arch_key, r.seed) for r in remote) == sorted(local)
    for r in remote:
        assert r.test_loss == pytest.approx(local[(r.arch_key, r.seed)].test_loss, rel=1e-5)
        assert r.test_accuracy == local[(r.arch_key, r.seed)].test_accuracy
