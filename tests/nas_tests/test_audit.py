"""`nas audit` on a tiny real study: selection, stand-alone training, ranking metrics,
stored rows and report, resume after an interruption, bad inputs, the model card."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import TINY_OVERRIDES, write_study  # noqa: E402

from nas.audit import (  # noqa: E402
    AuditConfig,
    StandaloneRecipe,
    rank_fidelity,
    run_audit,
    select_archs,
    stored_audit,
    train_standalone,
)
from nas.audit.fidelity import batched_metrics  # noqa: E402
from nas.audit.standalone import RegularizedSubnet, initial_model  # noqa: E402
from nas.export.model import export_subnet  # noqa: E402
from nas.pipeline import run_stage  # noqa: E402
from nas.storage import open_store  # noqa: E402
from nas.study_context import open_study  # noqa: E402
from nas.supernet import Supernet  # noqa: E402
from nas.training import TrainConfig  # noqa: E402
from predictors.metrics import kendall_tau, spearman_rho, top_k_precision  # noqa: E402
from search_spaces import get_space  # noqa: E402

AUDIT_FIELDS = ("predictor=PredictorConfig(kind='ridge'), "
                "audit=AuditConfig(budget=0.8, bootstrap=200),")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny study trained, evaluated and given a ridge predictor (a few seconds)."""
    root = tmp_path_factory.mktemp("audit")
    path = write_study(root, name="tiny_audit", steps=10, extra=AUDIT_FIELDS)
    url = f"sqlite:///{root / 'db.sqlite'}"
    with open_store(url) as store:
        ctx = open_study(path, store=store, runs_root=root / "runs", console=Console(quiet=True))
        for stage in ("train", "evaluate", "predict"):
            run_stage(ctx, stage)
    return root, path, url


def context(trained, store):
    root, path, _ = trained
    return open_study(path, store=store, runs_root=root / "runs", console=Console(quiet=True))


# -- the torch-only core ------------------------------------------------------------------


def test_batched_metrics_equal_the_predictor_metrics(rng):
    for trial in range(60):
        n = int(rng.integers(2, 12))
        k = int(rng.integers(1, n + 1))
        p = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.normal(size=n)
        t = rng.integers(0, 3, n).astype(float) if trial % 3 else rng.normal(size=n)
        got = batched_metrics(p[None], t[None], k)
        with warnings.catch_warnings():  # scipy warns on a constant side; both give 0
            warnings.simplefilter("ignore")
            assert got["kendall_tau"][0] == pytest.approx(kendall_tau(p, t), abs=1e-12)
            assert got["spearman_rho"][0] == pytest.approx(spearman_rho(p, t), abs=1e-12)
        assert got["top_k_recall"][0] == pytest.approx(
            top_k_precision(p, t, k=k, lower_is_better=False))


def test_rank_fidelity_reports_cis_ceiling_and_unavailable_proxies(rng):
    truth = np.linspace(0.5, 0.9, 8)
    runs = np.stack([truth + rng.normal(0, 0.01, 8), truth + rng.normal(0, 0.01, 8)], 1)
    report = rank_fidelity(standalone=runs, proxies={"good": truth, "reversed": -truth,
                                                     "missing": None},
                           reasons={"missing": "n/a: no stored predictor"}, top_k=2,
                           resamples=200, seed=0)
    good, bad = report["comparisons"]["good"], report["comparisons"]["reversed"]
    assert good["kendall_tau"] > 0.7 and bad["kendall_tau"] < -0.7
    low, high = good["kendall_tau_ci"]
    assert low <= good["kendall_tau"] <= high
    assert report["comparisons"]["missing"] == {"available": False,
                                                "reason": "n/a: no stored predictor"}
    assert report["noise_ceiling"]["available"] and report["noise_ceiling"]["seed_pairs"] == 1
    again = rank_fidelity(standalone=runs, proxies={"good": truth}, top_k=2, resamples=200,
                          seed=0)
    assert again["comparisons"]["good"] == good  # fixed bootstrap seed: same intervals
    one_seed = rank_fidelity(standalone=runs[:, :1], proxies={"good": truth}, top_k=2)
    assert not one_seed["noise_ceiling"]["available"]
    assert "seeds >= 2" in one_seed["noise_ceiling"]["reason"]
    with pytest.raises(ValueError, match="N >= 2"):
        rank_fidelity(standalone=runs[:1], proxies={}, top_k=1)


