"""The app served on 127.0.0.1 and driven by Playwright in Debian's Chromium: the Pareto plot
shows every stored point with the knee and the exported arch marked, clicking a point shows
its architecture, Export downloads a zip of the model files (ONNX included), a deep link
opens a study and arch, an unreliable latency table is flagged, sources never stand in for
one another, the budget label is clear of the toolbar, and every page renders. Screenshots
are written to the test's tmp dir (and to ``$NAS_UI_SCREENSHOTS`` as ``ui_<name>.png`` when
set: ``NAS_UI_SCREENSHOTS=docs`` refreshes the ones in ``docs/``)."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from nas.app_launch import streamlit_command

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium; "
           ".ci/run installs it)")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SETTLED = """() => !document.querySelector('[data-testid=stStatusWidget]')
  && !document.querySelector('[data-testid=stSkeleton]')
  && document.querySelectorAll('.js-plotly-plot').length
     == document.querySelectorAll('[data-testid=stPlotlyChart]').length"""
POINTS = """() => Object.fromEntries(document.querySelector('.js-plotly-plot')._fullData
  .map(t => [t.name, Array.from(t.customdata || [])]))"""
POINT_XY = """([name, i]) => { const gd = document.querySelector('.js-plotly-plot');
  const t = gd._fullData.find(d => d.name === name), fl = gd._fullLayout;
  const box = gd.getBoundingClientRect();
  return [box.left + fl.xaxis._offset + fl.xaxis.l2p(fl.xaxis.d2l(t.x[i])),
          box.top + fl.yaxis._offset + fl.yaxis.l2p(fl.yaxis.d2l(t.y[i]))]; }"""
#: Plotly resolves a click to the point of its last (throttled) hover, so a click sent right
#: after a move can land on the point hovered before it; wait until the hover is on ``key``
HOVERING = """(key) => { const gd = document.querySelector('.js-plotly-plot');
  return (gd._hoverdata || []).some(p => p.customdata === key); }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(study_store, tmp_path_factory):
    home = tmp_path_factory.mktemp("ui_home")
    port = free_port()
    env = {**os.environ, "NAS_STORAGE": study_store.url, "HOME": str(home)}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(streamlit_command(port=port), env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=study_store.root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/_stcore/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("streamlit did not start:\n" +
                                       (home / "server.log").read_text()) from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    home = tmp_path_factory.mktemp("chromium_home")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS,
                                    env={**os.environ, "HOME": str(home)})
        yield browser
        browser.close()


def open_page(browser, url: str, title: str):
    page = browser.new_page(viewport={"width": 1200, "height": 850}, accept_downloads=True)
    page.set_default_timeout(90_000)
    page.goto(url)
    settle(page, title)
    return page


def settle(page, title: str) -> None:
    page.get_by_role("heading", name=title, exact=True).first.wait_for()
    page.wait_for_timeout(300)
    page.wait_for_function(SETTLED)
    page.wait_for_timeout(300)
    page.wait_for_function(SETTLED)


