"""Two languages in the page: every UI string comes from the catalogues, the page follows the browser's language, and
switching language leaves no string of the other language on the page: its text is scanned against both catalogues,
and a Chinese page may show no run of two or more Latin words unless it is a name the scene or its data gives.
Legend labels the model makes ("(no value)") and labels the scene gives per language follow the switch, and so do alert
titles, values and places, the pick card's H3 level, and the live sources' badges."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from browsing import chromium, twin_serve, wait_for_view
from playwright import sync_api
from test_explorer_controls import _high_risk, write_controls_scene

import twin
from twin.app import i18n

LAYER_TITLES = {"zh_CN": ("上海各区", "人流", "道路"), "en": ("Shanghai districts", "Crowd", "Roads")}
LEGEND_LABELS = {"zh_CN": ("主干道", "步行街", "（无值）", "高风险 ≥ 100"), "en": ("Primary", "Pedestrian", "(no value)", "high risk ≥ 100")}
"""Legend labels on each page: categories and H3 levels the scene labels per language, and the model's "(no value)"."""
ALERT_TEXTS = {"zh_CN": ("人流高风险", "高风险", "无数据"), "en": ("Crowd at high risk", "high risk", "no data for")}
"""In the alerts drawer: a rule's title given per language, the H3 level where it fired, a stale rule's value."""
_LATIN_RUN = re.compile(r"[A-Za-z][\w'’.-]*(?:[ \u00a0]+[A-Za-z][\w'’.-]*)+")


def latin_runs(text: str, names: set[str]) -> list[str]:
    """Runs of two or more Latin words on one line of ``text`` (a table cell or control is a line of its own) that are
    not part of a name in ``names`` (the scene's and its data's own names: ids, attribute names and values)."""
    runs = (m.group() for line in re.split(r"[\n\t]", text) for m in _LATIN_RUN.finditer(line))
    return sorted({run for run in runs if not any(run in name for name in names)})


def scene_names(scene_file: Path) -> set[str]:
    """Names a Chinese page may show as they are: the scene's name, layer ids, attribute names and text values of the data."""
    scene = twin.Scene.from_file(scene_file)
    names = {scene.name, *(layer.id for layer in scene.layers)}
    for layer in scene.layers:
        data = layer.data()
        names |= {str(c) for c in data.columns}
        names |= {str(v) for c in data.columns if c != "geometry" and data[c].dtype == object for v in data[c].dropna() if isinstance(v, str)}
    return names


def write_language_scene(folder: Path, shared: Path) -> Path:
    """The controls scene with its H3 levels named per language, and roads whose categories are labelled per language
    (one road has no kind: the model's "(no value)" entry)."""
    roads = folder / "roads.geojson"
    kinds = ["primary", "pedestrian", None]
    gpd.GeoDataFrame({"kind": kinds}, geometry=[shapely.LineString([(121.47 + 0.01 * i, 31.22), (121.48 + 0.01 * i, 31.25)]) for i in range(3)],
                     crs="EPSG:4326").to_file(roads)
    path = write_controls_scene(folder, shared)
    text = path.read_text(encoding="utf-8").replace("label: 正常,", "label: {zh_CN: 正常, en: normal},").replace("label: 高风险,", "label: {zh_CN: 高风险, en: high risk},")
    path.write_text(text + f"""  - id: roads
    type: vector
    title: {{zh_CN: 道路, en: Roads}}
    source: {{type: file, path: "{roads.as_posix()}"}}
    color_by: kind
    categories:
      primary: {{color: "#e0b44c", label: {{zh_CN: 主干道, en: Primary}}}}
      pedestrian: {{color: "#ff6f61", label: {{zh_CN: 步行街, en: Pedestrian}}}}
""", encoding="utf-8")
    return path


def only_in(lang: str) -> set[str]:
    """Literal parts (the {fields} cut out) of ``lang``'s texts that the other language never shows."""
    other = next(code for code in i18n.LANGUAGES if code != lang)
    theirs = set(i18n.messages(other).values())
    parts = set()
    for msgid, text in i18n.messages(lang).items():
        if text == i18n.messages(other).get(msgid) or text in theirs:
            continue
        for part in re.split(r"\{\w+\}", text):
            part = part.strip(" ·,:…()（）：，")
            if len(part) >= 2 and not any(part in t for t in theirs):
                parts.add(part)
    return parts


