"""The app under `streamlit.testing.v1.AppTest`: every page renders on a store with a real
study and on an empty store; the Pareto figure holds the stored points and the front."""

from __future__ import annotations

import json
import math

import pytest
from streamlit.testing.v1 import AppTest

from nas.app_launch import APP_PATH
from nas.storage import open_store
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
    assert set(traces) == {"archs", "stored front", "knee", "exported"}
    knee, exported = stored_knee(study_store), exported_arch(study_store)
    assert traces["knee"]["customdata"] == [knee] and traces["exported"]["customdata"] == [
        exported]
    assert at.selectbox(key="pareto_pick").value == knee  # the default pick: the knee
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


def stored_knee(study_store) -> str:
    from nas.search.session import front_knee_key

    with open_store(study_store.url) as store:
        run = store.list_search_runs(study=study_store.study)[-1]
        return front_knee_key(store.get_front(study=study_store.study, run=run.name),
                              run.config)


def exported_arch(study_store) -> str:
    with open_store(study_store.url) as store:
        return store.get_stage_status(study=study_store.study, stage="export").detail["arch"]


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
    assert {"archs", "non-dominated", "knee"} <= set(data) <= {"archs", "non-dominated",
                                                              "knee", "exported"}
    assert data["knee"]["customdata"][0] in data["non-dominated"]["customdata"]
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


def plotted_values(at: AppTest, column: str = "y") -> dict[str, float]:
    out = {}
    for t in figure(at)["data"]:
        if t["name"] in ("archs", "stored front", "non-dominated"):
            out.update(zip(t["customdata"], t[column]))
    return out


def test_a_missing_source_stays_missing(study_store):
    """Standalone accuracy is the audit's test accuracy (mean over seeds) for the audited
    archs only; the other archs, front members included, are not plotted from another
    source. The predictor has no accuracy at all."""
    at = app(study_store.url)
    at.switch_page("app_pages/pareto.py").run()
    at.selectbox[2].set_value("standalone").run()
    assert_clean(at, "pareto standalone")
    with open_store(study_store.url) as store:
        runs = {}
        for e in store.get_evaluations(study=study_store.study, source="standalone",
                                       metric="test_accuracy"):
            runs.setdefault(e.arch_key, []).append(e.value)
    got = plotted_values(at)
    assert set(got) == set(runs)  # only what stand-alone training measured
    for key, values in runs.items():
        assert got[key] == pytest.approx(sum(values) / len(values))
    assert "standalone training, test split" in figure(at)["layout"]["yaxis"]["title"]["text"]
    assert any("are not plotted" in i.value for i in at.info)
    hover = " ".join(t.get("hovertext", [""])[0] for t in figure(at)["data"]
                     if t["name"] == "archs" and t.get("hovertext"))
    assert "supernet" not in hover.split("latency")[0]
    at.selectbox[2].set_value("predictor").run()
    assert_clean(at, "pareto predictor")
    assert "accuracy" not in at.selectbox[4].options  # the predictor estimates loss only


def test_latency_verdict_shown_wherever_latency_is_plotted(study_store):
    at = app(study_store.url)
    at.switch_page("app_pages/pareto.py").run()
    assert any("trusted" in c.value for c in at.caption)
    assert not at.warning
    noisy = next(o for o in at.selectbox[1].options if "2 threads" in o)
    at.selectbox[1].set_value(noisy).run()
    assert_clean(at, "pareto noisy table")
    text = " ".join(w.value for w in at.warning)
    assert "not to be trusted" in text and "taskset" in text and "repeat" in text
    hover = " ".join(h for t in figure(at)["data"] for h in (t.get("hovertext") or []))
    assert "UNRELIABLE" in hover
    at.switch_page("app_pages/architecture.py").run()
    at.selectbox[1].set_value(noisy).run()
    assert_clean(at, "architecture noisy table")
    assert any("not to be trusted" in w.value for w in at.warning)
    bars = next(figure(at, i) for i in range(len(at.get("plotly_chart")))
                if figure(at, i)["data"][0].get("type") == "bar")["data"][0]
    assert max(bars["error_y"]["array"]) > min(bars["y"])  # an unclipped bar would dip < 0
    assert all(m <= y + 1e-12 for m, y in zip(bars["error_y"]["arrayminus"], bars["y"]))
    at.switch_page("app_pages/latency.py").run()
    assert_clean(at, "latency")
    frame = at.dataframe[1].value
    assert any("repeat ceiling" in p for p in frame["prediction"])


