"""Validation before writing: invalid studies, bad arguments and crafted files get one clear
line, exit code 1, and leave no trace (no store, no run folder, no changed rows)."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import nas, write_study  # noqa: E402

from kernels import DeviceFingerprint, LatencyTable, layer_flops, signature
from kernels.latency_table import Calibration, LatencyEntry
from nas.latency.profile import enumerate_layer_specs
from nas.pipeline import check_stored_predictor
from nas.storage import open_store
from nas.study import StudyFileError, StudyInvalidError, check_study, load_study
from nas.study_context import open_study
from nas.training import CheckpointError, load_checkpoint


def _traces(where: Path) -> list[str]:
    """What a command may have written under ``where`` (the default store, run folders)."""
    return sorted(str(p.relative_to(where)) for p in where.rglob("*")
                  if p.suffix != ".py" and "__pycache__" not in p.parts)


def _one_line_error(out) -> str:
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


def nas_in_process(*args: str, cwd: Path, monkeypatch, capsys) -> SimpleNamespace:
    """`nas ARGS` run by the console script's own `nas.cli.main` in this process (what the
    subprocess runs, without paying ~8 s of imports and start-up again): its exit code,
    stdout and stderr, as `pipeline_helpers.nas` returns them."""
    import nas.cli

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["nas", *args])
    monkeypatch.setitem(nas.cli._state, "debug", False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        nas.cli.main()
    out = capsys.readouterr()
    return SimpleNamespace(returncode=info.value.code, stdout=out.out, stderr=out.err)


BAD_STUDIES = {
    "channels": (("'in_channels': 1", "'in_channels': 3"), "in_channels"),
    "width": (("'widths': ((8,), (8, 16))", "'widths': ((-8,), (8, 16))"), "stages[0].width"),
    "depth": (("'depths': ((1,), (1, 2))", "'depths': ((0,), (1, 2))"), "depth"),
    "space": (('space="hybrid_vit_tiny"', 'space="no_such_space"'), "no_such_space"),
    "classes": (("'num_outputs': 10", "'num_outputs': 4"), "space_overrides.num_outputs"),
    "batch": (("batch_size=32", "batch_size=100000"), "training.batch_size"),
    "predictor": (('PredictorConfig(kind="gnn"', "PredictorConfig(kind='nope'"),
                  "predictor.kind"),
}


@pytest.mark.parametrize("case", sorted(BAD_STUDIES))
def test_invalid_study_writes_nothing(tmp_path, case, monkeypatch, capsys):
    """Each bad study through the CLI's own code; one also as a `python -m nas.cli` process."""
    (old, new), field = BAD_STUDIES[case]
    path = write_study(tmp_path, name=f"bad_{case}")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    out = (nas("run", str(path), cwd=tmp_path, check=False) if case == "width"
           else nas_in_process("run", str(path), cwd=tmp_path, monkeypatch=monkeypatch,
                               capsys=capsys))
    line = _one_line_error(out)
    assert field in line
    assert _traces(tmp_path) == []  # no .nas store, no runs folder


def test_data_errors_name_the_field(tmp_path):
    path = write_study(tmp_path, name="nodata")
    path.write_text(path.read_text().replace(
        'data=DataConfig(source="digits")',
        'data=DataConfig(source="text", path="/nonexistent/corpus.txt", seq_len=16)'))
    with pytest.raises(StudyInvalidError, match=r"study 'nodata': (data|space)"):
        check_study(load_study(path))


def test_fixed_file_runs_without_force(tmp_path):
    """A store left by an older version (study row + failed train stage, no results)
    takes the fixed file without --force; one with results still needs --force."""
    path = write_study(tmp_path, name="fixme")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with open_store(url) as store:
        store.create_or_get_study(name="fixme", space="hybrid_vit_tiny",
                                  study_text="the broken file", study_path=str(path))
        store.put_stage_status(study="fixme", stage="train", status="failed",
                               detail={"error": "mat1 and mat2 shapes cannot be multiplied"})
        ctx = open_study(path, store=store, runs_root=tmp_path / "runs")
        assert ctx.name == "fixme"
        assert store.get_study(name="fixme").study_text == path.read_text()
        store.put_stage_status(study="fixme", stage="train", status="done")
        path.write_text(path.read_text().replace("batch_size=32", "batch_size=16"))
        with pytest.raises(ValueError, match="changed since the study was created"):
            open_study(path, store=store, runs_root=tmp_path / "runs")