def found(text: str, parts: set[str]) -> list[str]:
    """The parts that occur in ``text``: Latin ones as whole words in any case (CSS may capitalise), Chinese ones anywhere."""
    hits = []
    for part in sorted(parts):
        pattern, flags = re.escape(part), 0
        if part.isascii():
            pattern, flags = rf"(?<![A-Za-z]){pattern}(?![A-Za-z])", re.IGNORECASE
        if re.search(pattern, text, flags):
            hits.append(part)
    return hits


def page_text(page: sync_api.Page) -> str:
    """What a reader sees and hears: the visible text, and titles and placeholders of the controls."""
    return str(page.evaluate("""() => [document.body.innerText,
        ...Array.from(document.querySelectorAll('[title], [placeholder]')).flatMap(e => [e.getAttribute('title') || '', e.getAttribute('placeholder') || ''])
    ].join('\\n')"""))


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """The language scene with two alert rules that fire at once (:data:`ALERTS`)."""
    path = write_language_scene(tmp_path_factory.mktemp("languages"), shared_data)
    path.write_text(path.read_text(encoding="utf-8") + ALERTS, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def url(scene_file: Path) -> Iterator[str]:
    with twin_serve(scene_file, scene_file.parent / "serve.log") as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with chromium() as launched:
        yield launched


def test_the_scan_knows_both_languages() -> None:
    assert {"图层", "实时"} <= only_in("zh_CN") and {"Layers", "Live"} <= only_in("en")
    assert found("图层 · 2 个单元", only_in("zh_CN")) == ["个单元", "图层"]
    assert found("Delivery status", only_in("en")) == [] and found("LIVE", only_in("en")) == ["LIVE", "Live", "live"]  # words, any case


def test_the_latin_rule_allows_only_names_of_the_scene() -> None:
    text = "图层\n(no value)\n外滩 Bund Finance Centre · 12 m\tnormal\tNanjing Road\nviridis\n加载中 Loading the scene …"
    assert latin_runs(text, {"Bund Finance Centre"}) == ["Loading the scene", "Nanjing Road", "no value"]
    assert latin_runs("人流 · 15 分钟\nRdYlGn_r\n1920 × 1080", set()) == []  # single words (colormaps, ids) and numbers pass


@pytest.mark.parametrize(("locale", "first"), [("en-US", "en"), ("zh-CN", "zh_CN")])
def test_the_page_follows_the_browser_and_the_switch_leaves_no_other_language(browser: sync_api.Browser, url: str, scene_file: Path, locale: str,
                                                                             first: str) -> None:
    names = scene_names(scene_file)
    page = browser.new_page(viewport={"width": 1400, "height": 800}, locale=locale)
    try:
        page.goto(url)
        page.wait_for_selector("#twin-live-btn", timeout=30_000)
        page.wait_for_selector('#twin-legend [data-layer-id="roads"]', timeout=60_000)
        page.wait_for_selector("#twin-loading", state="detached", timeout=60_000)  # every layer is in
        page.wait_for_function("() => document.querySelectorAll('#twin-alerts .twin-alert').length === 2", timeout=30_000)
        pixels = wait_for_view(page, lambda px: _high_risk(px).sum() > 30, 20, settle=False)  # pick a cell at level 高风险 / high risk
        ys, xs = np.nonzero(_high_risk(pixels))
        box = page.locator("#twin-view").bounding_box()
        assert box is not None
        scale = pixels.shape[1] / box["width"]
        page.mouse.click(box["x"] + float(np.median(xs)) / scale, box["y"] + float(np.median(ys)) / scale)
        page.locator("#twin-pick").wait_for(timeout=10_000)
        for lang in (first, *(code for code in i18n.LANGUAGES if code != first)):
            if lang != first:
                page.locator(f"#twin-lang .twin-lang-{lang}").click()
            page.locator(f"#twin-layers .twin-layer-title >> text={LAYER_TITLES[lang][0]}").wait_for(timeout=10_000)
            page.wait_for_function("t => document.body.innerText.includes(t)", arg=i18n.messages(lang)["Colour by"], timeout=10_000)
            text = page_text(page)
            other = next(code for code in i18n.LANGUAGES if code != lang)
            assert found(text, only_in(other)) == [], f"{lang} page shows {other} text: {text}"
            assert i18n.messages(lang)["Layers"].upper() in text.upper() and i18n.messages(lang)["Colour by"] in text
            assert all(title in text for title in LAYER_TITLES[lang])  # the scene's titles in the page's language
            assert [title for title in LAYER_TITLES[other] if title in text] == []
            legend = page.locator("#twin-legend").inner_text()
            assert all(label in legend for label in LEGEND_LABELS[lang]), legend  # the scene's labels and the model's, in the page's language
            assert not any(label in legend for label in LEGEND_LABELS[other]), legend
            alerts = page.locator("#twin-alerts").inner_text()
            assert all(t in alerts for t in ALERT_TEXTS[lang]) and not any(t in alerts for t in ALERT_TEXTS[other]), alerts
            level = dict(row.split("\t", 1) for row in page.locator("#twin-pick table").inner_text().splitlines() if "\t" in row)["level"]
            assert level == ALERT_TEXTS[lang][1]  # the pick card names the H3 level in the page's language
            if lang == "zh_CN":
                assert latin_runs(text, names) == [], "the Chinese page shows English"
    finally:
        page.close()


def _roads_scene(folder: Path, categories: str) -> Path:
    roads = folder / "roads.geojson"
    gpd.GeoDataFrame({"kind": ["primary", "secondary", None]}, geometry=[shapely.Point(121.48 + 0.01 * i, 31.23) for i in range(3)],
                     crs="EPSG:4326").to_file(roads)
    path = folder / "roads.yaml"
    path.write_text(f"version: 1\nlayers:\n  - id: roads\n    type: vector\n    source: {{type: file, path: \"{roads.as_posix()}\"}}\n"
                    f"    color_by: kind\n    categories: {categories}\n", encoding="utf-8")
    return path


def test_category_labels_per_language_reach_the_legend_and_round_trip(tmp_path: Path) -> None:
    from twin.app.legend import MODEL_MESSAGES, entry_labels
    from twin.style import NO_VALUE

    path = _roads_scene(tmp_path, '{primary: {color: "#e0b44c", label: {zh_CN: 主干道, en: Primary}}, secondary: "#8592a6"}')
    scene = twin.Scene.from_file(path)
    legend = scene["roads"].visual(scene.frame).style.legend
    assert [(e.label, e.color) for e in legend.entries] == [("主干道", (224, 180, 76, 255)), ("secondary", (133, 146, 166, 255)), (NO_VALUE, (158, 158, 158, 255))]
    assert [entry_labels(e) for e in legend.entries] == [{"zh_CN": "主干道", "en": "Primary"}, {"zh_CN": "secondary", "en": "secondary"},
                                                         {"zh_CN": "（无值）", "en": "(no value)"}]  # data values stay as they are
    assert NO_VALUE in MODEL_MESSAGES
    assert scene.to_dict()["layers"][0]["categories"] == {"primary": {"color": "#e0b44c", "label": {"zh_CN": "主干道", "en": "Primary"}},
                                                          "secondary": "#8592a6"}  # the plain form stays plain


@pytest.mark.parametrize(
    ("categories", "message"),
    [('{primary: {color: "#e0b44c", label: {zh_CN: "", en: Primary}}}', "categories.primary.label: Value error, the zh_CN text is empty"),
     ('{primary: {color: "#e0b44c", label: {Chinese: 主干道}}}', "categories.primary.label: Value error, 'Chinese' is not a language tag like zh_CN or en"),
     ('{primary: {color: nocolour, label: 主干道}}', "categories.primary.color: Value error, invalid colour 'nocolour'"),
     ('{primary: {colour: "#e0b44c"}}', "categories.primary.color: required key is missing")],
)
def test_a_bad_category_names_its_line_and_key(tmp_path: Path, categories: str, message: str) -> None:
    from twin.errors import TwinError

    with pytest.raises(TwinError) as caught:
        twin.Scene.from_file(_roads_scene(tmp_path, categories))
    assert str(caught.value).startswith(f"{tmp_path / 'roads.yaml'}:7: layers[0].{message}"), str(caught.value)


def test_h3_level_names_per_language_reach_the_legend() -> None:
    from twin_layers.h3_layer import Level

    from twin.app.legend import entry_labels

    named = Level(at=100, label={"zh_CN": "高风险", "en": "high risk"}, color="#ff3b30").entry()
    assert (named.label, entry_labels(named)) == ("高风险 ≥ 100", {"zh_CN": "高风险 ≥ 100", "en": "high risk ≥ 100"})
    plain = Level(at=0, label="正常", color="#2ecc71").entry()
    assert entry_labels(plain) == {"zh_CN": "正常 ≥ 0", "en": "正常 ≥ 0"}  # one label: the scene's own, in every language


# -- model text the app shows: alerts, the pick card, legends and badges of live layers ------------------------------------
ALERTS = """alerts:
  - {id: crowd_high, kind: threshold, layer: crowd, above: 200, severity: critical, title: {zh_CN: 人流高风险, en: Crowd at high risk}}
  - {id: crowd_quiet, kind: stale, layer: crowd, max_age: 1s, title: 客流中断}
"""
"""A rule titled per language (fires on the Bund's cell, 300 in its window, level 高风险 / high risk) and one titled in one
language, the older form (fires: the newest reading is older than a second)."""


def _alert_scene(tmp_path: Path, shared: Path) -> twin.Scene:
    path = write_language_scene(tmp_path, shared)
    path.write_text(path.read_text(encoding="utf-8") + ALERTS, encoding="utf-8")
    return twin.Scene.from_file(path)


def _ticked(scene: twin.Scene) -> tuple[list[object], dt.datetime]:
    events: list[object] = []
    scene.alert_engine.subscribe(events.append)
    now = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)
    scene.tick(now)
    return events, now


