"""The audit report as rows people read: the CLI table, the app and the model card."""

from __future__ import annotations

from typing import Any

COLUMNS = ("kendall_tau", "spearman_rho", "top_k_recall")
HEADERS = {"kendall_tau": "Kendall tau", "spearman_rho": "Spearman rho",
           "top_k_recall": "top-k recall"}


def _cell(entry: dict[str, Any], metric: str) -> str:
    value, ci = entry.get(metric), entry.get(f"{metric}_ci")
    if value is None:
        return "-"
    return f"{value:+.3f} [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else f"{value:+.3f}"


def audit_summary(report: dict[str, Any]) -> list[dict[str, str]]:
    """One row per proxy and one for the noise ceiling: ``{"against stand-alone": name,
    "Kendall tau": "+0.712 [+0.40, +0.90]", ...}``, or the reason it is n/a."""
    names = report.get("proxies", {})
    rows = []
    entries = [(names.get(k, k), v) for k, v in report["comparisons"].items()]
    entries.append(("seed-to-seed (noise ceiling)", report["noise_ceiling"]))
    for name, entry in entries:
        row = {"against stand-alone": name}
        if not entry.get("available"):
            row.update({HEADERS[m]: entry.get("reason", "n/a") if m == "kendall_tau" else ""
                        for m in COLUMNS})
        else:
            row.update({HEADERS[m]: _cell(entry, m) for m in COLUMNS})
        rows.append(row)
    return rows


def headline(report: dict[str, Any]) -> str:
    """One line: the supernet's tau against stand-alone training, the floor and ceiling."""
    sup = report["comparisons"]["supernet"]
    flops = report["comparisons"]["flops"]
    ceiling = report["noise_ceiling"]
    text = (f"{report['n_archs']} archs x {report['seeds']} seed(s): Kendall tau supernet vs "
            f"stand-alone {sup['kendall_tau']:+.3f} [{sup['kendall_tau_ci'][0]:+.2f}, "
            f"{sup['kendall_tau_ci'][1]:+.2f}], FLOPs alone {flops['kendall_tau']:+.3f}")
    pred = report["comparisons"].get("predictor", {})
    if pred.get("available"):
        text += f", predictor {pred['kendall_tau']:+.3f}"
    text += (f", noise ceiling {ceiling['kendall_tau']:+.3f}" if ceiling.get("available")
             else ", noise ceiling n/a (1 seed)")
    return text


def print_audit(report: dict[str, Any], *, console=None) -> None:
    """Print the comparison table, the per-arch rows and the largest disagreements."""
    from rich.console import Console
    from rich.table import Table

    if console is None or console.width < 120:  # the tables need the width
        console = Console(width=max(120, Console().width))
    bs = report["bootstrap"]
    recipe = report["recipe"]
    table = Table(title=f"rank fidelity of {report['study']}: {report['n_archs']} archs x "
                        f"{report['seeds']} seed(s), top-k = {report['top_k']}, "
                        f"{100 * bs['level']:.0f} % bootstrap intervals ({bs['resamples']} "
                        f"resamples, seed {bs['seed']})")
    table.add_column("against stand-alone")
    for m in COLUMNS:
        table.add_column(HEADERS[m], justify="right")
    for row in audit_summary(report):
        table.add_row(*row.values())
    console.print(table)
    loss = report.get("metric") == "test_loss"  # sequence studies rank by the test loss

    def fmt(v: float) -> str:
        return f"{v:.4f}" if loss else f"{100 * v:.2f}"

    archs = Table(title=f"audited archs (stand-alone: {recipe['steps']} steps x batch "
                        f"{recipe['batch_size']}, "
                        f"{'test loss, nats / token' if loss else 'test accuracy %'})")
    for col in ("arch", "stratum", "MFLOPs", "stand-alone", "seeds", "supernet", "predictor"):
        archs.add_column(col, justify="left" if col in ("arch", "stratum") else "right")
    for r in report["rows"]:
        archs.add_row(r["arch_key"], r["stratum"], f"{r['flops'] / 1e6:.2f}",
                      fmt(r["standalone"]), " ".join(fmt(v) for v in r["standalone_seeds"]),
                      fmt(r["supernet"]),
                      "-" if r["predictor"] is None else f"{-r['predictor']:.4f} (loss)")
    console.print(archs)
    if report.get("mean_gap_inherited_vs_standalone") is not None:
        gap = report["mean_gap_inherited_vs_standalone"]
        console.print("mean gap, inherited vs stand-alone (> 0: inherited worse): "
                      + (f"{gap:+.4f} nats" if loss else f"{100 * gap:+.2f} points"))
    worst = report.get("disagreements", {}).get("supernet", [])[:3]
    if worst:
        console.print("largest supernet disagreements (stand-alone rank -> supernet rank): "
                      + ", ".join(f"{d['arch_key']} {d['standalone_rank']} -> "
                                  f"{d['proxy_rank']}" for d in worst))
    console.print(headline(report))