def test_selection_spreads_over_flops_and_takes_the_front():
    space = get_space("hybrid_vit_tiny", **TINY_OVERRIDES)
    rng = np.random.default_rng(0)
    candidates = [space.sample(rng) for _ in range(40)]
    front = candidates[:5]
    picked = select_archs(space=space, n=6, candidates=candidates, front=front, seed=1)
    assert len({p.arch.key() for p in picked}) == 6
    assert sum(p.stratum == "front" for p in picked) == 2
    strata = [p.stratum for p in picked if p.stratum != "front"]
    assert sorted(strata) == [f"flops {i}/4" for i in range(1, 5)]
    assert [p.flops for p in picked] == sorted(p.flops for p in picked)
    again = select_archs(space=space, n=6, candidates=candidates, front=front, seed=1)
    assert [p.arch.key() for p in again] == [p.arch.key() for p in picked]
    with pytest.raises(ValueError, match="at least 2 archs"):
        select_archs(space=space, n=1)


def test_recipe_scales_the_study_schedule():
    training = TrainConfig(steps=400, batch_size=64, lr=3e-3, warmup_steps=20)
    recipe = AuditConfig(budget=0.25).recipe(training)
    assert (recipe.steps, recipe.warmup_steps, recipe.batch_size, recipe.lr) == (100, 5, 64, 3e-3)
    assert AuditConfig().recipe(training, steps=7).steps == 7
    assert recipe.key() != AuditConfig().recipe(training).key()
    assert recipe.fidelity(1).endswith("seed=1") and recipe.key() in recipe.fidelity(1)
    with pytest.raises(ValueError, match="audit.budget"):
        AuditConfig(budget=0)


def test_standalone_model_is_the_exported_supernet_init_and_is_deterministic():
    space = get_space("hybrid_vit_tiny", **TINY_OVERRIDES)
    arch = space.sample(np.random.default_rng(2))
    torch.manual_seed(5)
    reference = export_subnet(Supernet(space), arch)
    model = initial_model(space, arch, seed=5)
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    recipe = StandaloneRecipe(steps=4, batch_size=16, lr=1e-3, weight_decay=0.05,
                              warmup_steps=1, min_lr_ratio=0.1, grad_clip=1.0)
    runs = [train_standalone(space=space, arch=arch, seed=s, recipe=recipe, train=(x, y),
                             test=(x[:32], y[:32])) for s in (0, 0, 1)]
    assert runs[0].test_loss == runs[1].test_loss
    assert runs[0].test_loss != runs[2].test_loss
    assert runs[0].steps == 4 and runs[0].arch_key == arch.key()


def test_recipe_carries_the_supernet_regularization_and_keeps_older_keys():
    plain = StandaloneRecipe(steps=100, batch_size=32, lr=1e-3, weight_decay=0.05,
                             warmup_steps=5, min_lr_ratio=0.1, grad_clip=1.0,
                             augment="translate", label_smoothing=0.1)
    # the key this recipe had before drop_path / dropout existed: stored stand-alone runs of
    # unregularized studies still match their recipe
    assert plain.key() == "4ac1693082" and not plain.regularized
    training = TrainConfig(steps=100, drop_path=0.1, dropout=0.2)
    recipe = StandaloneRecipe.from_training(training)
    assert (recipe.drop_path, recipe.dropout) == (0.1, 0.2) and recipe.regularized
    assert "drop_path 0.1, dropout 0.2" in recipe.describe()
    assert recipe.key() != StandaloneRecipe.from_training(TrainConfig(steps=100)).key()
    with pytest.raises(ValueError, match="recipe.dropout"):
        StandaloneRecipe(steps=4, batch_size=16, lr=1e-3, weight_decay=0.0, warmup_steps=1,
                         min_lr_ratio=0.1, grad_clip=1.0, dropout=1.0)