def test_alert_titles_values_and_places_are_written_in_the_pages_language(tmp_path: Path, shared_data: Path) -> None:
    from twin.alerts.engine import LAYER_KEY
    from twin.app.live import LAYER_WIDE, alert_rows, event_row

    scene = _alert_scene(tmp_path, shared_data)
    events, now = _ticked(scene)
    rows = {lang: {row["id"].split(":")[0]: row for row in alert_rows(scene.alert_engine, scene, now, lang)} for lang in i18n.LANGUAGES}
    high, quiet = rows["zh_CN"]["crowd_high"], rows["zh_CN"]["crowd_quiet"]
    assert (high["title"], high["name"], high["value"]) == ("人流高风险", "高风险", "300")
    assert quiet["title"] == "客流中断" and re.fullmatch(r"2 分(钟| \d+ 秒) 无数据", quiet["value"]), quiet["value"]
    assert re.fullmatch(r"\d+ (分钟|秒)|\d+ 分 \d+ 秒", high["duration"]), high["duration"]
    high, quiet = rows["en"]["crowd_high"], rows["en"]["crowd_quiet"]
    assert (high["title"], high["name"], high["value"]) == ("Crowd at high risk", "high risk", "300")
    assert quiet["title"] == "客流中断" and re.fullmatch(r"no data for 2 min( \d+ s)?", quiet["value"]), quiet["value"]  # one title: as written
    assert re.fullmatch(r"\d+ (min|s)|\d+ min \d+ s", high["duration"]), high["duration"]
    assert (rows["zh_CN"]["crowd_quiet"]["key"], quiet["key"]) == ("（整个图层）", "(layer)")  # an alert on the whole layer, in words
    assert LAYER_WIDE == LAYER_KEY  # the engine's key is the catalogue's msgid
    firing = next(e for e in events if e.kind == "firing" and e.alert["rule_id"] == "crowd_high")  # type: ignore[attr-defined]
    assert firing.alert["title"] == "人流高风险"  # type: ignore[attr-defined]  # the alert records the first language (logs, notebooks)
    assert [event_row(firing, 1, scene, lang)["title"] for lang in ("zh_CN", "en")] == ["人流高风险", "Crowd at high risk"]  # type: ignore[arg-type]
    assert [event_row(firing, 1, scene, lang)["name"] for lang in ("zh_CN", "en")] == ["高风险", "high risk"]  # type: ignore[arg-type]
    assert [rule["title"] for rule in scene.to_dict()["alerts"]] == [{"zh_CN": "人流高风险", "en": "Crowd at high risk"}, "客流中断"]  # round trip


