"""The app served on 127.0.0.1 and driven by Playwright in Debian's Chromium: the Pareto plot
shows every stored point, clicking a point shows its architecture, Export downloads a zip of
the model files, and every page renders. Screenshots are written to the test's tmp dir (and
to ``$NAS_UI_SCREENSHOTS`` when set, to refresh the README's)."""

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

from ui import streamlit_command

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
  return [box.left + fl.xaxis._offset + fl.xaxis.l2p(t.x[i]),
          box.top + fl.yaxis._offset + fl.yaxis.l2p(t.y[i])]; }"""


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
        shutil.copy(path, Path(wanted) / path.name)
    return path


def arch_shown(page, key: str):
    return page.locator("[data-testid=stMarkdown] code", has_text=key)


def test_pareto_plot_click_and_export(server, browser, study_store, tmp_path):
    page = open_page(browser, f"{server}/pareto", "Pareto front")
    traces = page.evaluate(POINTS)
    assert set(traces) == {"archs", "stored front"}
    assert sorted(traces["archs"] + traces["stored front"]) == sorted(study_store.archs)
    assert traces["stored front"] == list(study_store.front)
    assert shoot(page, tmp_path, "pareto").stat().st_size > 10_000

    key = study_store.front[-1]
    assert arch_shown(page, key).count() == 0
    x, y = page.evaluate(POINT_XY, ["stored front", len(study_store.front) - 1])
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    arch_shown(page, key).first.wait_for()
    settle(page, "Pareto front")
    assert page.locator(".js-plotly-plot").count() == 2  # the front and the arch's diagram
    shoot(page, tmp_path, "pareto_picked")

    page.get_by_role("button", name="Open in the Architecture page").click()
    page.wait_for_url("**/architecture")
    settle(page, "Architecture")
    arch_shown(page, key).first.wait_for()
    page.get_by_role("button", name="Export", exact=True).click()
    download_button = page.get_by_role("button", name=f"Download tiny-{key}.zip")
    download_button.wait_for(timeout=180_000)
    with page.expect_download() as info:
        download_button.click()
    data = Path(info.value.path()).read_bytes()
    names = {Path(n).name for n in zipfile.ZipFile(io.BytesIO(data)).namelist()}
    assert {"arch.json", "layers.json", "weights.pt", "model.torchscript.pt",
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
        page.wait_for_url(f"**/{path}")
        settle(page, title)
        assert page.locator("[data-testid=stException]").count() == 0, title
        assert page.locator(".js-plotly-plot").count() >= 1, title
        shoot(page, tmp_path, path)
    page.close()
