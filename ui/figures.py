"""Plotly figures of the app, built from plain frames and rows (no Streamlit, no store).

The Pareto scatter puts every point of one kind in one trace (``archs`` and ``front``;
baselines get their own), with one arch key per point in ``customdata``, so a selection
event names the arch and a test can count the points of a trace.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ui.arch_metrics import MAXIMISED, OBJECTIVES, pareto_mask

MIXER_COLOURS = {"attention": "#e4572e", "glu_mlp": "#4c9f70", "ssm": "#8e5ac8",
                 "conv": "#2e86de", "stem": "#6c757d", "downsample": "#8d949b",
                 "head": "#6c757d"}
ROLE_COLOURS = {"largest": "#d62728", "smallest": "#1f77b4", "random": "#7f7f7f"}
DIM_OPACITY = 0.18


def axis_title(name: str) -> str:
    return OBJECTIVES.get(name, name)


def _hover(df: pd.DataFrame) -> list[str]:
    """Arch label and every objective with where it came from, one line each."""
    lines = []
    for _, row in df.iterrows():
        text = [f"<b>{row['label']}</b>", f"key {row['key']}"]
        for name in OBJECTIVES:
            value = row.get(name)
            if value is None or not math.isfinite(value):
                continue
            shown = f"{value:.4f}" if name in ("accuracy", "loss") else (
                f"{value:.3f}" if name == "latency_ms" else f"{value:,.0f}")
            text.append(f"{axis_title(name)}: {shown} ({row.get(f'{name}_source', '')})")
        lines.append("<br>".join(text))
    return lines


def pareto_figure(df: pd.DataFrame, *, x: str, y: str, budget_ms: float | None = None,
                  stored_front: bool = False, selected: str | None = None,
                  baselines: Mapping[str, pd.DataFrame] | None = None,
                  knee: str | None = None, exported: str | None = None,
                  log_x: bool = False, overlays: Mapping[str, pd.DataFrame] | None = None,
                  axis_titles: Mapping[str, str] | None = None,
                  title: str = "") -> go.Figure:
    """Scatter of objectives ``x`` against ``y``; the front drawn as a connected line.

    With ``stored_front`` the front is the ``on_front`` rows (a search run's front);
    otherwise the non-dominated points of what is shown. Points whose ``latency_ms``
    exceeds ``budget_ms`` are dimmed; ``selected`` (an arch key) gets a black ring.
    ``knee`` and ``exported`` (arch keys) get their own marker traces (``knee``,
    ``exported``) where they are plotted. ``overlays`` maps a latency table's label to the
    same archs' points with latency from that table: each is drawn as its front (trace
    ``front: <label>``) with its own knee (``knee: <label>``). ``log_x`` makes the x axis
    logarithmic (always for FLOPs and params). ``axis_titles`` override the axis titles
    (to name the source of a measured objective).
    """
    shown = df[np.isfinite(df[x].astype(float)) & np.isfinite(df[y].astype(float))].copy()
    if stored_front:
        on_front = shown["on_front"].to_numpy(dtype=bool)
    else:
        on_front = pareto_mask(shown[x], shown[y], maximise_x=x in MAXIMISED,
                               maximise_y=y in MAXIMISED) if len(shown) else np.zeros(0, bool)
    latency = shown["latency_ms"].astype(float).to_numpy()
    dimmed = (np.zeros(len(shown), bool) if budget_ms is None
              else np.nan_to_num(latency, nan=-math.inf) > budget_ms)
    shown["_dimmed"] = dimmed
    fig = go.Figure()
    for name, mask, colour, symbol in (("archs", ~on_front, "#5b8def", "circle"),
                                       ("front", on_front, "#e4572e", "diamond")):
        part = shown[mask].sort_values(x, kind="stable")
        part_dim = part["_dimmed"].to_numpy(dtype=bool)
        ring = [2.5 if k == selected else 0.5 for k in part["key"]]
        fig.add_trace(go.Scatter(
            x=part[x].tolist(), y=part[y].tolist(), name=name if name == "archs" else
            ("stored front" if stored_front else "non-dominated"),
            mode="lines+markers" if name == "front" else "markers",
            line=dict(color=colour, width=1.5), customdata=part["key"].tolist(),
            marker=dict(color=colour, symbol=symbol, size=11 if name == "front" else 8,
                        opacity=[DIM_OPACITY if d else 0.95 for d in part_dim],
                        line=dict(color="#111111", width=ring)),
            hovertext=_hover(part), hoverinfo="text", uid=name))
    palette = ("#2a9d8f", "#8e5ac8", "#f4a261", "#6c757d")
    for i, (label, points) in enumerate((overlays or {}).items()):
        other = points[np.isfinite(points[x].astype(float))
                       & np.isfinite(points[y].astype(float))]
        if other.empty:
            continue
        mask = pareto_mask(other[x], other[y], maximise_x=x in MAXIMISED,
                           maximise_y=y in MAXIMISED)
        part = other[mask].sort_values(x, kind="stable")
        colour = palette[i % len(palette)]
        fig.add_trace(go.Scatter(
            x=part[x].tolist(), y=part[y].tolist(), name=f"front: {label}",
            mode="lines+markers", line=dict(color=colour, width=1.5, dash="dash"),
            marker=dict(color=colour, size=8, symbol="diamond-open"),
            customdata=part["key"].tolist(), hovertext=_hover(part), hoverinfo="text"))
        knee_of_overlay = front_knee_2d(part, x=x, y=y)
        if knee_of_overlay is not None:
            _marker_trace(fig, part, knee_of_overlay, x=x, y=y, name=f"knee: {label}",
                          symbol="star-open", colour=colour)
    if knee is not None:
        _marker_trace(fig, shown, knee, x=x, y=y, name="knee", symbol="star",
                      colour="#f9c74f")
    if exported is not None:
        _marker_trace(fig, shown, exported, x=x, y=y, name="exported",
                      symbol="square-open", colour="#111111")
    for method, points in (baselines or {}).items():
        if x in points and y in points:
            ordered = points.sort_values(x)
            fig.add_trace(go.Scatter(x=ordered[x], y=ordered[y], mode="lines+markers",
                                     name=f"baseline: {method}", line=dict(dash="dot"),
                                     marker=dict(size=6), opacity=0.7,
                                     hovertemplate=f"{method}<extra></extra>"))
    if budget_ms is not None and x == "latency_ms":
        # the label sits at the bottom: the toolbar lives at the top right of the plot
        fig.add_vline(x=budget_ms, line=dict(color="#888888", dash="dash"),
                      annotation_text=f"budget {budget_ms:.3g} ms",
                      annotation_position="bottom left")
    titles = dict(axis_titles or {})
    fig.update_layout(title=title or None, xaxis_title=titles.get(x, axis_title(x)),
                      yaxis_title=titles.get(y, axis_title(y)), height=480,
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0))
    if x in ("flops", "params") or log_x:
        fig.update_xaxes(type="log")
    return fig


def front_knee_2d(front: pd.DataFrame, *, x: str, y: str) -> str | None:
    """Arch key of the knee (`nas.search.pareto.knee_point`) of the 2-D front ``front``
    in objectives ``x`` and ``y``; None when it is empty."""
    from nas.search.pareto import knee_point

    part = front[np.isfinite(front[x].astype(float)) & np.isfinite(front[y].astype(float))]
    if part.empty:
        return None
    sign = np.array([-1.0 if c in MAXIMISED else 1.0 for c in (x, y)])
    values = part[[x, y]].to_numpy(dtype=float) * sign
    return str(part["key"].iloc[knee_point(values)])


def _marker_trace(fig: go.Figure, points: pd.DataFrame, key: str, *, x: str, y: str,
                  name: str, symbol: str, colour: str) -> None:
    """A one-point trace over arch ``key`` (if it is among ``points``)."""
    row = points[points["key"] == key]
    if row.empty:
        return
    fig.add_trace(go.Scatter(
        x=row[x].tolist(), y=row[y].tolist(), name=name, mode="markers",
        customdata=row["key"].tolist(), hovertext=[f"{name}<br>" + h for h in _hover(row)],
        hoverinfo="text", marker=dict(symbol=symbol, size=20, color=colour,
                                      line=dict(color="#111111", width=1.5))))


def arch_diagram(rows: Sequence[Mapping[str, Any]], *, title: str = "",
                 max_dim: int | None = None) -> go.Figure:
    """The layers of one arch left to right, one box per layer coloured by mixer, its
    height proportional to the width; stage headers give width and tokens."""
    fig = go.Figure()
    top = max_dim or max(int(r["dim"] or 1) for r in rows)
    xs, ys, hover = [], [], []
    for i, r in enumerate(rows):
        h = 0.25 + 0.75 * (int(r["dim"] or 1) / top)
        colour = MIXER_COLOURS.get(r["mixer"], "#999999")
        fig.add_shape(type="rect", x0=i + 0.06, x1=i + 0.94, y0=-h / 2, y1=h / 2,
                      fillcolor=colour, line=dict(color="#333333", width=1), opacity=0.9)
        short = {"glu_mlp": "GLU", "attention": "Attn", "ssm": "SSM", "conv": "Conv",
                 "downsample": "Down", "stem": "Stem", "head": "Head"}.get(r["mixer"], r["mixer"])
        fig.add_annotation(x=i + 0.5, y=0, text=short, showarrow=False,
                           font=dict(color="white", size=11))
        xs.append(i + 0.5)
        ys.append(0)
        latency = r.get("median_ms", math.nan)
        hover.append("<br>".join([
            f"<b>{r['index']}. {r['mixer']}</b> ({r['part']})", str(r["detail"]),
            f"width {r['dim']}, tokens {r['tokens']}" + (f" ({r['grid']})" if r["grid"] else ""),
            f"FLOPs {r['flops']:,}", f"params {r['params']:,}",
            f"latency {latency:.4f} ms" if math.isfinite(latency) else "latency: not in table"]))
    parts: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r["part"].startswith("stage"):
            parts.setdefault(r["part"], []).append(i)
    for part, idx in parts.items():
        r = rows[idx[0]]
        grid = f" ({r['grid']})" if r["grid"] else ""
        fig.add_annotation(x=(idx[0] + idx[-1] + 1) / 2, y=0.62, showarrow=False,
                           text=f"{part}: width {r['dim']}, {r['tokens']} tokens{grid}",
                           font=dict(size=11))
        fig.add_shape(type="line", x0=idx[0] + 0.06, x1=idx[-1] + 0.94, y0=0.55, y1=0.55,
                      line=dict(color="#666666", width=1))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", marker=dict(size=18, opacity=0),
                             hovertext=hover, hoverinfo="text", showlegend=False))
    for mixer in dict.fromkeys(r["mixer"] for r in rows):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=mixer,
                                 marker=dict(color=MIXER_COLOURS.get(mixer, "#999999"),
                                             size=10, symbol="square")))
    fig.update_xaxes(visible=False, range=[-0.1, len(rows) + 0.1])
    fig.update_yaxes(visible=False, range=[-0.6, 0.75])
    fig.update_layout(title=title or None, height=230, plot_bgcolor="white",
                      margin=dict(l=5, r=5, t=35 if title else 5, b=5),
                      legend=dict(orientation="h", y=-0.05, yanchor="top", x=0))
    return fig


def layer_latency_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Per-layer latency bars (median, with half the spread either side, never below 0 ms),
    coloured by mixer."""
    labels = [f"{r['index']}. {r['mixer']}" for r in rows]
    medians = [r["median_ms"] for r in rows]
    half = [r["spread_ms"] / 2 for r in rows]
    below = [min(h, m) if math.isfinite(h) and math.isfinite(m) else h
             for h, m in zip(half, medians)]  # a latency is never negative
    fig = go.Figure(go.Bar(
        x=labels, y=medians,
        error_y=dict(type="data", array=half, arrayminus=below, visible=True),
        marker_color=[MIXER_COLOURS.get(r["mixer"], "#999999") for r in rows],
        hovertext=[f"{r['part']}: {r['detail']}" for r in rows]))
    fig.update_layout(yaxis_title="median latency (ms)", height=300,
                      margin=dict(l=10, r=10, t=10, b=10))
    fig.update_yaxes(rangemode="nonnegative")
    return fig