@pytest.mark.parametrize(
    ("title", "message"),
    [("{zh_CN: 人流高风险, en: ''}", "title: Value error, the en text is empty"),
     ("{Chinese: 人流高风险}", "title: Value error, 'Chinese' is not a language tag like zh_CN or en"),
     ("[人流, 高风险]", "title: Value error, expected a text, or one per language like {zh_CN: 主干道, en: Primary}; got ['人流', '高风险']"),
     ("{zh_CN: 人流高风险, en: 300}", "title: Value error, expected a text, or one per language like {zh_CN: 主干道, en: Primary}; got {'zh_CN': '人流高风险', 'en': 300}")],
)
def test_a_bad_alert_title_names_its_line_and_key(tmp_path: Path, shared_data: Path, title: str, message: str) -> None:
    from twin.errors import TwinError

    path = write_language_scene(tmp_path, shared_data)
    text = path.read_text(encoding="utf-8")
    line = text.count("\n") + 2
    path.write_text(text + ALERTS.replace("{zh_CN: 人流高风险, en: Crowd at high risk}", title), encoding="utf-8")
    with pytest.raises(TwinError) as caught:
        twin.Scene.from_file(path)
    assert str(caught.value) == f"{path}:{line}: alerts[0].{message}"


def test_the_kiosk_banner_and_the_alerts_panel_follow_the_language(tmp_path: Path, shared_data: Path) -> None:
    from twin.alerts import AlertEvent
    from twin.app.server import TwinApp
    from twin.session.hall import Banner, HallAlert

    scene = _alert_scene(tmp_path, shared_data)
    app = TwinApp(scene, view_mode="remote", kiosk=True)
    try:
        _, now = _ticked(scene)
        alert = next(a for a in scene.alert_engine.firing() if a.rule_id == "crowd_high")
        for lang, title, level in (("zh_CN", "人流高风险", "高风险"), ("en", "Crowd at high risk", "high risk")):
            app.i18n.switch(lang)
            banner = app.kiosk._banner(Banner(HallAlert.of(alert), 0.0))
            assert banner is not None and (banner["title"], banner["name"]) == (title, level)
            app.alerts.refresh(now)
            row = next(r for r in app.state.twin_alerts if r["id"] == alert.id)
            assert (row["title"], row["name"]) == (title, level)
        app.alerts._on_event(AlertEvent("firing", alert.to_dict(), now))
        assert app.state.twin_events[0]["title"] == "Crowd at high risk"
        app.i18n.switch("zh_CN")
        app.alerts.refresh(now)
        assert app.state.twin_events[0]["title"] == "人流高风险"  # the log is written again in the page's language
    finally:
        app.view.close()