@pytest.mark.parametrize("args, flag", [
    (("train", "{study}", "--steps", "-5"), "--steps"),
    (("train", "{study}", "--steps", "0"), "--steps"),
    (("train", "{study}", "--epochs", "0"), "--epochs"),
    (("predict", "{study}", "--workers", "0"), "--workers"),
    (("search", "{study}", "--budget", "0"), "--budget"),
    (("search", "{study}", "--max-latency-ms", "-1"), "--max-latency-ms"),
    (("audit", "{study}", "--budget", "-0.5"), "--budget"),
    (("audit", "{study}", "--n", "1"), "--n"),
    (("run", "{study}", "--nproc", "0"), "--nproc"),
    (("run", "{study}", "--redo", "nonsense"), "--redo"),
    (("studies", "--storage", "garbage://::not a url"), "not a database URL"),
    (("run", "{study}", "--storage", "garbage://::not a url"), "not a database URL"),
    (("profile", "{study}", "--import", "{missing}"), "--import"),
])
def test_bad_arguments_one_line_nothing_written(tmp_path, args, flag, monkeypatch, capsys):
    """Through the CLI's own code; the number checks that answer before any heavy import
    also as `python -m nas.cli` processes (the others load the study first: ~8 s each)."""
    study = write_study(tmp_path)
    process = args[0] in ("train", "search") and "--storage" not in args
    args = [a.format(study=study, missing=tmp_path / "missing.json") for a in args]
    out = (nas(*args, cwd=tmp_path, check=False) if process
           else nas_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys))
    line = _one_line_error(out)
    assert flag in line
    assert _traces(tmp_path) == []


# ---- latency tables --------------------------------------------------------------------


def _table(space, **fp) -> LatencyTable:
    """A table of every layer of ``space``, latency proportional to the layer's FLOPs."""
    fingerprint = DeviceFingerprint(**{**dict(
        device_type="cpu", device_name="test cpu", threads=2, driver="", cuda="",
        torch=torch.__version__, dtype="float32", batch_size=1, mode="eager"), **fp})
    table = LatencyTable(fingerprint)
    for spec in enumerate_layer_specs(space):
        table.entries[signature(spec)] = LatencyEntry(
            median_ms=0.01 + layer_flops(spec) / 1e8, spread_ms=0.001, repeats=5)
    table.calibration = Calibration(scale=1.0, per_layer_ms=0.001, intercept_ms=0.01, n_models=3)
    return table


def _corrupt(table: LatencyTable, path: Path, how: str) -> Path:
    data = table.to_dict()
    first = next(iter(data["entries"]))
    if how == "negative":
        data["entries"][first]["median_ms"] = -71.0
    elif how == "zero":
        data["entries"][first]["median_ms"] = 0.0
    elif how == "nan":
        data["entries"][first]["median_ms"] = math.nan
    elif how == "repeats":
        data["entries"][first]["repeats"] = 0
    elif how == "uncalibrated":
        data["calibration"] = None
    elif how == "truncated":
        path.write_text(json.dumps(data)[:200])
        return path
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def imported_table(tmp_path_factory) -> Path:
    """A folder whose store holds a good table imported by `nas profile --import` (done once:
    each case copies the folder, so every refused import meets the same store)."""
    root = tmp_path_factory.mktemp("imported")
    study = write_study(root)
    good = _table(load_study(study).build_space()).save(root / "good.json")
    nas("profile", str(study), "--import", str(good), "--storage",
        f"sqlite:///{root / 'db.sqlite'}", cwd=root)
    return root


@pytest.mark.parametrize("how", ["negative", "zero", "nan", "repeats", "truncated", "batch",
                                 "uncalibrated"])
def test_bad_latency_table_is_refused_and_changes_nothing(tmp_path, imported_table, how,
                                                          monkeypatch, capsys):
    """Every kind of bad file through the CLI's own code; the first also as a real
    `python -m nas.cli` process (the good import of `imported_table` is one too)."""
    shutil.copytree(imported_table, tmp_path, dirs_exist_ok=True)
    study = tmp_path / "tiny.py"
    space = load_study(study).build_space()
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with open_store(url) as store:
        before = [(t.fingerprint_id, t.n_entries, t.updated_at)
                  for t in store.list_latency_tables()]
        stage_before = store.get_stage_status(study="tiny", stage="profile")
    assert before and stage_before.status == "done"
    if how == "batch":
        bad = _table(space, batch_size=4).save(tmp_path / "bad.json")
    else:
        bad = _corrupt(_table(space), tmp_path / "bad.json", how)
    args = ("profile", str(study), "--import", str(bad), "--storage", url)
    out = (nas(*args, cwd=tmp_path, check=False) if how == "negative"
           else nas_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys))
    assert "bad.json" in _one_line_error(out)
    with open_store(url) as store:
        after = [(t.fingerprint_id, t.n_entries, t.updated_at)
                 for t in store.list_latency_tables()]
        assert after == before
        assert store.get_stage_status(study="tiny", stage="profile") == stage_before


