"""Two languages in the page: every UI string comes from the catalogues, the page follows the browser's language, and
switching language leaves no string of the other language on the page (its text scanned against both catalogues)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browsing import chromium, twin_serve
from playwright import sync_api
from test_explorer_controls import write_controls_scene

from twin.app import i18n

LAYER_TITLES = {"zh_CN": ("上海各区", "人流"), "en": ("Shanghai districts", "Crowd")}


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
def url(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("languages")
    with twin_serve(write_controls_scene(folder, shared_data), folder / "serve.log") as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with chromium() as launched:
        yield launched


def test_the_scan_knows_both_languages() -> None:
    assert {"图层", "实时"} <= only_in("zh_CN") and {"Layers", "Live"} <= only_in("en")
    assert found("图层 · 2 个单元", only_in("zh_CN")) == ["个单元", "图层"]
    assert found("Delivery status", only_in("en")) == [] and found("LIVE", only_in("en")) == ["LIVE", "Live", "live"]  # words, any case


@pytest.mark.parametrize(("locale", "first"), [("en-US", "en"), ("zh-CN", "zh_CN")])
def test_the_page_follows_the_browser_and_the_switch_leaves_no_other_language(browser: sync_api.Browser, url: str, locale: str, first: str) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 800}, locale=locale)
    try:
        page.goto(url)
        page.wait_for_selector("#twin-live-btn", timeout=30_000)
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
            assert not any(title in text for title in LAYER_TITLES[other])
    finally:
        page.close()