def test_the_pick_card_names_an_h3_level_in_each_language(tmp_path: Path, shared_data: Path) -> None:
    from twin.app.pick_card import pick_dict
    from twin.session import Selection

    scene = _alert_scene(tmp_path, shared_data)
    _ticked(scene)
    crowd = scene["crowd"]
    row = int(crowd.data()["value"].to_numpy().argmax())
    attributes = crowd.data().iloc[row].drop(labels="geometry").to_dict()
    card = pick_dict(scene, Selection("crowd", row, attributes))
    rows = {name: (text, per_lang) for name, text, per_lang in card["attributes"]}
    assert rows["level"] == ("高风险", {"zh_CN": "高风险", "en": "high risk"})
    assert rows["state"] == ("active", None) and rows["cell"][1] is None  # data values stay as they are
    assert card["titles"] == {"zh_CN": "人流", "en": "Crowd"}


def test_the_flood_legend_and_live_badges_speak_the_pages_language() -> None:
    from twin_layers.flood import FloodPointsLayer

    from twin.app.legend import entry_labels, legend_dict
    from twin.app.live import layer_live_info
    from twin.app.source_badges import source_row
    from twin.style import Legend, LegendEntry

    titles = {"zh_CN": "积水", "en": "Waterlogging"}
    legend = Legend(title="积水深度 ≥15/20 cm", titles={"zh_CN": "积水深度 ≥15/20 cm", "en": "water depth ≥15/20 cm"})
    assert legend_dict("flood", "积水", legend, titles)["titles"] == {"zh_CN": "积水: 积水深度 ≥15/20 cm", "en": "Waterlogging: water depth ≥15/20 cm"}
    flood = FloodPointsLayer("flood", title=titles, source={"type": "flood_sim"})
    entries = [LegendEntry.of(text, (0, 0, 0, 255)) for text in flood.params.level_labels.values()]
    assert [entry_labels(e) for e in entries][:2] == [{"zh_CN": "正常", "en": "normal"}, {"zh_CN": "预警", "en": "warning"}]
    now = dt.datetime(2026, 7, 1, 10, tzinfo=dt.timezone.utc)
    flood.health.last_success, flood.health.newest_reading = now, now - dt.timedelta(minutes=1)
    flood.health.dropped.update({"bad_value": 2, "future_time": 1})
    assert [source_row(flood, now, lang)["title"] for lang in ("zh_CN", "en")] == ["积水", "Waterlogging"]
    assert "；已丢弃 2 数值无效, 1 时间超前" in layer_live_info(flood, now, "zh_CN")["tip"]
    assert "; dropped 2 bad value, 1 in the future" in layer_live_info(flood, now, "en")["tip"]