def test_regularized_standalone_run_is_reproducible_and_scores_its_export():
    space = get_space("hybrid_vit_tiny", **TINY_OVERRIDES)
    arch = space.sample(np.random.default_rng(3))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    # the eval-mode forward is the export's; the train-mode forward draws masks per call
    torch.manual_seed(1)
    net = Supernet(space)
    sub = RegularizedSubnet(net, arch, drop_path=0.3, dropout=0.3, seed=0)
    with torch.no_grad():
        exported = export_subnet(net, arch)(x[:8])
        assert torch.allclose(sub.eval()(x[:8]), exported, atol=1e-5)
        sub.train()
        first, second = sub(x[:8]), sub(x[:8])
        assert not torch.allclose(first, exported, atol=1e-3)
        assert not torch.allclose(first, second, atol=1e-3) and sub.calls == 2
    kwargs = dict(steps=4, batch_size=16, lr=1e-3, weight_decay=0.05, warmup_steps=1,
                  min_lr_ratio=0.1, grad_clip=1.0)
    regularized = StandaloneRecipe(**kwargs, drop_path=0.2, dropout=0.1)  # type: ignore[arg-type]
    runs = [train_standalone(space=space, arch=arch, seed=0, recipe=r, train=(x, y),
                             test=(x[:32], y[:32]))
            for r in (regularized, regularized, StandaloneRecipe(**kwargs))]  # type: ignore[arg-type]
    assert runs[0].test_loss == runs[1].test_loss  # same seed, same masks
    assert runs[0].test_loss != runs[2].test_loss  # the masks changed the training
    assert np.isfinite(runs[0].test_loss) and runs[0].steps == 4


# -- the study audit ----------------------------------------------------------------------


def test_audit_stores_rows_and_resumes_without_retraining(trained):
    _, _, url = trained
    trainings: list[tuple[str, int]] = []

    def interrupt(result):
        trainings.append((result.arch_key, result.seed))
        if len(trainings) == 3:
            raise KeyboardInterrupt("stopped by the test")

    with open_store(url) as store:
        ctx = context(trained, store)
        with pytest.raises(KeyboardInterrupt):
            run_audit(ctx, n=4, seeds=2, on_result=interrupt, progress=False)
        stage = stored_audit(store, ctx.name)
        assert stage.status == "failed" and "stopped by the test" in stage.detail["error"]
        rows = store.get_evaluations(study=ctx.name, source="standalone",
                                     metric="test_accuracy")
        assert sorted((r.arch_key, int(r.fidelity[-1])) for r in rows) == sorted(trainings)
        first_selection = stage.detail["selection"]

        resumed: list[tuple[str, int]] = []
        outcome = run_audit(ctx, n=4, seeds=2, progress=False,
                            on_result=lambda r: resumed.append((r.arch_key, r.seed)))
        assert outcome.trained_now == len(resumed) == 8 - 3
        assert not set(resumed) & set(trainings)
        assert outcome.reused == 3
        stage = stored_audit(store, ctx.name)
        assert stage.status == "done" and stage.detail["selection"] == first_selection
        rows = store.get_evaluations(study=ctx.name, source="standalone", split="test")
        assert len(rows) == 4 * 2 * 2  # 4 archs x 2 seeds x (accuracy, loss)
        assert {r.fidelity.split(" seed=")[0] for r in rows} == {
            f"standalone recipe={stage.detail['recipe_key']} steps=8 batch=32"}
        supernet = store.get_evaluations(study=ctx.name, source="supernet", split="test",
                                         metric="test_accuracy",
                                         checkpoint_sha256=ctx.checkpoint_sha())
        assert {r.arch_key for r in supernet} == {s["arch_key"] for s in first_selection}

        report = outcome.report
        assert report == stage.detail
        for proxy in ("supernet", "predictor", "flops"):
            entry = report["comparisons"][proxy]
            assert entry["available"], entry
            assert -1 <= entry["kendall_tau"] <= 1 and len(entry["kendall_tau_ci"]) == 2
            assert 0 <= entry["top_k_recall"] <= 1
        assert report["noise_ceiling"]["available"]
        assert [r["arch_key"] for r in report["rows"]] == [s["arch_key"] for s in first_selection]

        again = run_audit(ctx, n=4, seeds=2, progress=False)
        assert again.trained_now == 0 and again.reused == 8


