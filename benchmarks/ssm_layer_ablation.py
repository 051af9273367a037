"""Benchmark `ssm_layer_ablation`: which part of the SSM layer's plumbing pays, on the GPU (#18).

`benchmarks/mixer_kernels.py` says how the SSM layer compares with attention; this says why.
Around the same Triton scan, the layer (`kernels.ssm.ssm_forward`) runs three pieces that
are not the scan: the input projection's split (`_SplitProjection`: one concatenation in the
backward), the gate ``y * silu(z)`` (`kernels.ssm.gate`: one fused kernel each way) and the
residual add (inside the output GEMM, ``addmm``). Each variant below rebuilds the layer's
forward from the product's own pieces with some of them replaced by plain torch, so "plain"
is the layer as it was before these pieces (a0d89c6) and "layer" is the layer as it is:

- ``layer``: `ssm_forward` itself; ``plain``: every piece plain torch;
- ``plain+split``, ``plain+gate``, ``plain+addmm``: one piece each;
- ``layer+atomic``: the layer, dB / dC summed over heads by atomics (``NAS_SSM_TRITON_DBC``);
- ``warps <kernel> <n>``: the layer with one scan kernel launched with another num_warps
  (`kernels.ssm.triton_ssd.NUM_WARPS`, the tuning table).

Shapes: issue #18's (d = 768, head 64, state 64: 1 x 8,192, 4 x 2,048, 8 x 1,024; 64 x 256 at
d = 384), bf16. Timed as `mixer_kernels` times layers (CUDA-graph replay, CUDA events, every
variant and the attention layer interleaved per round, medians); before timing, each variant's
output and gradients are compared with ``layer``'s (same weights, same inputs).

``metrics``: ``<shape>_fwdbwd_layer_vs_plain`` (the time ratio), ``<shape>_fwdbwd_layer_vs_
attention`` and ``<shape>_fwdbwd_plain_vs_attention``; ``raw``: every variant's median ms and
ratio to attention, the warps table and the check errors. Needs torch and Triton on CUDA (no
Ray / Optuna / SQLAlchemy); about a minute on an H100. ``--smoke`` runs the torch paths on the
CPU at tiny shapes (a check that the script runs).

    python benchmarks/ssm_layer_ablation.py --device cuda
    python benchmarks/ssm_layer_ablation.py --smoke
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

os.environ["NAS_SSM_TRITON"] = "1"  # the benchmark measures the fast path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_io import device_name, write_result  # noqa: E402
from mixer_kernels import (  # noqa: E402
    Shape,
    Timer,
    issue_shapes,
    layer_spec,
    make_calls,
    smoke_shapes,
)

import kernels.ssm.layer as ssm_layer  # noqa: E402
from kernels import build_layer  # noqa: E402
from kernels.residual import add_linear  # noqa: E402
from kernels.ssm import (  # noqa: E402
    ssm_scan,
    triton_ssd,  # noqa: E402
    uses_triton_scan,
)
from kernels.ssm.gate import silu_gate, silu_gate_reference  # noqa: E402

LAYER = ssm_layer.ssm_forward
#: which pieces a rebuilt forward uses: (split projection, fused gate, addmm)
PIECES = {"plain": (False, False, False), "plain+split": (True, False, False),
          "plain+gate": (False, True, False), "plain+addmm": (False, False, True)}


def rebuilt_forward(split: bool, gate: bool, addmm: bool) -> Callable[..., Tensor]:
    """`ssm_forward` rebuilt with each of its three plumbing pieces on or plain torch
    (all on: the same ops as `ssm_forward`; all off: the layer before them)."""

    def forward(x, norm_weight, norm_bias, x_proj_weight, z_proj_weight, bc_proj_weight,
                dt_proj_weight, dt_proj_bias, a_log, d_skip, out_proj_weight, *, head_dim,
                bidirectional):
        B, T, D = x.shape
        h = F.layer_norm(x, norm_weight.shape, norm_weight, norm_bias)
        heads, inner = dt_proj_weight.shape[0], x_proj_weight.shape[0]
        xs, z, b, c, dt = ssm_layer.in_projection(h, x_proj_weight, z_proj_weight,
                                                  bc_proj_weight, dt_proj_weight, split=split)
        xs = xs.view(B, T, heads, head_dim)
        dt = F.softplus(dt + dt_proj_bias)
        a = -torch.exp(a_log.float())
        fused_skip = uses_triton_scan(xs)
        y = ssm_scan(xs, dt, a, b, c, chunk_size=ssm_layer.CHUNK_SIZE,
                     D=d_skip if fused_skip else None)
        if bidirectional:
            y = y + ssm_scan(xs, dt, a, b, c, chunk_size=ssm_layer.CHUNK_SIZE, reverse=True)
        if not fused_skip:
            y = y + d_skip[:, None] * xs
        y2, z2 = y.reshape(B * T, inner), z.reshape(B * T, inner)
        gated = silu_gate(y2, z2) if gate else silu_gate_reference(y2, z2)
        if addmm:
            return add_linear(x, gated.view(B, T, inner), out_proj_weight)
        return x + F.linear(gated, out_proj_weight).view(B, T, D)

    return forward


def variants(*, warps: bool) -> dict[str, tuple[Callable[..., Tensor], str, dict[str, int]]]:
    """name -> (layer forward, dB / dC kind, num_warps overrides)."""
    none: dict[str, int] = {}
    out: dict[str, tuple[Callable[..., Tensor], str, dict[str, int]]] = {
        "layer": (LAYER, "heads", none), "layer+atomic": (LAYER, "atomic", none)}
    for name, pieces in PIECES.items():
        out[name] = (rebuilt_forward(*pieces), "heads", {})
    if warps:
        for key, default in triton_ssd.NUM_WARPS.items():
            if key == "chunk_bwd":  # the fused backward, not the default path
                continue
            for n in (2, 4, 8):
                if n != default:
                    out[f"warps {key} {n}"] = (LAYER, "heads", {key: n})
    return out


class _Configured:
    """Inside the block, the SSM layer runs ``forward`` with the given dB / dC kind and warps
    (read when the layer's kernels launch, so a CUDA graph captured inside keeps them)."""

    def __init__(self, forward: Callable[..., Tensor], dbc: str, warps: dict[str, int]) -> None:
        self.forward, self.dbc, self.warps = forward, dbc, warps

    def __enter__(self) -> None:
        self.saved = (ssm_layer.ssm_forward, os.environ.get(triton_ssd.DBC_ENV),
                      dict(triton_ssd.NUM_WARPS))
        ssm_layer.ssm_forward = self.forward  # type: ignore[assignment]
        os.environ[triton_ssd.DBC_ENV] = self.dbc
        triton_ssd.NUM_WARPS.update(self.warps)

    def __exit__(self, *exc: object) -> None:
        forward, dbc, warps = self.saved
        ssm_layer.ssm_forward = forward  # type: ignore[assignment]
        if dbc is None:
            os.environ.pop(triton_ssd.DBC_ENV, None)
        else:
            os.environ[triton_ssd.DBC_ENV] = dbc
        triton_ssd.NUM_WARPS.clear()
        triton_ssd.NUM_WARPS.update(warps)


def check(shape: Shape, table: dict, *, device: torch.device, dtype: torch.dtype) -> dict:
    """Max relative error of each variant's output and gradients against ``layer``'s."""
    torch.manual_seed(0)
    layer = build_layer(layer_spec(shape, "ssm")).to(device, dtype)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(shape.batch, shape.tokens, shape.dim, generator=gen).to(device, dtype)
    cot = torch.randn(x.shape, generator=gen).to(device, dtype)
    results = {}
    for name, config in table.items():
        with _Configured(*config):
            layer.zero_grad(set_to_none=True)
            xg = x.clone().requires_grad_()
            y = layer(xg)
            y.backward(cot)
        results[name] = [y.detach(), xg.grad, *(p.grad for p in layer.parameters())]
    errs = {}
    for name, tensors in results.items():
        errs[name] = max(((a.double() - b.double()).abs().max()
                          / b.double().abs().max().clamp_min(1e-30)).item()
                         for a, b in zip(tensors, results["layer"]))
    return errs


def measure(shape: Shape, table: dict, *, device: torch.device, dtype: torch.dtype,
            warmup: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median ms per variant and mode (fwd / fwdbwd; CUDA-graph replay on CUDA)."""
    timer = Timer(device)
    modes = ("fwd_graph", "fwdbwd_graph") if device.type == "cuda" else ("fwd", "fwdbwd")
    calls = {"attention": make_calls(shape, "attention", device, dtype,
                                     torch.Generator().manual_seed(0))[0]}
    for name, config in table.items():
        with _Configured(*config):  # graphs are captured here, with this configuration
            calls[name] = make_calls(shape, "ssm", device, dtype,
                                     torch.Generator().manual_seed(0))[0]
    samples: dict[tuple[str, str], list[float]] = {}
    for round_ in range(warmup + repeats):
        for name, c in calls.items():
            config = table.get(name)
            for mode in modes:
                if not mode.endswith("_graph"):
                    c["reset"]()
                with _Configured(*config) if config else nullcontext():  # eager calls: per call
                    ms = timer(c[mode])
                if round_ >= warmup:
                    samples.setdefault((name, mode), []).append(ms)
    out: dict[str, dict[str, float]] = {}
    for (name, mode), v in samples.items():
        out.setdefault(name, {})[mode.removesuffix("_graph")] = round(statistics.median(v), 4)
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny shapes on the CPU, 1 round; writes "
                             "ssm_layer_ablation_smoke.json")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device("cpu" if args.smoke else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is visible (use --smoke for a CPU check)")
    if args.warmup < 0 or args.repeats < 1:
        parser.error(f"--warmup must be >= 0 and --repeats >= 1, got {args.warmup} and "
                     f"{args.repeats}")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if args.smoke:
        shapes, warmup, repeats = smoke_shapes()[:2], 0, 1
    else:
        shapes, warmup, repeats = issue_shapes(), args.warmup, args.repeats
    t0 = time.perf_counter()
    metrics: dict[str, float] = {}
    raw: dict[str, object] = {"dtype": str(dtype), "default_warps": dict(triton_ssd.NUM_WARPS),
                              "fast_path": device.type == "cuda", "shapes": {}}
    for i, shape in enumerate(shapes):
        # the warps sweep at the goal shapes of the backward only (its kernels dominate there)
        table = variants(warps=device.type == "cuda" and shape.metric in ("8192", "2048"))
        print(f"[{i + 1}/{len(shapes)}] {shape.name}: {len(table)} variants "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        errs = check(shape, table, device=device, dtype=dtype)
        times = measure(shape, table, device=device, dtype=dtype, warmup=warmup,
                        repeats=repeats)
        att = times["attention"]
        rows = {name: {**t, **{f"{m}_vs_attention": round(t[m] / att[m], 3) for m in t},
                       "max_rel_err_vs_layer": errs.get(name, 0.0)}
                for name, t in times.items()}
        raw["shapes"][shape.name] = rows  # type: ignore[index]
        key = shape.name.replace("issue ", "").replace(" ", "_")
        metrics[f"{key}_fwdbwd_layer_vs_plain"] = round(
            times["layer"]["fwdbwd"] / times["plain"]["fwdbwd"], 3)
        metrics[f"{key}_fwdbwd_layer_vs_attention"] = rows["layer"]["fwdbwd_vs_attention"]
        metrics[f"{key}_fwdbwd_plain_vs_attention"] = rows["plain"]["fwdbwd_vs_attention"]
        for name in sorted(rows, key=lambda n: rows[n]["fwdbwd"]):
            r = rows[name]
            print(f"  {name:30s} fwd {r['fwd']:.4f}  fwdbwd {r['fwdbwd']:.4f} ms  "
                  f"({r['fwdbwd_vs_attention']:.3f}x attention)  "
                  f"err {r['max_rel_err_vs_layer']:.1e}", flush=True)
    raw["seconds"] = round(time.perf_counter() - t0)
    name = "ssm_layer_ablation_smoke" if args.smoke else "ssm_layer_ablation"
    path = write_result(name, metrics=metrics, raw=raw, device=device_name(str(device)),
                        out_dir=args.out_dir)
    print({k: metrics[k] for k in sorted(metrics)})
    print(f"wrote {path}")
    return metrics


if __name__ == "__main__":
    main()
