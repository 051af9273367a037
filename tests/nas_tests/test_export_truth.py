"""Issue 17, library side: deployment files take any batch (and any length up to the
context), one knee for the search, export and `nas show`, the model card reads the audit's
checkpoint where the audit stores it, and latency tables carry a trust verdict."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nas import Supernet, export_subnet, save_subnet
from nas.export.study import audit_card, audited_checkpoint, choose_arch, model_card_markdown
from nas.latency.trust import LatencyTrust, latency_trust, validation_line
from nas.search.pareto import knee_point
from nas.search.session import SearchResult, knee_of_front
from nas.storage import ArchRecord, FrontRow, open_store
from search_spaces import get_space

onnxruntime = pytest.importorskip("onnxruntime")

BATCHES = (1, 7, 64)


def every_mixer_arch(space, seed0: int = 100):
    for seed in range(200):
        arch = space.sample(np.random.default_rng(seed0 + seed))
        if len({layer.mixer for s in arch.stages for layer in s.layers}) == 4:
            return arch
    raise AssertionError("no arch with every mixer")


def run_files(files, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Outputs of the saved ONNX (onnxruntime) and TorchScript files for ``x``."""
    session = onnxruntime.InferenceSession(str(files["model.onnx"]),
                                           providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(files["model.torchscript.pt"]))
    with torch.no_grad():
        ts = scripted(x).numpy()
    return session.run(None, {"input": x.numpy()})[0], ts