def test_overlays_log_axis_and_no_empty_baseline_toggle(study_store):
    at = app(study_store.url)
    at.switch_page("app_pages/pareto.py").run()
    labels = [t.label for t in at.toggle]
    assert "Log latency axis" in labels
    assert not any("baseline" in t for t in labels)  # the benchmark's archs are elsewhere
    log = next(t for t in at.toggle if t.label == "Log latency axis")
    log.set_value(True).run()
    assert figure(at)["layout"]["xaxis"]["type"] == "log"
    other = at.multiselect[0].options[0]
    at.multiselect[0].set_value([other]).run()
    assert_clean(at, "pareto overlay")
    names = {t["name"] for t in figure(at)["data"]}
    assert {f"front: {other}", f"knee: {other}"} <= names
    annotations = figure(at)["layout"].get("annotations", [])
    assert all(a.get("yanchor") != "top" or a.get("y", 0) < 0.5 for a in annotations
               if "budget" in a.get("text", ""))


def test_history_and_parallel_coordinates(study_store):
    at = app(study_store.url)
    at.switch_page("app_pages/pareto.py").run()
    charts = [figure(at, i) for i in range(len(at.get("plotly_chart")))]
    history = next(c for c in charts if c["layout"].get("yaxis", {}).get("title", {}).get(
        "text", "").startswith("hypervolume"))
    xs, ys = history["data"][0]["x"], history["data"][0]["y"]
    assert history["data"][0]["name"] == "run search"
    assert xs[-1] == 10 and all(b >= a for a, b in zip(ys, ys[1:])) and ys[-1] > 0
    parallel = next(c for c in charts if c["data"][0]["type"] == "parcoords")
    labels = [d["label"] for d in parallel["data"][0]["dimensions"]]
    assert "stage2 depth" in labels and "validation accuracy" in labels


def test_deep_link_opens_the_study_and_arch(study_store):
    key = next(k for k in study_store.front if k != stored_knee(study_store))
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.session_state[URL_KEY] = study_store.url
    at.query_params["study"] = study_store.study
    at.query_params["arch"] = key
    at.run()
    at.switch_page("app_pages/pareto.py").run()
    assert_clean(at, "pareto deep link")
    assert at.selectbox(key="pareto_pick").value == key
    assert at.query_params["arch"] == [key] or at.query_params["arch"] == key
    other = study_store.front[0] if study_store.front[0] != key else study_store.front[1]
    at.selectbox(key="pareto_pick").set_value(other).run()
    assert at.query_params["arch"] in ([other], other)


def test_training_chart_labels_the_loss_kinds(study_store):
    at = app(study_store.url)
    at.switch_page("app_pages/training.py").run()
    assert_clean(at, "training")
    loss = figure(at, 0)
    titles = [a["text"] for a in loss["layout"]["annotations"]]
    assert any("cross-entropy" in t for t in titles)
    assert any("distillation" in t for t in titles)
    names = {t["name"] for t in loss["data"]}
    assert "largest subnet (cross-entropy)" in names
    assert all("distillation" in n for n in names if not n.startswith("largest"))
    assert "search:search" not in at.selectbox[0].options  # search histories are not runs


def test_empty_states_name_the_real_store(empty_store_url):
    at = app(empty_store_url)
    shown = empty_store_url  # sqlite URLs are shown as they are
    for page in ("studies", "pareto", "latency"):
        at.switch_page(f"app_pages/{page}.py").run()
        commands = " ".join(c.value for c in at.code)
        assert f"--storage {shown}" in commands and "--storage URL" not in commands, page
