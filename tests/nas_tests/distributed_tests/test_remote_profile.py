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


def test_a_remote_table_is_stored_like_a_profiled_one(tmp_path):
    """`store_latency_table` is `nas.latency.store.store_table`: the table's meta is kept, so
    `load_stored_table` reads back the table the target measured (no Ray needed)."""
    from kernels import device_fingerprint
    from kernels.latency_table import Calibration, LatencyEntry, LatencyTable
    from nas.distributed import store_latency_table
    from nas.latency.store import load_stored_table

    fp = device_fingerprint(device="cpu", batch_size=1, mode="eager", threads=1)
    table = LatencyTable(fp, entries={"a": LatencyEntry(median_ms=0.5, spread_ms=0.01,
                                                        repeats=3)},
                         calibration=Calibration(scale=1.1, per_layer_ms=0.01,
                                                 intercept_ms=0.2),
                         validation={"calibrated": {"mape": 4.0}}, meta={"host": "target"})
    with open_store(f"sqlite:///{tmp_path}/nas.db") as store:
        record = store_latency_table(store=store, table=table, space="tiny")
        assert record.fingerprint_id == fp.id
        back = load_stored_table(store, space="tiny")
    assert back is not None and back.meta == {"host": "target"}
    assert back.validation == table.validation and back.calibration == table.calibration
    assert back.entries == table.entries
