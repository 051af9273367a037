"""Property-based fuzzing (hypothesis) of what users hand the service: search spaces, archs,
study settings, latency table files and checkpoint files. Every bad input must give exactly
one clear line (a ValueError naming what is wrong), never a traceback from deep inside, and
checking writes nothing."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kernels import DeviceFingerprint, LatencyTable, layer_flops, signature  # noqa: E402
from kernels.latency_table import Calibration, LatencyEntry  # noqa: E402
from nas.data import DataConfig  # noqa: E402
from nas.latency.profile import enumerate_layer_specs  # noqa: E402
from nas.pipeline import check_latency_table_file  # noqa: E402
from nas.study import Study, check_study  # noqa: E402
from nas.training import CheckpointError, load_checkpoint  # noqa: E402
from nas.training.checkpoint import save_checkpoint  # noqa: E402
from search_spaces import Arch, get_space  # noqa: E402

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
TINY = dict(in_channels=1, num_classes=10, resolutions=(8,), patch_size=2,
            widths=((8,), (8, 16)), depths=((1,), (1, 2)), head_dim=8)


def one_clear_line(exc: BaseException) -> str:
    """The error must be a ValueError with one non-empty line (what the CLI prints)."""
    assert isinstance(exc, ValueError), f"{type(exc).__name__}: {exc}"
    text = str(exc).strip()
    assert text and len(text.splitlines()) == 1, repr(text)
    return text


def _files(where: Path) -> list[Path]:
    return sorted(p for p in where.rglob("*"))


ints = st.one_of(st.integers(-4, 40), st.sampled_from([0, -1, 10**9]))
odd = st.one_of(ints, st.floats(allow_nan=True, allow_infinity=True), st.none(),
                st.text(max_size=3), st.booleans())


# ---- search spaces --------------------------------------------------------------------------


choice_tuple = st.lists(st.one_of(ints, st.floats(-2, 20)), min_size=0, max_size=3).map(tuple)
overrides = st.fixed_dictionaries({}, optional={
    "in_channels": odd, "num_classes": odd, "num_outputs": odd, "patch_size": odd,
    "head_dim": odd,
    "resolutions": choice_tuple,
    "widths": st.lists(choice_tuple, min_size=0, max_size=3).map(tuple),
    "depths": st.lists(choice_tuple, min_size=0, max_size=3).map(tuple),
    "bogus_option": ints,
})


@FUZZ
@given(extra=overrides)
def test_fuzzed_space_overrides_build_or_fail_clearly(extra):
    try:
        space = get_space("hybrid_vit_tiny", **{**TINY, **extra})
    except Exception as exc:  # noqa: BLE001 - the property is about the kind of error
        one_clear_line(exc)
        return
    space.validate(space.largest())  # a space that builds is usable
    assert space.size() >= 1


# ---- archs ----------------------------------------------------------------------------------


SPACE = get_space("hybrid_vit_tiny", **TINY)


def _mutations():
    base = json.loads(SPACE.largest().to_json())
    paths = st.sampled_from(["resolution", "stages", "stages.0", "stages.0.width",
                             "stages.0.depth", "stages.1.layers", "stages.1.layers.0",
                             "stages.1.layers.0.mixer", "stages.1.layers.0.hidden_ratio",
                             "extra"])
    return st.tuples(st.just(base), st.lists(st.tuples(paths, st.one_of(
        odd, st.sampled_from(["conv", "ssm", "attention", "nope", [], {}]))), max_size=3))


def _apply(doc, edits):
    doc = json.loads(json.dumps(doc))
    for path, value in edits:
        parts, node = path.split("."), doc
        for p in parts[:-1]:
            key = int(p) if isinstance(node, list) else p
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if isinstance(node, dict):
            node[parts[-1]] = value
        elif isinstance(node, list) and parts[-1].isdigit() and int(parts[-1]) < len(node):
            node[int(parts[-1])] = value
    return doc


@FUZZ
@given(case=_mutations())
def test_fuzzed_archs_parse_and_validate_or_fail_clearly(case):
    doc = _apply(*case)
    try:
        text = json.dumps(doc, allow_nan=True)
        arch = Arch.from_json(text)
        SPACE.validate(arch)
    except Exception as exc:  # noqa: BLE001
        one_clear_line(exc)
        return
    assert SPACE.layers(arch)  # inside the space: it has layers
    assert Arch.from_json(arch.to_json()) == arch


# ---- study settings -------------------------------------------------------------------------


study_settings = st.fixed_dictionaries({}, optional={
    "steps": odd, "batch_size": odd, "lr": odd, "warmup_steps": odd, "eval_every": odd,
    "checkpoint_every": odd, "weight_decay": odd,
})


def _py(value) -> str:
    """Python source for a fuzzed value (non-finite floats included)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    return repr(value)