@pytest.mark.parametrize("name", ["hybrid_vit_tiny", "hybrid_lm_tiny"])
def test_onnx_and_torchscript_take_batch_1_7_64(name, tmp_path):
    import onnx

    torch.manual_seed(0)
    space = get_space(name)
    net = Supernet(space).eval()
    arch = every_mixer_arch(space)
    files = save_subnet(export_subnet(net, arch), arch, tmp_path / "out", onnx=True)
    declared = onnx.load(str(files["model.onnx"])).graph.input[0].type.tensor_type.shape.dim
    assert declared[0].dim_param == "batch"
    if space.modality == "sequence":
        assert declared[1].dim_param == "length"
    else:
        assert [d.dim_value for d in declared[1:]] == [space.in_channels, arch.resolution,
                                                       arch.resolution]
    shapes = [(b, None) for b in BATCHES]
    if space.modality == "sequence":  # any length up to the context, SSM chunking included
        shapes += [(3, 1), (2, 5), (4, arch.resolution // 2 + 3), (2, arch.resolution)]
    for b, length in shapes:
        x = space.example_input(arch, b, generator=torch.Generator().manual_seed(b))
        if length is not None:
            x = x[:, :length]
        with torch.no_grad():
            ref = net(x, arch).numpy()
        got_onnx, got_ts = run_files(files, x)
        assert got_onnx.shape == ref.shape and got_ts.shape == ref.shape
        assert np.abs(got_onnx - ref).max() <= 1e-5, (b, length)
        assert np.abs(got_ts - ref).max() <= 1e-5, (b, length)


# -- one knee -----------------------------------------------------------------------------


def test_knee_of_fronts_of_one_two_and_many():
    objectives = ("accuracy", "latency_ms")
    one = [{"accuracy": 0.5, "latency_ms": 1.0}]
    assert knee_of_front(one, objectives=objectives) == 0
    two = [{"accuracy": 0.6, "latency_ms": 1.0}, {"accuracy": 0.9, "latency_ms": 3.0}]
    assert knee_of_front(two, objectives=objectives) == 1  # the more accurate of the two
    assert knee_of_front(two[::-1], objectives=objectives) == 0  # whatever the order
    many = [{"accuracy": a, "latency_ms": lat} for a, lat in
            ((0.50, 1.0), (0.80, 1.2), (0.85, 2.0), (0.88, 4.0), (0.90, 9.0))]
    # normalised sums 1, 0.275, 0.25, 0.35, 1: the third is farthest below the chord
    assert knee_of_front(many, objectives=objectives) == 2
    perm = [3, 0, 4, 1, 2]
    assert perm[knee_of_front([many[i] for i in perm], objectives=objectives)] == 2
    # loss is minimised: the same front in loss terms has the same knee
    as_loss = [{"loss": 1 - r["accuracy"], "latency_ms": r["latency_ms"]} for r in many]
    assert knee_of_front(as_loss, objectives=("loss", "latency_ms")) == 2
    with pytest.raises(ValueError, match="empty"):
        knee_of_front([], objectives=objectives)
    with pytest.raises(ValueError, match="lacks objective"):
        knee_of_front([{"accuracy": 0.5}], objectives=objectives)
    # the array form: ties are broken by the first objective, not by the row order
    assert knee_point(np.array([[-0.6, 1.0], [-0.9, 3.0]])) == 1
    assert knee_point(np.array([[-0.9, 3.0], [-0.6, 1.0]])) == 0


@pytest.fixture
def tiny_space():
    return get_space("hybrid_vit_tiny", in_channels=1, resolutions=(8,), patch_size=2,
                     widths=((8,), (8, 16)), depths=((1,), (1, 2)), head_dim=8)


@pytest.mark.parametrize("size", [1, 2, 5])
def test_search_and_export_pick_the_same_knee(size, tiny_space, tmp_path):
    """`SearchResult.knee` (what the search prints) and `nas export`'s default pick agree
    for fronts of 1, 2 and many members (export once took the middle row of small fronts)."""
    rng = np.random.default_rng(size)
    archs, seen = [], set()
    while len(archs) < size:
        a = tiny_space.sample(rng)
        if a.key() not in seen:
            seen.add(a.key())
            archs.append(a)
    latency = np.sort(rng.uniform(0.5, 3.0, size))
    accuracy = np.sort(rng.uniform(0.3, 0.95, size))  # slower is more accurate: all on front
    result = SearchResult(
        method="ours", objectives=("accuracy", "latency_ms"), maximise=(True, False),
        archs=archs, values=np.c_[accuracy, latency], metrics=[{} for _ in archs],
        costs=[{} for _ in archs], front=list(range(size)), budget=size, budget_used=size,
        evaluator_calls=size, seed=0)
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        store.create_or_get_study(name="s", space="hybrid_vit_tiny")
        store.put_archs(study="s", archs=[ArchRecord.from_arch(a) for a in archs])
        # the older spelling "latency" of a stored run's config is still read
        store.create_search_run(study="s", name="search", method="ours", seed=0,
                                config={"objectives": ["accuracy", "latency"]})
        store.put_front(study="s", run="search", front=[
            FrontRow(archs[i].key(), result.front_objectives(i), rank)
            for rank, i in enumerate(result.front)])
        chosen, row = choose_arch(SimpleNamespace(store=store, name="s"), run="search")
    assert chosen == result.knee()
    if size == 2:
        assert chosen == archs[1]  # the more accurate one
    assert row["accuracy"] == pytest.approx(float(accuracy[archs.index(chosen)]))


# -- the model card and the audit's checkpoint --------------------------------------------


def audit_report(checkpoint: str | None) -> dict:
    comparison = {"kendall_tau": 0.5, "kendall_tau_ci": [0.1, 0.8], "available": True}
    report = {"n_archs": 3, "seeds": 2, "recipe": {"steps": 10}, "finished_at": "now",
              "comparisons": {"supernet": comparison, "flops": comparison},
              "noise_ceiling": {"available": False}, "rows": []}
    if checkpoint is not None:
        report["selection_params"] = {"n": 3, "seed": 0, "checkpoint_sha256": checkpoint,
                                      "front_run": "search"}
    return report


@pytest.mark.parametrize("stored, current, same", [
    ("a" * 64, "a" * 64, True), ("b" * 64, "a" * 64, False), (None, "a" * 64, None)])
def test_model_card_reads_the_audits_checkpoint(stored, current, same, tiny_space, tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        store.create_or_get_study(name="s", space="hybrid_vit_tiny")
        store.put_stage_status(study="s", stage="audit", status="done",
                               detail=audit_report(stored))
        ctx = SimpleNamespace(store=store, name="s", checkpoint_sha=lambda: current)
        card = audit_card(ctx, tiny_space.largest())
    assert audited_checkpoint(audit_report(stored)) == stored
    older = audit_report(stored)  # reports before 2026-12-03 named the sha "checkpoint"
    if stored is not None:
        older["selection_params"]["checkpoint"] = older["selection_params"].pop(
            "checkpoint_sha256")
    assert audited_checkpoint(older) == stored
    assert card["same_checkpoint"] is same and card["checkpoint_sha256"] == stored
    text = model_card_markdown({
        "study": "s", "arch_key": "k", "label": "l", "flops": 1, "params": 1,
        "exported_model": {"val_accuracy": 0.5, "val_loss": 1.0, "source": "x",
                           "reproduces_stored_accuracy": True},
        "audit": card, "metrics": [], "reproducibility": {
            "study_file": "", "study_hash": "", "git_commit": "", "seeds": {},
            "package_versions": {}, "checkpoint_sha256": current}})
    assert ("another supernet checkpoint" in text) is (same is False)
    assert ("did not record its supernet checkpoint" in text) is (same is None)


# -- latency tables: validation against the machine's repeat ceiling ----------------------


def metrics(within10: float, mape: float) -> dict:
    return {"within10": within10, "mape": mape, "kendall": 0.9, "n": 30}


def test_latency_trust_verdicts():
    assert latency_trust(None).status == "unvalidated"
    assert latency_trust({"meta": {}}).status == "unvalidated"
    good = latency_trust({"naive": metrics(0.7, 0.2), "calibrated": metrics(0.93, 0.04),
                          "repeat": metrics(0.97, 0.02)})
    assert good.trusted and good.prediction == "calibrated" and good.advice == ()
    assert "trusted" in good.summary() and "97 %" in good.summary()
    # below 80 % within +-10 %: a busy machine that does not repeat itself either
    busy = latency_trust({"naive": metrics(0.0, 0.74), "calibrated": metrics(0.43, 0.114),
                          "repeat": metrics(0.5, 0.12)})
    assert busy.status == "unreliable"
    assert any("only 43 %" in r for r in busy.reasons)
    assert any("does not repeat" in r for r in busy.reasons)
    text = "\n".join(busy.lines())
    for advice in ("idle machine", "taskset -c 1", "--threads 1", "--spread 30"):
        assert advice in text
    # above 80 % but clearly worse than what the machine repeats
    ceiling = latency_trust({"naive": metrics(0.82, 0.06), "repeat": metrics(1.0, 0.01)})
    assert ceiling.status == "unreliable" and ceiling.prediction == "naive"
    assert any("repeat ceiling" in r for r in ceiling.reasons)
    # no repeat measured: judged on the 80 % rule alone, and says the ceiling is unknown
    old = latency_trust({"calibrated": metrics(0.6, 0.15)})
    assert old.status == "unreliable" and old.repeat_within10 is None
    assert any("not measured" in r for r in old.reasons)
    assert latency_trust({"calibrated": metrics(0.9, 0.05)}).trusted
    assert LatencyTrust.from_dict(busy.to_dict()) == busy
    with pytest.raises(ValueError, match="min_within10"):
        latency_trust({}, min_within10=0)


def test_validation_line_names_the_repeat_ceiling():
    line = validation_line({"calibrated": metrics(0.9, 0.05), "naive": metrics(0.5, 0.2),
                            "repeat": metrics(0.95, 0.03)})
    assert "calibrated: MAPE 5.0 %" in line
    assert "repeat ceiling (same models measured twice): MAPE 3.0 %, within +-10 % 95 %" in line
    assert "repeat ceiling: not measured" in validation_line({"naive": metrics(0.5, 0.2)})


def test_python_m_nas_profile_prints_validation_repeat_ceiling_and_verdict(tmp_path, capsys):
    """`python -m nas.latency.profile` (in process, tiny space, short timings) measures the
    validation models twice and prints the table's validation, the ceiling and the verdict."""
    import json

    from nas.latency.profile import main

    out = tmp_path / "t.json"
    code = main(["--space", "hybrid_vit_tiny", "--override", "widths=((16,),(32,))",
                 "--override", "depths=((1,),(1,))", "--override", "resolutions=(16,)",
                 "--override", "head_dim=16", "--threads", "1", "--repeats", "3",
                 "--model-repeats", "3", "--spread", "0", "--calibrate", "2", "--validate",
                 "4", "--no-progress", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "validation: calibrated: MAPE" in printed
    assert "repeat ceiling (same models measured twice): MAPE" in printed
    assert "latency table trusted" in printed or "latency table UNRELIABLE" in printed
    data = json.loads(out.read_text())
    repeat = data["validation"]["repeat"]
    assert repeat["n"] == 4 and 0 <= repeat["within10"] <= 1
    assert len(data["meta"]["repeat_ms"]) == len(data["meta"]["validation_ms"]) == 4
    verdict = latency_trust(data["validation"])
    assert verdict.repeat_within10 == repeat["within10"]
    assert verdict.summary() in printed


# -- through the CLI: nas run, nas export, nas show ---------------------------------------


@pytest.fixture
def finished_study(finished_tiny_run, tmp_path):
    """A copy of the tiny study run through every stage by `nas run` (the session's
    `finished_tiny_run`), in ``tmp_path / "study"``."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from pipeline_helpers import nas

    root = tmp_path / "study"
    study, url = finished_tiny_run.copy_to(root)
    return SimpleNamespace(root=root, study=study, url=url, stdout=finished_tiny_run.stdout,
                           nas=nas)


def load_supernet(root, url):
    from nas.training import load_checkpoint

    with open_store(url) as store:
        record = store.get_study(name="tiny")
        ckpt = max(store.list_checkpoints(study="tiny"), key=lambda c: c.step)
    net = Supernet(get_space(record.space, **record.space_overrides))
    net.load_state_dict(load_checkpoint(ckpt.path, space_fingerprint=net.fingerprint())["model"])
    return net.eval()


@pytest.mark.slow
def test_nas_export_writes_an_onnx_model_for_batch_1_7_64(finished_study, tmp_path):
    import json

    from search_spaces import Arch

    run = finished_study
    # `nas run` printed the table's validation beside the machine's repeat ceiling, and
    # a verdict on the table
    assert "calibrated: MAPE" in run.stdout and "repeat ceiling (same models measured " \
        "twice)" in run.stdout.replace("\n", " ")
    assert "latency table trusted" in run.stdout or "latency table UNRELIABLE" in run.stdout
    with open_store(run.url) as store:
        stages = {s.stage: s.detail for s in store.stages(study="tiny")}
        table = store.list_latency_tables()[0]
    assert stages["profile"]["latency_trust"] in ("trusted", "unreliable")
    assert isinstance(stages["profile"]["repeat_within10"], float)
    assert "repeat" in table.validation and table.validation["repeat"]["n"] == 4
    # the search's knee is what the export stage exported
    assert stages["search"]["knee"] == stages["export"]["arch"]
    shown = run.nas("show", "tiny", "--storage", run.url, cwd=run.root)
    assert f"knee (the default export): {stages['search']['knee']}" in shown.stdout
    assert "knee, exported" in shown.stdout

    out = tmp_path / "exported"
    run.nas("export", str(run.study), "--storage", run.url, "--out", str(out), cwd=run.root)
    card = json.loads((out / "model_card.json").read_text())
    assert card["arch_key"] == stages["search"]["knee"]
    assert card["latency"]["trust"]["status"] in ("trusted", "unreliable")
    assert "repeat" not in card["latency"]["repeat_ceiling"] and \
        card["latency"]["repeat_ceiling"]["n"] == 4
    arch = Arch.from_json((out / "arch.json").read_text())
    net = load_supernet(run.root, run.url)
    session = onnxruntime.InferenceSession(str(out / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    for b in BATCHES:
        x = net.space.example_input(arch, b, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            ref = net(x, arch).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == ref.shape == (b, 10)
        assert np.abs(got - ref).max() <= 1e-5