def test_the_loading_card_speaks_the_pages_language(browser: sync_api.Browser, shared_data: Path, tmp_path: Path) -> None:
    """While a live layer's first poll waits on its server, the card over the view lists each layer by its title and its
    progress in the page's language, and follows the switch."""
    from browsing import wait_for_language
    from test_app_startup import _HeldFeed

    feed = _HeldFeed()
    threading.Thread(target=feed.serve_forever, daemon=True).start()
    scene = tmp_path / "loading.yaml"
    scene.write_text(
        "version: 1\nname: 外滩\nframe: {crs: auto}\nlayers:\n"
        f"  - {{id: districts, type: vector, title: {{zh_CN: 上海各区, en: Shanghai districts}}, "
        f"source: {{type: file, path: '{(shared_data / 'shanghai_districts_gcj02.geojson').as_posix()}', crs: GCJ02}}}}\n"
        f"  - {{id: gauges, type: flood_points, title: {{zh_CN: 积水, en: Waterlogging}}, source: {{type: ogcapi_readings, "
        f"url: 'http://127.0.0.1:{feed.server_address[1]}/', collection: gauges, timeout: 60, retries: 0}}}}\n", encoding="utf-8")
    expected = {"zh_CN": ("场景加载中", "上海各区", "就绪", "积水", "首次轮询中"), "en": ("Loading the scene", "Shanghai districts", "ready", "Waterlogging",
                                                                       "first poll")}
    try:
        with twin_serve(scene, tmp_path / "serve.log") as url:
            page = browser.new_page(viewport={"width": 1400, "height": 800}, locale="en-US")
            try:
                page.goto(url)
                wait_for_language(page)
                card = page.locator("#twin-loading")
                for lang in ("en", "zh_CN"):
                    if lang != "en":
                        page.locator(f"#twin-lang .twin-lang-{lang}").click()
                    page.wait_for_function("([t, s]) => { const c = document.querySelector('#twin-loading');"
                                           " return c && c.innerText.includes(t) && c.innerText.includes(s); }", arg=list(expected[lang][3:]), timeout=60_000)
                    text = card.inner_text()
                    other = "zh_CN" if lang == "en" else "en"
                    assert all(part in text for part in expected[lang]), text
                    assert not any(part in text for part in expected[other]), text
                    if lang == "zh_CN":
                        assert latin_runs(text, set()) == [], text
            finally:
                page.close()
    finally:
        feed.release.set()
        feed.shutdown()
        feed.server_close()