@FUZZ
@given(train=study_settings, n_archs=odd, holdout=odd,
       name=st.sampled_from(["ok", "", "bad name", "x/y"]))
def test_fuzzed_study_files_fail_clearly_and_write_nothing(tmp_path, train, n_archs, holdout,
                                                           name):
    """A study file with fuzzed settings, loaded and checked as `nas run` does before it
    opens any store: one clear line or a valid study, and no file written."""
    from nas.study import load_study

    fields = ", ".join(f"{k}={_py(v)}" for k, v in {"steps": 4, "batch_size": 16,
                                                     **train}.items())
    path = tmp_path / "fuzz_study.py"
    path.write_text(
        "from nas.study import (DataConfig, EvaluationConfig, PredictorConfig, Study,\n"
        "                       TrainConfig)\n\n"
        f"study = Study(name={name!r}, space='hybrid_vit_tiny', space_overrides={TINY!r},\n"
        "              data=DataConfig(source='digits'),\n"
        f"              training=TrainConfig({fields}),\n"
        f"              evaluation=EvaluationConfig(n_archs={_py(n_archs)}),\n"
        f"              predictor=PredictorConfig(holdout={_py(holdout)}))\n")
    before = _files(tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        check_study(load_study(path))
    except Exception as exc:  # noqa: BLE001
        one_clear_line(exc)
    finally:
        os.chdir(cwd)
    assert [p for p in _files(tmp_path) if "__pycache__" not in p.parts] == before


# ---- latency table files -------------------------------------------------------------------


def _good_table_dict(batch_size: int = 1, mode: str = "eager") -> dict:
    fp = DeviceFingerprint(device_type="cpu", device_name="fuzz", threads=1, driver="",
                           cuda="", torch=torch.__version__, dtype="float32",
                           batch_size=batch_size, mode=mode)
    table = LatencyTable(fp)
    for spec in enumerate_layer_specs(SPACE):
        table.entries[signature(spec)] = LatencyEntry(0.01 + layer_flops(spec) / 1e8, 0.0, 3)
    table.calibration = Calibration(scale=1.0, per_layer_ms=0.001, intercept_ms=0.01, n_models=3)
    return table.to_dict()


GOOD_TABLE = _good_table_dict()
STUDY = Study(name="fuzz", space="hybrid_vit_tiny", space_overrides=TINY,
              data=DataConfig(source="digits"))


@FUZZ
@given(field_name=st.sampled_from(["median_ms", "spread_ms", "repeats"]), value=odd,
       top=st.sampled_from([None, "format", "fingerprint", "entries", "calibration",
                            "fingerprint_id"]), top_value=odd)
def test_fuzzed_table_files_fail_clearly(tmp_path, field_name, value, top, top_value):
    doc = json.loads(json.dumps(GOOD_TABLE))
    first = next(iter(doc["entries"]))
    doc["entries"][first][field_name] = value
    if top is not None:
        doc[top] = top_value
    path = tmp_path / "table.json"
    path.write_text(json.dumps(doc, allow_nan=True))
    try:
        table = check_latency_table_file(path, study=STUDY)
    except Exception as exc:  # noqa: BLE001
        assert "table.json" in one_clear_line(exc)
        return
    for e in table.entries.values():  # accepted: then every latency is sane
        assert math.isfinite(e.median_ms) and e.median_ms > 0
        assert math.isfinite(e.spread_ms) and e.spread_ms >= 0 and e.repeats >= 1


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_as_table_fail_clearly(tmp_path, data):
    path = tmp_path / "table.json"
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        check_latency_table_file(path, study=STUDY)
    one_clear_line(info.value)


# ---- checkpoint files -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint.pt",
                           {"model": {"w": torch.arange(12.0)}, "step": 3,
                            "space_fingerprint": "abc"})
    return path.read_bytes()


@FUZZ
@given(cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)),
                                           max_size=4), junk=st.binary(max_size=64))
def test_damaged_checkpoints_fail_clearly(tmp_path, checkpoint_bytes, cut, flips, junk):
    data = bytearray(checkpoint_bytes[:int(cut * len(checkpoint_bytes))] + junk)
    for where, bits in flips:
        if data:
            data[int(where * (len(data) - 1))] ^= bits
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(bytes(data))
    try:
        state = load_checkpoint(path, space_fingerprint="abc")
    except CheckpointError as exc:
        one_clear_line(exc)
        return
    assert isinstance(state["step"], int) and state["step"] >= 0
    assert all(isinstance(v, torch.Tensor) for v in state["model"].values())
