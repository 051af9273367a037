"""`nas export`: pick a subnet from a study's stored front, export it, write its model card.

Choice: ``arch_key`` (any stored arch), else the most accurate front member within
``max_latency_ms``, else the best front member by ``objective`` (default: the knee).
The card lists every metric with its source (supernet = inherited weights, predictor,
standalone), the latency table used, the audit result (`nas audit`) and the study's reproducibility
record; the exported model is re-evaluated on the validation split and must reproduce
the stored inherited-weight accuracy. ``finetune_steps`` fine-tunes the exported model on
the training split, distilled from the supernet's largest subnet, and reports before/after.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nas.evaluation import evaluate_model, task_loss
from nas.export.model import export_subnet, save_subnet
from nas.latency.trust import LatencyTrust, latency_trust
from nas.study_context import StudyContext, latency_scorer
from nas.training.distillation import distillation_loss
from search_spaces import Arch


def choose_arch(ctx: StudyContext, *, run: str = "search", arch_key: str | None = None,
                max_latency_ms: float | None = None,
                objective: str | None = None) -> tuple[Arch, dict[str, Any]]:
    """The arch to export and its stored front objectives (empty if not on the front)."""
    store, name = ctx.store, ctx.name
    if arch_key is not None:
        records = store.get_archs(study=name, keys=[arch_key])
        if not records:
            raise ValueError(f"--arch {arch_key}: no such arch in study {name!r}")
        on_front = {r.arch_key: r.objectives for r in store.get_front(study=name, run=run)
                    } if any(r.name == run for r in store.list_search_runs(study=name)) else {}
        return Arch.from_json(records[0].arch_json), on_front.get(arch_key, {})
    if not any(r.name == run for r in store.list_search_runs(study=name)):
        raise ValueError(f"study {name!r} has no search run {run!r}: run `nas search` first")
    front = store.get_front(study=name, run=run)
    if not front:
        raise ValueError(f"search run {run!r} of {name!r} has an empty front")
    rows = front
    if max_latency_ms is not None:
        rows = [r for r in front if r.objectives.get("latency_ms", r.objectives.get(
            "latency", float("inf"))) <= max_latency_ms]
        if not rows:
            fastest = min(r.objectives.get("latency_ms", r.objectives.get("latency", 0))
                          for r in front)
            raise ValueError(f"no front member within {max_latency_ms} ms (fastest: "
                             f"{fastest:.4g} ms)")
        objective = objective or "accuracy"
    if objective is None:
        chosen = rows[_knee_index(ctx, run, rows)]
    else:
        maximise = objective in ("accuracy", "val_accuracy")
        key = next((k for k in (objective, f"val_{objective}") if k in rows[0].objectives), None)
        if key is None:
            raise ValueError(f"--objective {objective!r}: the front has "
                             f"{sorted(rows[0].objectives)}")
        chosen = (max if maximise else min)(rows, key=lambda r: r.objectives[key])
    record = store.get_archs(study=name, keys=[chosen.arch_key])[0]
    return Arch.from_json(record.arch_json), dict(chosen.objectives)


def _knee_index(ctx: StudyContext, run: str, rows: list) -> int:
    """Index of the knee of stored front rows, in the run's own objectives
    (`nas.search.session.knee_of_front`, the search's own knee)."""
    from nas.search.session import knee_of_front

    config = next(r.config for r in ctx.store.list_search_runs(study=ctx.name) if r.name == run)
    return knee_of_front([r.objectives for r in rows],
                         objectives=config.get("objectives", ("accuracy", "latency_ms")))


def _metrics_with_sources(ctx: StudyContext, arch: Arch) -> list[dict[str, Any]]:
    rows = []
    for e in ctx.store.get_evaluations(study=ctx.name, arch_keys=[arch.key()]):
        rows.append({"metric": e.metric, "value": e.value, "source": e.source,
                     "split": e.split, "fidelity": e.fidelity,
                     "checkpoint_sha256": e.checkpoint_sha256[:12]})
    return rows


def audited_checkpoint(report: dict[str, Any]) -> str | None:
    """The sha256 of the supernet checkpoint an audit report was made with: where
    `nas.audit.run_audit` records it (``selection_params.checkpoint_sha256``; reports before
    2026-12-03 wrote ``checkpoint``), else a top-level ``checkpoint_sha256`` / ``checkpoint``;
    None when the report records none."""
    from nas.audit.study_audit import selection_params

    params = selection_params(report) or {}  # older reports' names read as today's
    found = (params.get("checkpoint_sha256") or report.get("checkpoint_sha256")
             or report.get("checkpoint"))
    return found if isinstance(found, str) and found else None


def audit_card(ctx: StudyContext, arch: Arch) -> dict[str, Any]:
    """Whether the study was audited (`nas audit`) and with what result, plus this arch's
    stand-alone accuracy when it was among the audited archs."""
    from nas.audit.study_audit import stored_audit
    from nas.audit.table import headline

    stage = stored_audit(ctx.store, ctx.name)
    report = stage.detail if stage is not None and stage.status == "done" else None
    if not report or "comparisons" not in report:
        runs = ctx.store.get_evaluations(study=ctx.name, source="standalone",
                                         metric="test_accuracy")
        return {"audited": False, "status": "not run" if stage is None else stage.status,
                "standalone_runs": len(runs)}
    comparisons = report["comparisons"]
    row = next((r for r in report["rows"] if r["arch_key"] == arch.key()), None)
    ceiling = report["noise_ceiling"]
    checkpoint = audited_checkpoint(report)
    return {
        "audited": True, "finished_at": report.get("finished_at"),
        "n_archs": report["n_archs"], "seeds": report["seeds"], "recipe": report["recipe"],
        "checkpoint_sha256": checkpoint,
        "same_checkpoint": None if checkpoint is None else checkpoint == ctx.checkpoint_sha(),
        "summary": headline(report),
        "kendall_tau": {k: v.get("kendall_tau") for k, v in comparisons.items()},
        "kendall_tau_ci": {k: v.get("kendall_tau_ci") for k, v in comparisons.items()},
        "noise_ceiling_tau": ceiling.get("kendall_tau") if ceiling.get("available") else None,
        "this_arch": None if row is None else {
            "standalone_test_accuracy": row["standalone"],
            "standalone_seeds": row["standalone_seeds"],
            "supernet_test_accuracy": row["supernet"]},
    }


def finetune(model, teacher, x: torch.Tensor, y: torch.Tensor, *, steps: int,
             batch_size: int = 128, lr: float = 3e-4, seed: int = 0) -> None:
    """Fine-tune ``model`` for ``steps`` on (x, y): CE + KD from ``teacher`` logits."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (min(batch_size, x.shape[0]),), generator=g)
        xb, yb = x[idx], y[idx]
        with torch.no_grad():
            soft = teacher(xb)
        logits = model(xb)
        loss = 0.5 * task_loss(logits, yb) + 0.5 * distillation_loss(logits, soft)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()


def export_study(ctx: StudyContext, *, arch_key: str | None = None,
                 max_latency_ms: float | None = None, objective: str | None = None,
                 out: str | Path | None = None, finetune_steps: int = 0,
                 run: str = "search") -> dict[str, Any]:
    arch, front_row = choose_arch(ctx, run=run, arch_key=arch_key,
                                  max_latency_ms=max_latency_ms, objective=objective)
    space, data, net = ctx.space(), ctx.data(), ctx.supernet()
    net = net.cpu()
    model = export_subnet(net, arch)
    stored = {(e.metric, e.source): e.value for e in ctx.store.get_evaluations(
        study=ctx.name, arch_keys=[arch.key()],
        checkpoint_sha256=ctx.checkpoint_sha())}
    measured = evaluate_model(model, data.val.x, data.val.y, batch_size=512)
    stored_acc = stored.get(("val_accuracy", "supernet"))
    reproduces = None if stored_acc is None else abs(stored_acc - measured.accuracy) < 1e-6
    card: dict[str, Any] = {
        "study": ctx.name, "arch_key": arch.key(), "label": arch.label(),
        "arch": json.loads(arch.to_json()), "flops": space.flops(arch),
        "params": space.params(arch), "front_objectives": front_row,
        "metrics": _metrics_with_sources(ctx, arch),
        "exported_model": {"val_loss": measured.loss, "val_accuracy": measured.accuracy,
                           "source": "supernet (inherited weights), re-measured on export",
                           "reproduces_stored_accuracy": reproduces},
    }
    latency = latency_scorer(ctx)
    if latency is not None:
        table, scorer = latency
        fp = table.fingerprint
        card["latency"] = {"predicted_ms": float(scorer.predict(arch)), "table": fp.id,
                           "device": fp.device_name, "mode": fp.mode,
                           "batch_size": fp.batch_size, "dtype": fp.dtype,
                           "validation": (table.validation or {}).get("calibrated"),
                           "repeat_ceiling": (table.validation or {}).get("repeat"),
                           "trust": latency_trust(table.validation).to_dict()}
    card["audit"] = audit_card(ctx, arch)
    study = ctx.store.get_study(name=ctx.name)
    assert study is not None  # the context was opened on this study
    card["reproducibility"] = {"study_file": study.study_path, "study_hash": study.study_hash,
                               "package_versions": study.package_versions,
                               "git_commit": study.git_commit, "seeds": study.seeds,
                               "checkpoint_sha256": ctx.checkpoint_sha()}
    if finetune_steps > 0:
        largest = space.largest()
        teacher = lambda xb: net(xb, largest)  # noqa: E731
        finetune(model, teacher, data.train.x, data.train.y, steps=finetune_steps,
                 seed=ctx.study.seed)
        after = evaluate_model(model, data.val.x, data.val.y, batch_size=512)
        card["finetune"] = {"steps": finetune_steps, "before": measured.to_dict(),
                            "after": after.to_dict(), "source": "standalone fine-tune"}
    out = Path(out) if out else ctx.run_dir / "export" / arch.key()
    files = save_subnet(model, arch, out)
    (out / "model_card.json").write_text(json.dumps(card, indent=1, default=str) + "\n")
    (out / "model_card.md").write_text(model_card_markdown(card))
    card["files"] = sorted([*files, "model_card.json", "model_card.md"])
    card["out"] = str(out)
    return card


def model_card_markdown(card: dict[str, Any]) -> str:
    lines = [f"# {card['study']}: {card['arch_key']}", "", f"`{card['label']}`", "",
             f"- FLOPs per sample: {card['flops']:,}", f"- parameters: {card['params']:,}"]
    exp = card["exported_model"]
    lines.append(f"- validation accuracy of the exported model: {100 * exp['val_accuracy']:.2f} % "
                 f"(loss {exp['val_loss']:.4f}; {exp['source']}; reproduces the stored value: "
                 f"{exp['reproduces_stored_accuracy']})")
    if "latency" in card:
        lat = card["latency"]
        lines.append(f"- predicted latency: {lat['predicted_ms']:.4g} ms on {lat['device']} "
                     f"({lat['mode']}, batch {lat['batch_size']}, {lat['dtype']}; table "
                     f"{lat['table']})")
        if "trust" in lat:
            lines.append(f"- {LatencyTrust.from_dict(lat['trust']).summary()}")
    if "finetune" in card:
        ft = card["finetune"]
        before, after = ft["before"]["accuracy"], ft["after"]["accuracy"]
        lines.append(f"- fine-tuned {ft['steps']} steps: val accuracy {100 * before:.2f} % -> "
                     f"{100 * after:.2f} %")
    audit = card["audit"]
    if audit["audited"]:
        text = f"- rank-fidelity audit: {audit['summary']}"
        if audit["same_checkpoint"] is None:
            text += " (the audit did not record its supernet checkpoint)"
        elif not audit["same_checkpoint"]:
            text += (f" (audited with another supernet checkpoint, sha256 "
                     f"{audit['checkpoint_sha256'][:12]})")
        if audit["this_arch"] is not None:
            text += (f"; this arch trained stand-alone: "
                     f"{100 * audit['this_arch']['standalone_test_accuracy']:.2f} % test accuracy")
        lines.append(text)
    else:
        lines.append(f"- rank-fidelity audit: not audited (audit stage: {audit['status']}; "
                     "run `nas audit STUDY`)")
    lines += ["", "## Metrics and their sources", "", "| metric | value | source | fidelity |",
              "|---|---|---|---|"]
    lines += [f"| {m['metric']} | {m['value']:.4g} | {m['source']} | {m['fidelity']} |"
              for m in card["metrics"]]
    rep = card["reproducibility"]
    lines += ["", "## Reproducibility", "", f"- study file: {rep['study_file']} "
              f"(sha256 {rep['study_hash']})", f"- git commit: {rep['git_commit']}",
              f"- seeds: {rep['seeds']}", f"- packages: {rep['package_versions']}",
              f"- supernet checkpoint sha256: {rep['checkpoint_sha256']}", ""]
    return "\n".join(lines)


def front_table_rows(ctx: StudyContext, run: str = "search") -> list[dict[str, Any]]:
    """The stored front as plain rows (for printing)."""
    rows = ctx.store.get_front(study=ctx.name, run=run)
    return [{"rank": r.rank, "arch": r.arch_key, **r.objectives} for r in rows]


__all__ = ["audit_card", "audited_checkpoint", "choose_arch", "export_study", "finetune",
           "model_card_markdown"]
