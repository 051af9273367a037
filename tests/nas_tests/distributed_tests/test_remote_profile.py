"""Latency profiling sent to the node with a custom resource; the table is stored centrally."""

from __future__ import annotations

import numpy as np
import pytest

from nas.distributed import profile_on_node
from nas.storage import open_store

TARGET_RESOURCE = "target_device"  # offered by the second node of the ray_cluster fixture

pytestmark = pytest.mark.slow


def quick_config():
    from kernels.timing import TimingConfig
    from nas.latency.profile import MeasureConfig

    return MeasureConfig(threads=1, layer_timing=TimingConfig(warmup=1, repeats=3,
                                                              min_sample_ms=0.0),
                         model_timing=TimingConfig(warmup=1, repeats=3, min_sample_ms=0.0))


def test_profile_runs_on_the_target_node_and_is_stored(ray_cluster, tiny_space, tmp_path):
    from kernels.latency_table import LatencyTable
    from nas.latency.profile import enumerate_layer_specs

    with open_store(f"sqlite:///{tmp_path}/nas.db") as store:
        result = profile_on_node(space=tiny_space, resource=TARGET_RESOURCE,
                                 config=quick_config(), n_calibration=2, n_validation=2,
                                 out=tmp_path / "table.json", store=store)
        assert result.node_id == ray_cluster.target_node_id
        table = LatencyTable.load(tmp_path / "table.json")
        assert len(table) == len(enumerate_layer_specs(tiny_space)) == len(result.table)
        assert table.calibration is not None and table.validation is not None
        stored = store.get_latency_table(fingerprint_id=table.fingerprint.id, mode="eager",
                                         batch_size=1, dtype="float32", space=tiny_space.name)
        assert stored is not None and set(stored.entries) == set(table.entries)
        arch = tiny_space.sample(np.random.default_rng(0))
        assert table.predict(tiny_space.layers(arch)) > 0


def test_a_missing_target_resource_is_one_clear_error(ray_cluster, tiny_space):
    with pytest.raises(ValueError, match="no node of the Ray cluster offers resource 'tpu_v9'"):
        profile_on_node(space=tiny_space, resource="tpu_v9")
