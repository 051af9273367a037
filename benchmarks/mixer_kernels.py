"""Benchmark `mixer_kernels`: every token-mixer layer, forward and forward+backward, per shape.

Layers are the project's own deployment layers (`kernels.build_layer`), in bf16 on the GPU:
attention (SDPA), glu_mlp, conv, and the SSM three times: on its default path (the Triton SSD
kernels on CUDA, whose backward computes each chunk's gradients in two kernels), on that path
with the older fused backward (``NAS_SSM_TRITON_BWD=fused``: one chunk kernel instead of two,
`kernels.ssm.triton_ssd._bwd_kind`) and with the pure-torch chunked
reference forced (`use_reference_scan`). Shapes: issue
#18's (d = 768, head 64, state 64 at 8 x 1,024, 1 x 8,192 and 4 x 2,048 tokens; 64 x 256 at d =
384) and the built-in spaces' (each stage of each space's largest subnet, every mixer at that
stage's width and tokens with the space's knobs, batch 64). Per shape, the variants are timed
interleaved in the same run: warm-up, then rounds of one sample each (synchronize, CUDA events
around one call, synchronize); the median over rounds is reported. On CUDA every call is also
captured in a CUDA graph and timed by replay (``*_graph`` columns): the GPU time of the layer's
kernels without the host's per-launch cost, which the single eager calls of layers this small
are dominated by (the 2026-12-03 run timed an eager conv layer of 8,192 x 768 tokens at
0.40 ms, close to the GLU-MLP's 0.49 ms with 12x its FLOPs).

``metrics``: ``ssm_vs_attention_fwdbwd_2048`` (4 x 2,048), ``ssm_vs_attention_fwdbwd_8192``
(1 x 8,192), ``ssm_vs_attention_fwd_1024`` (8 x 1,024): SSM (Triton path) / attention time in
CUDA-graph replay (issue #18's goals: <= 1, <= 0.5, <= 1.5); the same ratios of single eager
calls under ``*_eager``; ``ssm_fused_vs_attention_*`` and ``ssm_reference_vs_attention_*``
the same ratios of the other two SSM paths. ``raw.rows``: the whole table.
Needs torch only (no Ray / Optuna / SQLAlchemy); about a minute on an H200.

On CUDA it also draws ``docs/mixer_kernels.png`` (the CUDA-graph times of the issue's shapes,
every mixer side by side, the goals marked); ``--figure-from`` redraws it from a result file.

    python benchmarks/mixer_kernels.py --device cuda
    python benchmarks/mixer_kernels.py --smoke            # tiny shapes on CPU, seconds
    python benchmarks/mixer_kernels.py --figure-from benchmarks/results/mixer_kernels.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

# the benchmark measures the Triton scan (kernels.ssm.scan's default on CUDA): a
# NAS_SSM_TRITON=0 left in the shell must not turn it off here
os.environ["NAS_SSM_TRITON"] = "1"

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_io import RESULTS, device_name, write_result  # noqa: E402

from kernels import MixerSpec, build_layer  # noqa: E402
from kernels.ssm import use_reference_scan, uses_triton_scan  # noqa: E402
from kernels.ssm.triton_ssd import BWD_ENV  # noqa: E402

FIGURE = ROOT / "docs" / "mixer_kernels.png"
#: issue #18's goals, SSM / attention in CUDA-graph replay: (shape name, mode) -> ratio
GOALS = {("issue 8x1024", "fwd_graph"): 1.5, ("issue 4x2048", "fwdbwd_graph"): 1.0,
         ("issue 1x8192", "fwdbwd_graph"): 0.5}
VARIANTS = ("attention", "glu_mlp", "conv", "ssm", "ssm_fused", "ssm_reference")
#: timed modes: single eager calls (host launch cost included), and on CUDA the same calls
#: replayed from a CUDA graph (GPU time alone, as the GPU latency tables measure layers)
MODES = ("fwd", "fwdbwd", "fwd_graph", "fwdbwd_graph")


@dataclass(frozen=True)
class Shape:
    """One row group: ``batch`` sequences of ``tokens`` at width ``dim`` (``grid`` for images)."""

    name: str
    batch: int
    tokens: int
    dim: int
    head_dim: int
    state_size: int
    ssm_head_dim: int
    hidden: int
    kernel_size: int
    grid: tuple[int, int] | None = None
    metric: str | None = None  # which goal row this is: "2048", "8192", "1024"


def issue_shapes() -> list[Shape]:
    common = dict(head_dim=64, state_size=64, ssm_head_dim=64, kernel_size=7)
    return [Shape("issue 8x1024", 8, 1024, 768, hidden=3072, metric="1024", **common),
            Shape("issue 1x8192", 1, 8192, 768, hidden=3072, metric="8192", **common),
            Shape("issue 4x2048", 4, 2048, 768, hidden=3072, metric="2048", **common),
            Shape("issue 64x256 d384", 64, 256, 384, hidden=1536, **common)]


def smoke_shapes() -> list[Shape]:
    common = dict(head_dim=16, state_size=8, ssm_head_dim=16, kernel_size=3, hidden=64)
    return [Shape("smoke 2x32", 2, 32, 32, metric="1024", **common),
            Shape("smoke 1x128", 1, 128, 32, metric="8192", **common),
            Shape("smoke 2x64", 2, 64, 32, metric="2048", **common)]


def space_shapes(batch: int = 64) -> list[Shape]:
    """Each stage of each built-in space's largest subnet, with the space's mixer knobs."""
    from search_spaces import get_space, list_spaces
    from search_spaces.space import glu_hidden

    shapes = []
    for name in list_spaces():
        space = get_space(name)
        seen: list[tuple[int, int, object]] = []
        for spec in space.layers(space.largest()):
            if isinstance(spec, MixerSpec) and (spec.dim, spec.tokens, spec.grid) not in seen:
                seen.append((spec.dim, spec.tokens, spec.grid))
        for stage, (dim, tokens, grid) in zip(space.stages, seen):
            shapes.append(Shape(
                f"{name} {batch}x{tokens} d{dim}", batch, tokens, dim, head_dim=space.head_dim,
                state_size=space.ssm_state_size, ssm_head_dim=space.ssm_head_dim,
                hidden=glu_hidden(dim, stage.hidden_ratio.max), kernel_size=stage.kernel_size.max,
                grid=grid))
    return shapes


def layer_spec(shape: Shape, mixer: str) -> MixerSpec:
    knobs = {"attention": dict(head_dim=shape.head_dim), "glu_mlp": dict(hidden=shape.hidden),
             "conv": dict(kernel_size=shape.kernel_size),
             "ssm": dict(head_dim=shape.ssm_head_dim, state_size=shape.state_size)}[mixer]
    return MixerSpec(mixer, shape.dim, shape.tokens, shape.grid, **knobs)


class Timer:
    """``time(fn) -> ms`` for one call: CUDA events on the GPU, perf_counter on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self, fn: Callable[[], None]) -> float:
        if self.device.type != "cuda":
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e3
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(self.device)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(self.device)
        return start.elapsed_time(end)


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` inside the block (read by the kernels on every call)."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


#: the SSM variants' paths: the torch reference, and the Triton path with the fused backward
#: (`kernels.ssm.triton_ssd._bwd_kind`), timed beside the default (split) backward
SSM_VARIANTS: dict[str, Callable[[], AbstractContextManager[object]]] = {
    "ssm": nullcontext, "ssm_fused": lambda: _env(BWD_ENV, "fused"),
    "ssm_reference": use_reference_scan}


def make_calls(shape: Shape, variant: str, device: torch.device, dtype: torch.dtype,
               gen: torch.Generator) -> tuple[dict[str, Callable[[], None]], str]:
    """The forward and forward+backward callables of one variant, and the SSM path it uses."""
    mixer = "ssm" if variant in SSM_VARIANTS else variant
    layer = build_layer(layer_spec(shape, mixer)).to(device=device, dtype=dtype)
    x = torch.randn(shape.batch, shape.tokens, shape.dim, generator=gen).to(device, dtype)
    x_grad = x.clone().requires_grad_()
    cot = torch.randn(x.shape, generator=gen).to(device, dtype)
    force = SSM_VARIANTS.get(variant, nullcontext)
    path = ""
    if mixer == "ssm":
        with force():
            path = "triton" if uses_triton_scan(x) else "torch chunked"
    params = list(layer.parameters())

    def fwd() -> None:
        with force(), torch.inference_mode():
            layer(x)

    def fwdbwd() -> None:
        with force():
            torch.autograd.backward(layer(x_grad), cot)

    def reset() -> None:
        for p in (*params, x_grad):
            p.grad = None

    calls = {"fwd": fwd, "fwdbwd": fwdbwd, "reset": reset}
    if device.type == "cuda":
        def fwd_nograd() -> None:
            with force(), torch.no_grad():
                layer(x)

        calls["fwd_graph"] = cuda_graph_of(fwd_nograd, device)
        # reset before the capture: the captured backward then allocates the grads in the
        # graph's own pool, which replays write to; grads left from the warm-up would be
        # written in place by every replay after `reset` has handed their memory back
        calls["fwdbwd_graph"] = cuda_graph_of(fwdbwd, device, before_capture=reset)
        reset()
    return calls, path


def cuda_graph_of(fn: Callable[[], None], device: torch.device,
                  before_capture: Callable[[], None] | None = None) -> Callable[[], None]:
    """``fn`` captured in a CUDA graph (after 3 warm-up calls on a side stream, as
    `kernels.timing` captures models); the returned callable replays it. A replay is the GPU
    time of the layer's kernels without the host's per-launch cost: the mode the GPU latency
    tables time layers in."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    if before_capture is not None:
        before_capture()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def measure_shape(shape: Shape, *, device: torch.device, dtype: torch.dtype, warmup: int,
                  repeats: int, gen: torch.Generator) -> list[dict[str, object]]:
    """Rows (one per variant) of median fwd / fwd+bwd ms, variants interleaved per round."""
    timer = Timer(device)
    calls, paths = {}, {}
    for variant in VARIANTS:
        calls[variant], paths[variant] = make_calls(shape, variant, device, dtype, gen)
    samples: dict[tuple[str, str], list[float]] = {}
    modes = [m for m in MODES if m in calls[VARIANTS[0]]]
    for round_ in range(warmup + repeats):
        for variant in VARIANTS:
            for mode in modes:
                if not mode.endswith("_graph"):
                    calls[variant]["reset"]()
                ms = timer(calls[variant][mode])
                if round_ >= warmup:
                    samples.setdefault((variant, mode), []).append(ms)
    rows: list[dict[str, object]] = []
    for variant in VARIANTS:
        row: dict[str, object] = {"shape": shape.name, "variant": variant,
                                  "batch": shape.batch, "tokens": shape.tokens,
                                  "dim": shape.dim, "ssm_path": paths[variant]}
        for mode in modes:
            row[f"{mode}_ms"] = round(statistics.median(samples[(variant, mode)]), 4)
        rows.append(row)
    att = rows[VARIANTS.index("attention")]
    for row in rows:
        for mode in modes:
            row[f"{mode}_vs_attention"] = round(float(row[f"{mode}_ms"])  # type: ignore[arg-type]
                                                / float(att[f"{mode}_ms"]), 3)  # type: ignore[arg-type]
    return rows


def goal_metrics(rows: list[dict[str, object]], shapes: list[Shape]) -> dict[str, float]:
    """The goal ratios. On CUDA the goal keys are the CUDA-graph ratios (GPU time, the mode
    of the GPU latency tables) and ``*_eager`` the single eager calls; on the CPU (smoke) the
    goal keys are the eager ratios."""
    by = {(r["shape"], r["variant"]): r for r in rows}
    graph = any("fwd_graph_ms" in r for r in rows)
    metrics: dict[str, float] = {}
    for shape in shapes:
        if shape.metric is None:
            continue
        key, mode = {"1024": ("ssm_vs_attention_fwd_1024", "fwd"),
                     "2048": ("ssm_vs_attention_fwdbwd_2048", "fwdbwd"),
                     "8192": ("ssm_vs_attention_fwdbwd_8192", "fwdbwd")}[shape.metric]
        for variant in ("ssm", "ssm_fused", "ssm_reference"):
            name = key.replace("ssm_vs", f"{variant}_vs")
            row = by[(shape.name, variant)]
            if graph:
                metrics[name] = float(row[f"{mode}_graph_vs_attention"])  # type: ignore[arg-type]
                metrics[f"{name}_eager"] = float(row[f"{mode}_vs_attention"])  # type: ignore[arg-type]
            else:
                metrics[name] = float(row[f"{mode}_vs_attention"])  # type: ignore[arg-type]
    return metrics


def print_table(rows: list[dict[str, object]]) -> None:
    modes = [m for m in MODES if f"{m}_ms" in rows[0]]
    head = f"{'shape':34s} {'variant':14s} {'path':14s}" + "".join(
        f" {m + ' ms':>17s} {'x att':>6s}" for m in modes)
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['shape']:34s} {r['variant']:14s} {r['ssm_path']:14s}" + "".join(
            f" {r[m + '_ms']:17.3f} {r[m + '_vs_attention']:6.2f}" for m in modes))


def figure(rows: list[dict[str, object]], path: Path, *, device: str) -> Path:
    """One PNG, forward and forward+backward panels: each variant's CUDA-graph time (ms, log
    scale) at issue #18's shapes, the SSM / attention ratio over the SSM bar, and the goal
    (attention's time x the goal ratio) as a tick where the issue sets one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    shapes = [n for n in dict.fromkeys(str(r["shape"]) for r in rows) if n.startswith("issue")]
    by = {(r["shape"], r["variant"]): r for r in rows}
    colors = {"attention": "tab:gray", "glu_mlp": "tab:olive", "conv": "tab:cyan",
              "ssm": "tab:red", "ssm_fused": "tab:orange", "ssm_reference": "tab:pink"}
    labels = {"ssm": "ssm (Triton)", "ssm_fused": "ssm (Triton, fused backward)",
              "ssm_reference": "ssm (torch reference)"}
    width = 0.8 / len(VARIANTS)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), dpi=120)
    for ax, mode, title in zip(axes, ("fwd_graph", "fwdbwd_graph"),
                               ("forward", "forward + backward")):
        for j, variant in enumerate(VARIANTS):
            xs = [i + (j - (len(VARIANTS) - 1) / 2) * width for i in range(len(shapes))]
            ms = [float(by[(n, variant)][f"{mode}_ms"]) for n in shapes]  # type: ignore[arg-type]
            ax.bar(xs, ms, width, color=colors[variant], label=labels.get(variant, variant))
            if variant == "ssm":
                for x, n, m in zip(xs, shapes, ms):
                    ratio = float(by[(n, variant)][f"{mode}_vs_attention"])  # type: ignore[arg-type]
                    ax.annotate(f"{ratio:.2f}x", (x, m), textcoords="offset points",
                                xytext=(0, 3), ha="center", fontsize=8, color="tab:red")
        goals = [(i, GOALS[(n, mode)] * float(by[(n, "attention")][f"{mode}_ms"]))  # type: ignore[arg-type]
                 for i, n in enumerate(shapes) if (n, mode) in GOALS]
        for g, (i, ms_goal) in enumerate(goals):
            ax.hlines(ms_goal, i - 0.45, i + 0.45, colors="black", linestyles="dashed",
                      label="goal (x attention)" if g == 0 else None)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels([n.removeprefix("issue ") for n in shapes])
        ax.set_ylabel("ms per call, CUDA-graph replay (median)")
        ax.set_title(f"{title}, bf16: {device}", fontsize=9)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    handles, names = axes[1].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="lower center", ncol=len(names))
    fig.suptitle("Token-mixer layers at d = 768 (64 x 256: d = 384): SSM / attention over "
                 "the SSM bars")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny shapes, float32, 1 warm-up + 1 round; writes "
                             "mixer_kernels_smoke.json (checks that the script runs)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out-dir", type=Path, default=None,
                        help=f"where the JSON goes (default {RESULTS})")
    parser.add_argument("--figure", type=Path, default=FIGURE,
                        help=f"the PNG a CUDA run draws (default {FIGURE.relative_to(ROOT)})")
    parser.add_argument("--figure-from", type=Path, default=None, metavar="JSON",
                        help="only redraw --figure from this result file of a CUDA run")
    args = parser.parse_args(argv)
    if args.figure_from is not None:
        if not args.figure_from.is_file():
            parser.error(f"--figure-from {args.figure_from}: no such file")
        result = json.loads(args.figure_from.read_text())
        rows = result.get("raw", {}).get("rows", [])
        if not rows or "fwd_graph_ms" not in rows[0]:
            parser.error(f"--figure-from {args.figure_from}: no CUDA-graph rows (raw.rows with "
                         "fwd_graph_ms) in it; only a --device cuda run has them")
        print(f"wrote {figure(rows, args.figure, device=result['device'])}")
        return dict(result.get("metrics", {}))
    device = torch.device("cpu" if args.smoke and args.device == "cuda" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is visible (use --smoke for a CPU check)")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if args.smoke:
        shapes, warmup, repeats = smoke_shapes(), 1, 1
    else:
        shapes, warmup, repeats = issue_shapes() + space_shapes(), args.warmup, args.repeats
    gen = torch.Generator().manual_seed(0)
    rows = []
    t0 = time.perf_counter()
    for i, shape in enumerate(shapes):
        print(f"[{i + 1}/{len(shapes)}] {shape.name} ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr, flush=True)
        rows += measure_shape(shape, device=device, dtype=dtype, warmup=warmup,
                              repeats=repeats, gen=gen)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print_table(rows)
    metrics = goal_metrics(rows, shapes)
    print({k: metrics[k] for k in sorted(metrics)})
    name = "mixer_kernels_smoke" if args.smoke else "mixer_kernels"
    path = write_result(name, metrics=metrics, raw={"rows": rows, "dtype": str(dtype),
                                                    "triton_dot": os.environ.get(
                                                        "NAS_SSM_TRITON_DOT", "") or "tf32",
                                                    "seconds": round(time.perf_counter() - t0)},
                        device=device_name(str(device)), out_dir=args.out_dir)
    print(f"wrote {path}")
    if device.type == "cuda":
        print(f"wrote {figure(rows, args.figure, device=device_name(str(device)))}")
    return metrics


if __name__ == "__main__":
    main()
