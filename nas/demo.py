"""`nas demo`: a short real tour of the spine (sample, run, time, export, verify)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import track
from rich.table import Table

from nas.export.model import export_subnet, load_subnet, save_subnet
from nas.supernet import Supernet
from search_spaces import get_space


def _median_ms(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


@torch.no_grad()
def run_demo(*, space_name: str, n: int, seed: int, out: Path) -> None:
    console = Console()
    space = get_space(space_name)
    torch.manual_seed(seed)
    net = Supernet(space).eval()
    rng = np.random.default_rng(seed)
    archs = [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(n)]
    table = Table(title=f"{space_name}: {space.size():.3g} archs")
    for col in ("key", "arch", "MFLOPs", "params", "ms/batch(8)", "max|export-supernet|"):
        table.add_column(col)
    gen = torch.Generator().manual_seed(seed)
    for arch in track(archs, description="sampling, running, exporting"):
        x = space.example_input(arch, 8, generator=gen)
        model = export_subnet(net, arch)
        diff = (net(x, arch) - model(x)).abs().max().item()
        ms = _median_ms(lambda m=model, x=x: m(x))
        table.add_row(arch.key(), arch.label(), f"{space.flops(arch) / 1e6:.1f}",
                      f"{space.params(arch):,}", f"{ms:.2f}", f"{diff:.1e}")
    console.print(table)
    arch = archs[-1]
    files = save_subnet(export_subnet(net, arch), arch, out)
    reloaded = load_subnet(out)
    x = space.example_input(arch, 4, generator=gen)
    diff = (reloaded(x) - net(x, arch)).abs().max().item()
    console.print(f"exported {arch.label()} to {out}: {', '.join(sorted(files))}; "
                  f"reloaded max diff {diff:.1e}")
