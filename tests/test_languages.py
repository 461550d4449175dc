"""Two languages in the page: every UI string comes from the catalogues, the page follows the browser's language, and
switching language leaves no string of the other language on the page: its text is scanned against both catalogues,
and a Chinese page may show no run of two or more Latin words unless it is a name the scene or its data gives.
Legend labels the model makes ("(no value)") and labels the scene gives per language follow the switch."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from browsing import chromium, twin_serve
from playwright import sync_api
from test_explorer_controls import write_controls_scene

import twin
from twin.app import i18n

LAYER_TITLES = {"zh_CN": ("上海各区", "人流", "道路"), "en": ("Shanghai districts", "Crowd", "Roads")}
LEGEND_LABELS = {"zh_CN": ("主干道", "步行街", "（无值）", "高风险 ≥ 100"), "en": ("Primary", "Pedestrian", "(no value)", "high risk ≥ 100")}
"""Legend labels on each page: categories and H3 levels the scene labels per language, and the model's "(no value)"."""
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
    return write_language_scene(tmp_path_factory.mktemp("languages"), shared_data)


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
        for lang in (first, *(code for code in i18n.LANGUAGES if code != first)):
            if lang != first:
                page.locator(f"#twin-lang .twin-lang-{lang}").click()
            page.locator(f"#twin-layers .twin-layer-title >> text={LAYER_TITLES[lang][0]}").wait_for(timeout=10_000)
            page.wait_for_function("t => document.body.innerText.includes(t)", arg=i18n.messages(lang)["Colour by"], timeout=10_000)
            text = page_text(page)
            other = next(code for code in i18n.LANGUAGES if code != lang)
            assert found(text, only_in(other)) == [], f"{lang} page shows {other} text"
            assert i18n.messages(lang)["Layers"].upper() in text.upper() and i18n.messages(lang)["Colour by"] in text
            assert all(title in text for title in LAYER_TITLES[lang])  # the scene's titles in the page's language
            assert [title for title in LAYER_TITLES[other] if title in text] == []
            legend = page.locator("#twin-legend").inner_text()
            assert all(label in legend for label in LEGEND_LABELS[lang]), legend  # the scene's labels and the model's, in the page's language
            assert not any(label in legend for label in LEGEND_LABELS[other]), legend
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
