"""The Python API (`nas.open_study`): the README's program runs, a `Study` object works as a
file does, stages can be run one by one, and bad input gets one clear error and writes
nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import nas
from nas.storage import LeaseHeldError, StoreError
from nas.study import StudyFileError, StudyInvalidError, load_study

from .pipeline_helpers import write_study

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_program() -> str:
    """The Python block after the ``<!-- api-quickstart -->`` marker of README.md."""
    text = README.read_text()
    match = re.search(r"<!-- api-quickstart -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its API quickstart block"
    return match.group(1)


def test_readme_program_runs_every_stage_and_exports_the_knee(tmp_path, monkeypatch, capsys):
    study_file = write_study(tmp_path, name="api_tiny")
    program = readme_program()
    assert '"studies/quickstart.py"' in program
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAS_STORAGE", f"sqlite:///{tmp_path / 'store.db'}")
    exec(compile(program.replace("studies/quickstart.py", str(study_file)), "README", "exec"),
         {})
    printed = capsys.readouterr().out
    assert "exported to" in printed
    with nas.open_study(study_file) as study:
        assert set(study.status().values()) == {"done"}
        front = study.front()
        assert front and [r.rank for r in front] == list(range(len(front)))
        assert all(r.arch_key in printed for r in front)
        # a second run of a finished study runs nothing
        assert study.run() == []
    exported = Path(printed.split("exported to", 1)[1].split()[0])
    exported = exported if exported.is_absolute() else tmp_path / exported
    assert exported.is_dir() and any(exported.iterdir())


def test_study_object_is_written_once_and_runs_stage_by_stage(tmp_path):
    study = load_study(write_study(tmp_path, name="api_object"))
    storage = f"sqlite:///{tmp_path / 'store.db'}"
    runs = tmp_path / "runs"
    with nas.open_study(study, storage=storage, runs_root=runs) as run:
        assert run.run(stages=["train"]) == ["train"]
        status = run.status()
        assert status["train"] == "done"
        assert all(v is None for k, v in status.items() if k != "train")
        assert run.front() == []
    written = runs / "api_object" / "study.py"
    assert load_study(written) == study
    stamp = written.stat().st_mtime_ns
    # the same object again: the same file, the same stored study, training not repeated
    with nas.open_study(study, storage=storage, runs_root=runs) as run:
        assert run.status()["train"] == "done"
        assert run.run(stages=["profile"]) == ["profile"]
    assert written.stat().st_mtime_ns == stamp


def test_a_held_study_is_refused_while_open(tmp_path):
    path = write_study(tmp_path, name="api_lease")
    storage = f"sqlite:///{tmp_path / 'store.db'}"
    with nas.open_study(path, storage=storage, runs_root=tmp_path / "runs"):
        with pytest.raises(LeaseHeldError):
            nas.open_study(path, storage=storage, runs_root=tmp_path / "runs")
    # released on the way out
    nas.open_study(path, storage=storage, runs_root=tmp_path / "runs").close()


def test_bad_inputs_get_one_clear_error_and_write_nothing(tmp_path):
    path = write_study(tmp_path, name="api_bad")
    runs = tmp_path / "runs"
    with pytest.raises(StudyFileError, match="study file not found"):
        nas.open_study(tmp_path / "missing.py", storage=f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(TypeError, match="study file path or a nas.study.Study"):
        nas.open_study(42, storage=f"sqlite:///{tmp_path / 's.db'}")  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        nas.open_study(path, storage="nosuchdialect://x", runs_root=runs)
    with pytest.raises(StoreError):  # a Study object's file waits for a usable store
        nas.open_study(load_study(path), storage="nosuchdialect://x", runs_root=runs)
    bad = load_study(path)
    bad = type(bad)(**{**bad.__dict__, "space": "no_such_space"})
    with pytest.raises(StudyInvalidError, match="no_such_space"):
        nas.open_study(bad, storage=f"sqlite:///{tmp_path / 's.db'}", runs_root=runs)
    assert not runs.exists() and not (tmp_path / "s.db").exists()
    with nas.open_study(path, storage=f"sqlite:///{tmp_path / 's.db'}", runs_root=runs) as run:
        for kwargs, message in (({"stages": ["trian"]}, "unknown stage"),
                                ({"stages": "train"}, "a list of stage names"),
                                ({"redo": ["x"]}, "unknown stage"),
                                ({"nproc": 0}, "nproc")):
            with pytest.raises(ValueError, match=message):
                run.run(**kwargs)
        with pytest.raises(ValueError, match="max_latency_ms"):
            run.export(max_latency_ms=-1.0)
        assert set(run.status().values()) == {None}
    assert not runs.exists()  # refused calls wrote no run folder


def test_train_supernet_takes_the_data_splits_of_load_data(tmp_path):
    """``data=`` (what `load_data` returns) trains exactly as ``train=(x, y), val=(x, y)``;
    a `TensorSplit` stands for its ``(x, y)``; mixing the two forms is refused."""
    import torch

    from nas.training import train_supernet

    study = load_study(write_study(tmp_path, name="api_data"))
    space, data = study.build_space(), study.load_data()
    config = study.training.with_overrides(steps=4, eval_every=2, checkpoint_every=2)
    common = dict(space=space, config=config, progress=False)
    by_splits = train_supernet(data=data, out_dir=tmp_path / "a", **common)
    by_tensors = train_supernet(train=(data.train.x, data.train.y),
                                val=(data.val.x, data.val.y), out_dir=tmp_path / "b", **common)
    by_split_objects = train_supernet(train=data.train, val=data.val, out_dir=tmp_path / "c",
                                      **common)
    for other in (by_tensors, by_split_objects):
        for (name, a), b in zip(by_splits.supernet.state_dict().items(),
                                other.supernet.state_dict().values()):
            assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="not both"):
        train_supernet(data=data, train=data.train, out_dir=tmp_path / "d", **common)
    with pytest.raises(ValueError, match="DataSplits"):
        train_supernet(data=(data.train.x, data.train.y), out_dir=tmp_path / "d", **common)
    with pytest.raises(ValueError, match="both train= and val="):
        train_supernet(train=data.train, out_dir=tmp_path / "d", **common)
    with pytest.raises(ValueError, match="val: expected"):
        train_supernet(train=data.train, val=data.val.x, out_dir=tmp_path / "d", **common)
    assert not (tmp_path / "d").exists()
