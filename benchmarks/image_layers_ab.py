"""Benchmark `image_layers_ab`: the image layers' op-count cuts against the previous layers (CPU).

Two changes of 2026-12-08 (#15) take ops out of every image subnet's forward, without
changing a value beyond float rounding: the GLU-MLP layer's residual add rides in its down
projection (``addmm``), and the downsample hands its tokens to the convolution as a
channels-last view instead of a transposed copy. At batch 1 the small image subnets are
dispatch-bound on the CPU (a few dozen aten ops of microseconds each), so an op less is time
less. This times, interleaved in one run (`kernels.timing.measure_interleaved`, eager, one
thread, medians), five members of the committed MNIST CPU front (fastest to largest,
`benchmarks/results/vs_baselines.json`) with the current layers and with the previous ones
(`old_glu` / `old_down` below, as at a0d89c6), and LeNet-5 beside them, at batch 1 and 256;
``--runs`` repeats the whole measurement and the medians over runs are reported.

``metrics``: ``b1_fastest_new_vs_old`` / ``b1_fastest_new_vs_lenet5`` (the fastest member),
``b1_median_new_vs_old`` and the same at b256; ``raw``: every member's times per run.

    python benchmarks/image_layers_ab.py --runs 3
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_io import device_name, write_result  # noqa: E402

import kernels.glu_mlp as G  # noqa: E402
import kernels.stem as S  # noqa: E402
from kernels import StaticModel  # noqa: E402
from kernels.timing import TimingConfig, measure_interleaved  # noqa: E402
from nas.baselines.image import build_image_baseline  # noqa: E402
from nas.study import load_study  # noqa: E402
from search_spaces import Arch  # noqa: E402


def old_glu(x, norm_weight, norm_bias, gate_up_weight, down_weight):
    """`kernels.glu_mlp.glu_mlp_forward` as at a0d89c6: the residual add as its own op."""
    h = F.layer_norm(x, norm_weight.shape, norm_weight, norm_bias)
    gate, up = F.linear(h, gate_up_weight).chunk(2, dim=-1)
    return x + F.linear(F.silu(gate) * up, down_weight)


def old_down(x, norm_weight, norm_bias, proj_weight, proj_bias, *, grid):
    """`kernels.stem.downsample_forward` as at a0d89c6: a transposed copy into the conv."""
    B, T, D = x.shape
    h = F.layer_norm(x, norm_weight.shape, norm_weight, norm_bias)
    if grid is None:
        return F.linear(h, proj_weight, proj_bias)
    h = h.transpose(1, 2).reshape(B, D, grid[0], grid[1])
    return S.conv3x3_tokens(h, proj_weight, proj_bias, stride=2)


NEW = (G.glu_mlp_forward, S.downsample_forward)
OLD = (old_glu, old_down)


class With(torch.nn.Module):
    """``m`` run with the layer functions ``fns`` (set for the call, restored after)."""

    def __init__(self, m, fns):
        super().__init__()
        self.m, self.fns = m, fns

    def forward(self, x):
        G.glu_mlp_forward, S.downsample_forward = self.fns
        try:
            return self.m(x)
        finally:
            G.glu_mlp_forward, S.downsample_forward = NEW


def members(space, front_file: Path, count: int = 5):
    d = json.loads(front_file.read_text())["raw"]["mnist"]
    M = d["members"]
    front = sorted(d["fronts"]["cpu"], key=lambda h: M[h]["latency_ms"]["cpu"])
    picks = sorted({round(i * (len(front) - 1) / (count - 1)) for i in range(count)})
    out = []
    for i in picks:
        arch = Arch.from_json(M[front[i]]["arch"])
        out.append((M[front[i]]["label"], StaticModel(list(space.layers(arch))).eval(),
                    arch.resolution))
    return out


def one_run(models, lenet, batch: int, repeats: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    calls, names = [], []
    for label, m, r in models:
        for tag, fns in (("old", OLD), ("new", NEW)):
            calls.append((With(m, fns), (lambda r=r: torch.randn(batch, 1, r, r, generator=g))))
            names.append((label, tag))
    calls.append((lenet, lambda: torch.randn(batch, 1, 28, 28, generator=g)))
    names.append(("lenet5", "-"))
    out = measure_interleaved(calls, device="cpu", mode="eager", threads=1,
                              config=TimingConfig(repeats=repeats, seed=seed))
    return {f"{n[0]}|{n[1]}": o.median_ms for n, o in zip(names, out)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=40, help="timed rounds per run at batch 1 "
                   "(batch 256: a third of it)")
    p.add_argument("--front", type=Path, default=ROOT / "benchmarks" / "results" /
                   "vs_baselines.json", help="the vs_baselines result whose MNIST CPU front "
                   "is timed")
    args = p.parse_args()
    if args.runs < 1 or args.repeats < 3:
        p.error(f"--runs must be >= 1 and --repeats >= 3, got {args.runs} and {args.repeats}")
    if not args.front.is_file():
        p.error(f"--front {args.front}: no such file")
    torch.manual_seed(0)
    space = load_study(str(ROOT / "studies" / "mnist_hybrid.py")).build_space()
    models = members(space, args.front)
    lenet = build_image_baseline("lenet5", in_channels=1, num_classes=10, resolution=28).eval()
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        diff = max((With(m, OLD)(x[..., :r, :r]) - With(m, NEW)(x[..., :r, :r])).abs().max()
                   .item() for _, m, r in models)
    metrics: dict = {}
    raw: dict = {"max_abs_diff_old_vs_new": diff, "members": [m[0] for m in models]}
    for batch in (1, 256):
        repeats = args.repeats if batch == 1 else max(3, args.repeats // 3)
        runs = [one_run(models, lenet, batch, repeats, seed=batch * 100 + k)
                for k in range(args.runs)]
        rows = []
        for label, _, _ in models:
            old = statistics.median(r[f"{label}|old"] for r in runs)
            new = statistics.median(r[f"{label}|new"] for r in runs)
            ratio = statistics.median(r[f"{label}|new"] / r[f"{label}|old"] for r in runs)
            vs_lenet = statistics.median(r[f"{label}|new"] / r["lenet5|-"] for r in runs)
            rows.append({"arch": label, "old_ms": round(old, 4), "new_ms": round(new, 4),
                         "new_vs_old": round(ratio, 3), "new_vs_lenet5": round(vs_lenet, 3),
                         "old_vs_lenet5": round(statistics.median(
                             r[f"{label}|old"] / r["lenet5|-"] for r in runs), 3)})
            print(f"b{batch} {label:46s} old {old:.4f} new {new:.4f} ms  new/old "
                  f"{ratio:.3f}  new/lenet5 {vs_lenet:.2f}", flush=True)
        lenet_ms = statistics.median(r["lenet5|-"] for r in runs)
        print(f"b{batch} lenet5 {lenet_ms:.4f} ms", flush=True)
        raw[f"b{batch}"] = {"rows": rows, "lenet5_ms": round(lenet_ms, 4), "runs": runs}
        metrics[f"b{batch}_fastest_new_vs_old"] = rows[0]["new_vs_old"]
        metrics[f"b{batch}_fastest_new_vs_lenet5"] = rows[0]["new_vs_lenet5"]
        metrics[f"b{batch}_fastest_old_vs_lenet5"] = rows[0]["old_vs_lenet5"]
        metrics[f"b{batch}_median_new_vs_old"] = statistics.median(r["new_vs_old"] for r in rows)
    print(metrics, f"max |old - new| {diff:.1e}")
    print("wrote", write_result("image_layers_ab", metrics=metrics, raw=raw,
                                device=device_name("cpu")))


if __name__ == "__main__":
    main()