def test_an_older_audits_selection_is_still_reused(trained):
    """Audits before 2026-12-03 stored the search run of their selection as ``front_run``
    (now ``run``) and its checkpoint as ``checkpoint`` (now ``checkpoint_sha256``): such an
    audit's selection is reused, nothing is selected or trained again."""
    _, _, url = trained
    with open_store(url) as store:
        ctx = context(trained, store)
        run_audit(ctx, n=4, seeds=2, progress=False)
        detail = dict(stored_audit(store, ctx.name).detail)
        params = dict(detail["selection_params"])
        assert params["run"] == "search" and "front_run" not in params
        params["front_run"] = params.pop("run")
        params["checkpoint"] = params.pop("checkpoint_sha256")
        store.put_stage_status(study=ctx.name, stage="audit", status="done",
                               detail={**detail, "selection_params": params})
        again = run_audit(ctx, n=4, seeds=2, progress=False)
        assert again.trained_now == 0 and again.reused == 8
        assert again.report["selection"] == detail["selection"]
        assert again.report["selection_params"]["run"] == "search"


def test_bad_inputs_get_one_clear_error_and_write_nothing(trained, tmp_path):
    _, _, url = trained
    with open_store(url) as store:
        ctx = context(trained, store)
        before = stored_audit(store, ctx.name)
        for kwargs, message in (({"n": 1, "seeds": 1}, "--n: expected an integer >= 2"),
                                ({"n": 3, "seeds": 0}, "--seeds: expected an integer >= 1"),
                                ({"n": 3, "seeds": 1, "workers": 0}, "--workers")):
            with pytest.raises(ValueError, match=message):
                run_audit(ctx, progress=False, **kwargs)
        assert stored_audit(store, ctx.name) == before
    fresh = write_study(tmp_path, name="untrained", steps=10, extra=AUDIT_FIELDS)
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        ctx = open_study(fresh, store=store, runs_root=tmp_path / "runs",
                         console=Console(quiet=True))
        with pytest.raises(ValueError, match="has no trained supernet .*nas run"):
            run_audit(ctx, n=3, seeds=1, progress=False)
        assert stored_audit(store, ctx.name) is None
        assert not store.get_evaluations(study="untrained")


def test_cli_prints_the_table_and_the_model_card_states_the_audit(trained, monkeypatch):
    from typer.testing import CliRunner

    from nas.cli import app
    from nas.export.study import export_study

    root, path, url = trained
    with open_store(url) as store:
        ctx = context(trained, store)
        if stored_audit(store, ctx.name) is None or stored_audit(
                store, ctx.name).status != "done":
            run_audit(ctx, n=4, seeds=2, progress=False)
        audited = stored_audit(store, ctx.name).detail["rows"][0]["arch_key"]
        card = export_study(ctx, arch_key=audited, out=root / "exported")
    assert card["audit"]["audited"] and card["audit"]["n_archs"] == 4
    assert card["audit"]["this_arch"]["standalone_test_accuracy"] > 0
    markdown = (root / "exported" / "model_card.md").read_text()
    assert "rank-fidelity audit: 4 archs x 2 seed(s)" in markdown
    runner = CliRunner()
    monkeypatch.chdir(root)  # the CLI finds the supernet under ./runs
    out = runner.invoke(app, ["audit", str(path), "--n", "4", "--seeds", "2", "--storage", url],
                        catch_exceptions=False, env={"COLUMNS": "160"})
    assert out.exit_code == 0, out.output
    assert "Kendall tau" in out.stdout and "noise ceiling" in out.stdout
    assert "0 stand-alone run(s) trained now, 8 found in the store" in out.stdout
    bad = runner.invoke(app, ["audit", str(path), "--n", "1", "--storage", url])
    assert bad.exit_code == 1 and bad.stderr.strip().splitlines() == [
        "error: --n: must be >= 2, got 1"]  # the CLI's own argument check, before any work