# ---- checkpoints, predictors, saved subnets ----------------------------------------------


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"PK\x03\x04truncated zip"])
def test_corrupt_checkpoint_one_clear_error(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="checkpoint.pt") as info:
        load_checkpoint(path)
    assert len(str(info.value).strip().splitlines()) == 1


def test_checkpoint_with_bad_fields_is_refused(tmp_path):
    from nas.training.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "checkpoint.pt", {"model": {"w": "not a tensor"},
                                                        "step": 2})
    with pytest.raises(CheckpointError, match="not a state dict of tensors"):
        load_checkpoint(path)
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"model": {}, "step": -3})
    with pytest.raises(CheckpointError, match="step must be an int >= 0"):
        load_checkpoint(path)


def test_crafted_predictor_is_refused_before_anything_is_written(tmp_path):
    path = write_study(tmp_path)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    crafted = tmp_path / "predictor_gnn"
    crafted.mkdir()
    (crafted / "config.json").write_text('{"kind": "gnn", "format": 1, "oops": [')
    with open_store(url) as store:
        ctx = open_study(path, store=store, runs_root=tmp_path / "runs")
        store.put_predictor(study="tiny", kind="gnn", metrics={}, n_labels=20,
                             path=str(crafted))
        n_eval = len(store.get_evaluations(study="tiny"))
        with pytest.raises(ValueError, match="predictor .* cannot be used") as info:
            check_stored_predictor(ctx)
        assert len(str(info.value).splitlines()) == 1
        assert len(store.get_evaluations(study="tiny")) == n_eval
        assert store.stages(study="tiny") == []


def test_load_subnet_refuses_an_arch_outside_the_space(tmp_path):
    from nas import Supernet, export_subnet, load_subnet, save_subnet

    space = load_study(write_study(tmp_path)).build_space()
    arch = space.largest()
    save_subnet(export_subnet(Supernet(space).eval(), arch), arch, tmp_path / "out")
    assert load_subnet(tmp_path / "out", space=space).arch == arch
    doc = json.loads(arch.to_json())
    doc["stages"][0]["width"] = 24  # not a width of the space
    (tmp_path / "out" / "arch.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="arch not in space"):
        load_subnet(tmp_path / "out", space=space)
    (tmp_path / "out" / "arch.json").write_text(space.smallest().to_json())
    with pytest.raises(ValueError, match="layers are not those of the arch"):
        load_subnet(tmp_path / "out", space=space)
    (tmp_path / "out" / "arch.json").write_text("{not json")
    with pytest.raises(ValueError, match="arch.json: not an arch"):
        load_subnet(tmp_path / "out")


def test_show_by_file_does_not_run_it(tmp_path, monkeypatch, capsys):
    path = write_study(tmp_path)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with open_store(url) as store:
        open_study(path, store=store, runs_root=tmp_path / "runs")
    marker = tmp_path / "ran"
    path.write_text(path.read_text() + f"\nopen({str(marker)!r}, 'w').write('x')\n")
    out = nas("show", str(path), "--storage", url, cwd=tmp_path)
    assert "study tiny" in out.stdout
    assert not marker.exists()
    out = nas_in_process("show", "tiny", "--storage", url, cwd=tmp_path,
                         monkeypatch=monkeypatch, capsys=capsys)
    assert out.returncode == 0 and "study tiny" in out.stdout
    other = tmp_path / "elsewhere.py"
    other.write_text("import os\nNAME = os.environ['HOME']\nstudy = Study(name=NAME)\n")
    line = _one_line_error(nas_in_process("show", str(other), "--storage", url, cwd=tmp_path,
                                          monkeypatch=monkeypatch, capsys=capsys))
    assert "without running the file" in line


def test_study_name_from_file_errors_are_study_file_errors(tmp_path):
    from nas.study import study_name_from_file

    bad = tmp_path / "bad.py"
    bad.write_text("def (:\n")
    with pytest.raises(StudyFileError, match="syntax error"):
        study_name_from_file(bad)


def test_unexpected_errors_still_print_one_line(tmp_path, monkeypatch, capsys):
    import nas.cli
    import nas.reports

    def boom(store, **_):
        raise TypeError("'<' not supported between\ninstances of 'NoneType' and 'int'")

    monkeypatch.setattr(nas.reports, "print_studies", boom)
    monkeypatch.setattr(sys, "argv", ["nas", "studies", "--storage",
                                      f"sqlite:///{tmp_path / 'db.sqlite'}"])
    monkeypatch.setitem(nas.cli._state, "debug", False)
    with pytest.raises(SystemExit) as info:
        nas.cli.main()
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: TypeError: '<' not supported")
    assert "--debug" in err
