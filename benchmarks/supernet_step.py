"""Benchmark `supernet_step`: train-step cost of the supernet vs the exported subnet.

For the largest, a middle (median-FLOPs of 200 samples) and the smallest arch of
`hybrid_vit_tiny` (3 x 32 x 32 inputs): forward + backward of the supernet with the arch
fixed vs its exported standalone model on the same batch (256 images on CPU, 1024 on GPU,
bf16 autocast on GPU as in training), interleaved, median over repeats; the optimizer step
(AdamW) timed separately, since the supernet updates its full max-size tensors.

    python benchmarks/supernet_step.py --device cpu
    python benchmarks/supernet_step.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_io import device_name, write_result  # noqa: E402

from nas import Supernet, export_subnet  # noqa: E402
from search_spaces import get_space  # noqa: E402


def _timer(device: torch.device):
    if device.type == "cuda":
        def run(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
    else:
        def run(fn):
            t0 = time.perf_counter()
            fn()
            return 1e3 * (time.perf_counter() - t0)
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    batch = args.batch or (1024 if device.type == "cuda" else 256)
    repeats = args.repeats or (50 if device.type == "cuda" else 15)
    if device.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    space = get_space("hybrid_vit_tiny")
    rng = np.random.default_rng(0)
    samples = sorted((space.sample(rng) for _ in range(200)), key=space.flops)
    archs = {"largest": space.largest(), "middle": samples[100], "smallest": space.smallest()}
    torch.manual_seed(0)
    net = Supernet(space).to(device)
    timer = _timer(device)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else nullcontext())
    g = torch.Generator().manual_seed(0)
    results, raw = {}, {}
    for tag, arch in archs.items():
        model = export_subnet(net, arch).train()
        x = space.example_input(arch, batch, generator=g).to(device)
        y = torch.randint(0, space.num_outputs, (batch,), generator=g).to(device)

        def step_super(a=arch, x=x, y=y):
            net.zero_grad(set_to_none=True)
            with autocast:
                loss = F.cross_entropy(net(x, a).float(), y)
            loss.backward()

        def step_export(m=model, x=x, y=y):
            m.zero_grad(set_to_none=True)
            with autocast:
                loss = F.cross_entropy(m(x).float(), y)
            loss.backward()

        opt_super = torch.optim.AdamW(net.parameters(), lr=1e-4)
        opt_export = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for _ in range(3):
            step_super()
            step_export()
        t_super, t_export, o_super, o_export = [], [], [], []
        for _ in range(repeats):  # interleaved so drift hits both sides alike
            t_super.append(timer(step_super))
            o_super.append(timer(opt_super.step))
            t_export.append(timer(step_export))
            o_export.append(timer(opt_export.step))
        med = {k: statistics.median(v) for k, v in
               (("super", t_super), ("export", t_export), ("opt_super", o_super),
                ("opt_export", o_export))}
        results[tag] = {"supernet_ms": med["super"], "export_ms": med["export"],
                        "ratio": med["super"] / med["export"],
                        "optimizer_supernet_ms": med["opt_super"],
                        "optimizer_export_ms": med["opt_export"],
                        "flops": space.flops(arch), "key": arch.key()}
        raw[tag] = {"arch": arch.to_json(), "supernet_ms": t_super, "export_ms": t_export,
                    "optimizer_supernet_ms": o_super, "optimizer_export_ms": o_export}
        print(f"{tag:8s} supernet {med['super']:.2f} ms  export {med['export']:.2f} ms  "
              f"ratio {med['super'] / med['export']:.3f}  optimizer {med['opt_super']:.2f} vs "
              f"{med['opt_export']:.2f} ms")
    prefix = "gpu_" if device.type == "cuda" else ""
    target = "gpu" if device.type == "cuda" else "cpu"
    metrics = {
        f"{prefix}step_ratio_max": max(results["largest"]["ratio"], results["middle"]["ratio"]),
        f"{prefix}step_ratio_smallest": results["smallest"]["ratio"],
        target: {**results, "batch": batch, "repeats": repeats},
    }
    path = write_result("supernet_step", metrics=metrics, raw={target: raw},
                        device=device_name(args.device))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