def shoot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    wanted = os.environ.get("NAS_UI_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(wanted) / f"ui_{path.name}")
    return path


def arch_shown(page, key: str):
    return page.locator("[data-testid=stMarkdown] code", has_text=key)


def knee_and_exported(study_store) -> tuple[str, str]:
    from nas.search.session import front_knee_key
    from nas.storage import open_store

    with open_store(study_store.url) as store:
        run = store.list_search_runs(study=study_store.study)[-1]
        knee = front_knee_key(store.get_front(study=study_store.study, run=run.name),
                              run.config)
        exported = store.get_stage_status(study=study_store.study, stage="export").detail
    return knee, exported["arch"]


def test_pareto_plot_click_and_export(server, browser, study_store, tmp_path):
    page = open_page(browser, f"{server}/pareto", "Pareto front")
    traces = page.evaluate(POINTS)
    knee, exported = knee_and_exported(study_store)
    assert set(traces) == {"archs", "stored front", "knee", "exported"}
    assert traces["knee"] == [knee] and traces["exported"] == [exported]
    assert sorted(traces["archs"] + traces["stored front"]) == sorted(study_store.archs)
    assert traces["stored front"] == list(study_store.front)
    arch_shown(page, knee).first.wait_for()  # the knee is the default pick
    assert shoot(page, tmp_path, "pareto").stat().st_size > 10_000
    # the budget label does not sit under the Plotly toolbar
    label = page.locator(".js-plotly-plot .annotation", has_text="budget").first.bounding_box()
    bar = page.locator(".js-plotly-plot .modebar").first
    page.locator(".js-plotly-plot").first.hover()
    box = bar.bounding_box()
    if box is not None and label is not None:
        overlap = not (label["x"] + label["width"] < box["x"] or box["x"] + box["width"]
                       < label["x"] or label["y"] + label["height"] < box["y"]
                       or box["y"] + box["height"] < label["y"])
        assert not overlap, (label, box)

    index = next(i for i, k in enumerate(study_store.front) if k not in (knee, exported))
    key = study_store.front[index]
    assert arch_shown(page, key).count() == 0
    x, y = page.evaluate(POINT_XY, ["stored front", index])
    page.mouse.move(x, y)
    page.wait_for_function(HOVERING, arg=key)
    page.mouse.click(x, y)
    arch_shown(page, key).first.wait_for()
    settle(page, "Pareto front")
    assert f"arch={key}" in page.url and "study=tiny" in page.url  # a deep link to it
    page.locator(".js-plotly-plot").nth(1).wait_for()  # the front and the arch's diagram
    shoot(page, tmp_path, "pareto_picked")

    page.get_by_role("button", name="Open in the Architecture page").click()
    page.wait_for_url("**/architecture**")
    settle(page, "Architecture")
    arch_shown(page, key).first.wait_for()
    page.get_by_role("button", name="Export", exact=True).click()
    download_button = page.get_by_role("button", name=f"Download tiny-{key}.zip")
    download_button.wait_for(timeout=180_000)
    with page.expect_download() as info:
        download_button.click()
    data = Path(info.value.path()).read_bytes()
    names = {Path(n).name for n in zipfile.ZipFile(io.BytesIO(data)).namelist()}
    assert {"arch.json", "layers.json", "weights.pt", "model.torchscript.pt", "model.onnx",
            "model_card.json", "model_card.md"} <= names
    assert page.locator("[data-testid=stException]").count() == 0
    shoot(page, tmp_path, "architecture")


def test_every_page_renders_in_the_browser(server, browser, tmp_path):
    page = open_page(browser, server, "Studies")
    assert page.get_by_text("tiny").count() > 0
    shoot(page, tmp_path, "studies")
    for path, title in (("training", "Supernet training"), ("latency", "Latency tables"),
                        ("predictor", "Predictor")):
        page.get_by_role("link", name=title).click()  # same session: no new app start
        page.wait_for_url(f"**/{path}**")
        settle(page, title)
        # SETTLED holds trivially before the first chart element mounts: wait for one
        page.locator(".js-plotly-plot").first.wait_for()
        assert page.locator("[data-testid=stException]").count() == 0, title
        shoot(page, tmp_path, path)
    page.close()


def choose(page, label: str, option: str) -> None:
    """Pick the option containing ``option`` in the selectbox labelled ``label``."""
    page.get_by_role("combobox", name=label, exact=True).first.click()
    page.get_by_role("option").filter(has_text=option).first.click()


def test_deep_link_unreliable_table_and_sources(server, browser, study_store, tmp_path):
    knee, _ = knee_and_exported(study_store)
    key = next(k for k in study_store.front if k != knee)
    page = open_page(browser, f"{server}/pareto?study=tiny&arch={key}", "Pareto front")
    arch_shown(page, key).first.wait_for()  # the link's arch, not the knee
    assert page.locator("[data-testid=stException]").count() == 0
    # the other device's table: flagged next to the chart, in words a user can act on
    choose(page, "Latency table (device, mode)", "2 threads")
    warning = page.locator("[data-testid=stAlertContentWarning]").first
    warning.wait_for()
    settle(page, "Pareto front")
    text = warning.inner_text()
    assert "not to be trusted" in text and "taskset" in text
    shoot(page, tmp_path, "pareto_unreliable_table")
    # stand-alone accuracy: only the audited archs are plotted, nothing else stands in
    choose(page, "Accuracy / loss from", "standalone")
    page.get_by_text("are not plotted").first.wait_for()
    settle(page, "Pareto front")
    traces = page.evaluate(POINTS)
    plotted = set(traces.get("archs", [])) | set(traces.get("stored front", []))
    assert 0 < len(plotted) <= 3  # the audit trained 3 archs stand-alone
    shoot(page, tmp_path, "pareto_standalone")
    page.close()


def test_history_parallel_and_architecture_pages(server, browser, study_store, tmp_path):
    page = open_page(browser, f"{server}/pareto", "Pareto front")
    page.get_by_text("Search history of run search").scroll_into_view_if_needed()
    settle(page, "Pareto front")
    names = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
        .map(g => g._fullData.map(t => t.type + ':' + t.name))""")
    flat = [n for chart in names for n in chart]
    assert "scatter:run search" in flat and any(n.startswith("parcoords") for n in flat)
    page.locator("[data-testid=stPlotlyChart]").nth(2).screenshot(
        path=str(tmp_path / "history.png"))
    shoot(page, tmp_path, "pareto_history")
    page.close()
    page = open_page(browser, f"{server}/architecture?study=tiny&arch={study_store.front[0]}",
                     "Architecture")
    arch_shown(page, study_store.front[0]).first.wait_for()
    bars = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
        .flatMap(g => g._fullData.filter(t => t.type === 'bar')
        .map(t => [Array.from(t.y), Array.from(t.error_y.arrayminus)]))""")
    assert bars, "no layer latency chart"
    for ys, minus in bars:
        assert all(m <= y + 1e-12 for y, m in zip(ys, minus))  # never below 0 ms
    shoot(page, tmp_path, "architecture_layers")
    page.close()
