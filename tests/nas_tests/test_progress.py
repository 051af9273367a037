"""The shared progress bar: silent when disabled, plain lines at each tenth without rich,
rich's bar (with the caller's fields) with it."""

from __future__ import annotations

import builtins
import io

from nas.progress import ProgressBar, progress_bar


def test_disabled_draws_nothing(capsys):
    with progress_bar(10, "work", enabled=False) as advance:
        advance(5, note="x")
    with ProgressBar(total=0, description="empty") as bar:
        bar.advance()
    assert capsys.readouterr().out == ""


def test_plain_lines_without_rich(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_rich(name, *args, **kwargs):
        if name.split(".")[0] == "rich":
            raise ImportError("rich is blocked")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rich)
    with progress_bar(20, "work") as advance:
        for i in range(20):
            advance(note=f"item {i}")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 11 and lines[0].startswith("work: 1/20")
    assert lines[-1].startswith("work: 20/20") and lines[-1].endswith("(item 19)")


def test_rich_bar_keeps_fields():
    from rich.console import Console

    out = io.StringIO()
    bar = ProgressBar(total=4, description="train", completed=1,
                      columns=("loss {task.fields[loss]:.2f}",), fields={"loss": 0.0},
                      console=Console(file=out, width=120, force_terminal=False))
    with bar:
        bar.update(4, loss=1.25)
    assert bar.completed == 4 and bar.fields["loss"] == 1.25
    assert "loss 1.25" in out.getvalue() and "4/4" in out.getvalue()