LOSS_KINDS = {"largest": "largest subnet: cross-entropy on the labels",
              "other": "other subnets: distillation loss against the largest's logits"}


def training_loss_figure(train: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Each sampled subnet's loss per step, in two labelled panels: the largest subnet's
    cross-entropy on the labels (top) and the other subnets' distillation loss from the
    largest's logits (bottom; another quantity, so another axis)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=(LOSS_KINDS["largest"], LOSS_KINDS["other"]))
    by_role: dict[str, tuple[list[int], list[float]]] = {}
    for p in train:
        for arch, loss in zip(p.get("archs") or [], p.get("losses") or []):
            xs, ys = by_role.setdefault(str(arch.get("role")), ([], []))
            xs.append(p["step"])
            ys.append(loss)
    for role, (xs, ys) in by_role.items():
        largest = role == "largest"
        kind = "cross-entropy" if largest else "distillation"
        fig.add_trace(go.Scatter(x=xs, y=ys, name=f"{role} subnet ({kind})", mode="lines",
                                 line=dict(width=1.5 if largest else 1,
                                           color=ROLE_COLOURS.get(role)), opacity=0.85),
                      row=1 if largest else 2, col=1)
    fig.update_yaxes(title_text="cross-entropy", row=1, col=1)
    fig.update_yaxes(title_text="distillation loss", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(height=460, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def sampled_flops_figure(train: Sequence[Mapping[str, Any]]) -> go.Figure:
    """FLOPs of every sampled subnet over the steps, by role (the complexity-aware walk)."""
    by_role: dict[str, tuple[list[int], list[float], list[str]]] = {}
    for p in train:
        for arch in p.get("archs") or []:
            xs, ys, text = by_role.setdefault(str(arch.get("role")), ([], [], []))
            xs.append(p["step"])
            ys.append(arch.get("flops"))
            text.append(f"{arch.get('key')} bin {arch.get('bin')}")
    fig = go.Figure([go.Scatter(x=xs, y=ys, name=role, hovertext=text, mode="markers+lines"
                                if role == "random" else "markers",
                                marker=dict(size=5, color=ROLE_COLOURS.get(role)),
                                line=dict(width=0.7))
                     for role, (xs, ys, text) in by_role.items()])
    fig.update_layout(xaxis_title="step", yaxis_title="FLOPs of the sampled subnet", height=320,
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


def panel_figure(val: Sequence[Mapping[str, Any]], *, metric: str = "accuracy") -> go.Figure:
    """The fixed validation panel's accuracy (or loss) over steps, one line per member."""
    lines: dict[str, tuple[list[int], list[float]]] = {}
    for p in val:
        for member in p.get("panel") or []:
            name = f"{member.get('role')} ({member.get('flops', 0):,} FLOPs)"
            xs, ys = lines.setdefault(name, ([], []))
            xs.append(p["step"])
            ys.append(member.get(metric))
    fig = go.Figure([go.Scatter(x=xs, y=ys, name=name, mode="lines+markers")
                     for name, (xs, ys) in lines.items()])
    fig.update_layout(xaxis_title="step", yaxis_title=f"validation {metric}", height=340,
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


def latency_heatmap(entries: pd.DataFrame, *, mixer: str) -> go.Figure:
    """Median latency of one mixer over width x tokens (the fastest variant of each cell's
    knob in the colour; every variant in the hover)."""
    rows = entries[entries["mixer"] == mixer]
    dims = sorted({int(d) for d in rows["dim"]})
    tokens = sorted({int(t) for t in rows["tokens"]})
    z = np.full((len(tokens), len(dims)), np.nan)
    text = [["" for _ in dims] for _ in tokens]
    for (t, d), cell in rows.groupby(["tokens", "dim"]):
        i, j = tokens.index(int(t)), dims.index(int(d))
        z[i, j] = cell["median_ms"].min()
        text[i][j] = "<br>".join(f"{r.detail}: {r.median_ms:.4f} ms" for r in
                                 cell.sort_values("median_ms").itertuples())
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(d) for d in dims], y=[str(t) for t in tokens], text=text,
        hovertemplate="width %{x}, tokens %{y}<br>%{text}<extra></extra>",
        colorscale="Viridis", colorbar=dict(title="ms")))
    fig.update_layout(title=mixer, xaxis_title="width", yaxis_title="tokens", height=320,
                      margin=dict(l=10, r=10, t=40, b=10))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def predicted_vs_true_figure(pred: Sequence[float], true: Sequence[float],
                             labels: Sequence[str], *, metric: str) -> go.Figure:
    """Predicted against measured values with the identity line."""
    lo = float(min(min(pred), min(true)))
    hi = float(max(max(pred), max(true)))
    fig = go.Figure([
        go.Scatter(x=list(true), y=list(pred), mode="markers", hovertext=list(labels),
                   name="archs", marker=dict(size=8, color="#5b8def")),
        go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                   line=dict(color="#888888", dash="dash"))])
    fig.update_layout(xaxis_title=f"measured {metric}", yaxis_title=f"predicted {metric}",
                      height=420, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def audit_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Stand-alone test accuracy (x, with the spread over seeds) against the supernet's
    inherited-weight test accuracy (y) of each audited arch (rows of an audit report)."""
    x = [100 * r["standalone"] for r in rows]
    y = [100 * r["supernet"] for r in rows]
    low = [100 * (r["standalone"] - min(r["standalone_seeds"])) for r in rows]
    high = [100 * (max(r["standalone_seeds"]) - r["standalone"]) for r in rows]
    fig = go.Figure([go.Scatter(
        x=x, y=y, mode="markers", name="audited archs",
        error_x=dict(type="data", array=high, arrayminus=low, visible=True),
        customdata=[r["arch_key"] for r in rows],
        hovertext=[f"{r['arch_key']} {r['label']}<br>{r['stratum']}, "
                   f"{r['flops'] / 1e6:.2f} MFLOPs" for r in rows],
        marker=dict(size=9, color=[r["flops"] for r in rows], colorscale="Viridis",
                    colorbar=dict(title="FLOPs")))])
    fig.update_layout(xaxis_title="stand-alone test accuracy % (mean, min-max over seeds)",
                      yaxis_title="supernet (inherited weights) test accuracy %",
                      height=420, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def hypervolume_figure(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], *,
                       title: str = "") -> go.Figure:
    """Hypervolume (normalised) against the number of archs evaluated, one line per run or
    baseline method (``name -> (evaluations, hypervolume)``)."""
    fig = go.Figure()
    for name, (xs, ys) in curves.items():
        baseline = name.startswith("baseline")
        fig.add_trace(go.Scatter(x=list(xs), y=list(ys), name=name, mode="lines",
                                 line=dict(width=1.2 if baseline else 2.5,
                                           dash="dot" if baseline else "solid"),
                                 line_shape="hv"))
    fig.update_layout(title=title or None, xaxis_title="archs evaluated",
                      yaxis_title="hypervolume (normalised objectives)", height=360,
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0))
    return fig


def parallel_figure(frame: pd.DataFrame, *, choices: Sequence[str],
                    objectives: Sequence[str], colour: str,
                    labels: Mapping[str, str] | None = None) -> go.Figure:
    """Parallel coordinates: one line per arch through its choices (``choices`` columns)
    and its objectives, coloured by ``colour``."""
    labels = dict(labels or {})
    dims = []
    for c in [*choices, *objectives]:
        values = frame[c].astype(float)
        dims.append(dict(label=labels.get(c, c), values=values.tolist()))
    fig = go.Figure(go.Parcoords(
        line=dict(color=frame[colour].astype(float).tolist(), colorscale="Viridis",
                  showscale=True, colorbar=dict(title=labels.get(colour, colour))),
        dimensions=dims))
    fig.update_layout(height=420, margin=dict(l=60, r=40, t=50, b=20))
    return fig
