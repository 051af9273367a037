"""The app under `streamlit.testing.v1.AppTest`: every page renders on a store with a real
study and on an empty store; the Pareto figure holds the stored points and the front."""

from __future__ import annotations

import json
import math

import pytest
from streamlit.testing.v1 import AppTest

from nas.storage import open_store
from ui import APP_PATH
from ui.page_context import URL_KEY

PAGES = ("studies", "pareto", "architecture", "training", "latency", "predictor")


def app(url: str) -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.session_state[URL_KEY] = url
    return at.run()


def assert_clean(at: AppTest, page: str) -> None:
    assert not at.exception, f"{page}: {[e.value for e in at.exception]}"
    assert not at.error, f"{page}: {[e.value for e in at.error]}"


def figure(at: AppTest, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


@pytest.mark.parametrize("which", ["study", "empty"])
def test_every_page_renders(which, request):
    url = (request.getfixturevalue("study_store").url if which == "study"
           else request.getfixturevalue("empty_store_url"))
    at = app(url)
    assert_clean(at, "studies")
    for page in PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        assert_clean(at, page)
        text = " ".join(str(e.value) for e in [*at.markdown, *at.info, *at.title])
        if which == "empty":
            assert "nas run" in " ".join(c.value for c in at.code) or "nas profile" in \
                " ".join(c.value for c in at.code), f"{page}: no next step shown"
            assert not at.get("plotly_chart"), page
        else:
            assert at.get("plotly_chart") or page == "studies", f"{page}: no chart\n{text}"


def test_pareto_figure_holds_the_stored_points_and_front(study_store):
    at = app(study_store.url)
    at.switch_page("app_pages/pareto.py").run()
    assert_clean(at, "pareto")
    traces = {t["name"]: t for t in figure(at)["data"]}
    assert set(traces) == {"archs", "stored front"}
    plotted = traces["archs"]["customdata"] + traces["stored front"]["customdata"]
    with open_store(study_store.url) as store:
        accuracy = {e.arch_key for e in store.get_evaluations(
            study=study_store.study, metric="val_accuracy")}
    assert sorted(plotted) == sorted(k for k in study_store.archs if k in accuracy)
    assert traces["stored front"]["customdata"] == list(study_store.front)  # by latency
    assert traces["stored front"]["mode"] == "lines+markers"
    # the budget slider dims what is slower than the budget
    budget = sorted(study_store.latency_ms.values())[len(study_store.latency_ms) // 2]
    at.slider[0].set_value(budget).run()
    archs = {t["name"]: t for t in figure(at)["data"]}["archs"]
    dimmed = {k for k, o in zip(archs["customdata"], archs["marker"]["opacity"]) if o < 0.5}
    assert dimmed == {k for k in archs["customdata"] if study_store.latency_ms[k] > budget}


def test_picking_an_arch_shows_it_and_opens_the_architecture_page(study_store):
    at = app(study_store.url)
    at.switch_page("app_pages/pareto.py").run()
    key = study_store.front[-1]
    at.selectbox(key="pareto_pick").set_value(key).run()
    assert_clean(at, "pareto")
    assert any(key in m.value for m in at.markdown)
    ring = {t["name"]: t for t in figure(at)["data"]}["stored front"]["marker"]["line"]["width"]
    assert ring[study_store.front.index(key)] > 1  # the picked point is ringed
    next(b for b in at.button if b.label == "Open in the Architecture page").click().run()
    assert_clean(at, "architecture")
    assert at.selectbox(key="architecture_pick").value == key
    other = next(k for k in study_store.archs if k != key)
    at.switch_page("app_pages/architecture.py")  # AppTest reruns the page it was told
    at.selectbox[2].set_value(other).run()  # compare
    assert at.selectbox(key="architecture_pick").value == key
    assert_clean(at, "architecture compare")
    assert len(at.get("plotly_chart")) >= 4  # diagram, layer latency, two diagrams


def test_other_objectives_and_no_search_run(study_store):
    at = app(study_store.url)
    at.switch_page("app_pages/pareto.py").run()
    at.selectbox[0].set_value(at.selectbox[0].options[-1]).run()  # no search run
    at.selectbox[3].set_value("flops").run()
    at.selectbox[4].set_value("loss").run()
    assert_clean(at, "pareto flops/loss")
    data = {t["name"]: t for t in figure(at)["data"]}
    assert set(data) == {"archs", "non-dominated"}
    n = len(data["archs"]["customdata"]) + len(data["non-dominated"]["customdata"])
    assert n == len(study_store.archs)


def test_latency_page_shows_a_heatmap_per_mixer(study_store):
    at = app(study_store.url)
    at.switch_page("app_pages/latency.py").run()
    assert_clean(at, "latency")
    titles = [figure(at, i)["layout"]["title"]["text"] for i in range(len(at.get("plotly_chart")))]
    assert set(titles) <= {"attention", "glu_mlp", "ssm", "conv"} and len(titles) >= 2
    assert any(math.isfinite(v) for v in at.dataframe[1].value["MAPE %"])  # validation rows


def test_predictor_page_shows_the_stored_audit(study_store):
    at = app(study_store.url)
    at.switch_page("app_pages/predictor.py").run()
    assert_clean(at, "predictor")
    summary = at.dataframe[0].value
    assert list(summary["against stand-alone"]) == [
        "supernet (inherited weights)", "predictor", "FLOPs alone (floor)",
        "seed-to-seed (noise ceiling)"]
    assert summary["Kendall tau"].str.match(r"[+-]\d\.\d{3} \[").all()
    audit = next(figure(at, i) for i in range(len(at.get("plotly_chart")))
                 if figure(at, i)["data"][0]["name"] == "audited archs")
    assert len(audit["data"][0]["customdata"]) == 3
    with open_store(study_store.url) as store:
        stage = store.get_stage_status(study=study_store.study, stage="audit")
    assert sorted(audit["data"][0]["customdata"]) == sorted(
        r["arch_key"] for r in stage.detail["rows"])
