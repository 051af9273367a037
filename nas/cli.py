"""The `nas` command line. Heavy packages are imported inside commands so `nas --help` is fast.

Errors print one line (``error: ...``) and exit 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Hardware-aware NAS: spaces, supernet training, latency, search, export.")
_state = {"debug": False}


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")):
    _state["debug"] = debug


def _fail(exc: BaseException) -> None:
    if _state["debug"]:
        raise exc
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


@app.command()
def spaces() -> None:
    """List every registered search space with its modality, size and FLOPs range."""
    from rich.console import Console
    from rich.table import Table

    from search_spaces import get_space, list_spaces

    table = Table(title="search spaces")
    for col in ("name", "modality", "archs", "FLOPs min", "FLOPs max", "params min",
                "params max"):
        table.add_column(col, justify="left" if col in ("name", "modality") else "right")
    for name in list_spaces():
        space = get_space(name)
        lo, hi = space.smallest(), space.largest()
        table.add_row(name, space.modality, f"{space.size():.3g}", f"{space.flops(lo):,}",
                      f"{space.flops(hi):,}", f"{space.params(lo):,}", f"{space.params(hi):,}")
    Console(width=max(120, Console().width)).print(table)


@app.command()
def demo(
    space: str = typer.Option("hybrid_vit_tiny", help="Registered space name."),
    n: int = typer.Option(8, help="Number of random archs to sample."),
    seed: int = typer.Option(0, help="Sampling seed."),
    out: Path = typer.Option(Path("runs/demo"), help="Where the exported subnet is written."),
) -> None:
    """Sample archs, run them through an (untrained) supernet, time them, export one."""
    try:
        from nas.demo import run_demo

        run_demo(space_name=space, n=n, seed=seed, out=out)
    except (ValueError, OSError, RuntimeError) as exc:
        _fail(exc)


def main() -> None:
    app(prog_name="nas")


if __name__ == "__main__":
    sys.exit(main())
