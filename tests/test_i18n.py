"""The app's message catalogues: every UI msgid in the code has a Chinese and an English entry, and the helpers
that put them in templates and pick a browser's language."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from twin.app import i18n

APP = Path(i18n.__file__).parent
KEYWORDS = {"tr": None, "tr_expr": None, "tr_fmt": None, "gettext": (2,), "N_": None}


@functools.cache
def used_msgids() -> set[str]:
    """Every msgid the app's code passes to tr/tr_expr/tr_fmt/gettext (Babel's own extractor, as `make messages` runs it)."""
    found = extract_from_dir(str(APP), method_map=[("**.py", "python")], keywords=KEYWORDS)
    return {message for _file, _line, message, _comments, _context in found if isinstance(message, str)}


def test_the_code_uses_catalogued_strings() -> None:
    assert {"Layers", "Reset view"} <= used_msgids()


@pytest.mark.parametrize("lang", sorted(i18n.LANGUAGES))
def test_every_msgid_is_in_each_catalogue(lang: str) -> None:
    catalogue = i18n.messages(lang)
    missing = sorted(used_msgids() - set(catalogue))
    assert not missing, f"{lang}: run `make messages` and translate: {missing}"


def test_chinese_is_complete_and_chinese() -> None:
    zh, en = i18n.messages("zh_CN"), i18n.messages("en")
    untranslated = sorted(m for m in used_msgids() if zh[m] == m and any(c.isalpha() for c in m.replace("{", "").replace("}", "")))
    assert not untranslated, f"zh_CN leaves these in English: {untranslated}"
    assert zh["Layers"] == "图层" and en["Layers"] == "Layers"


def test_format_fields_survive_translation() -> None:
    """A translation keeps every {field} of its msgid, or the page would show a raw placeholder."""
    import re

    for lang in i18n.LANGUAGES:
        for msgid, text in i18n.messages(lang).items():
            assert set(re.findall(r"\{\w+\}", msgid)) == set(re.findall(r"\{\w+\}", text)), (lang, msgid, text)


def test_template_helpers_quote_for_a_double_quoted_attribute() -> None:
    assert i18n.tr("Layers") == "{{ twin_t['Layers'] }}"
    assert i18n.tr_expr("it's") == "twin_t['it\\'s']"
    assert i18n.tr_expr('say "hi"') == "twin_t['say \\x22hi\\x22']"  # no double quote to end the attribute early
    assert i18n.tr_fmt("{n} cells", n="twin_cells") == "{{ twin_t['{n} cells'].replace('{n}', twin_cells) }}"


@pytest.mark.parametrize(
    ("accept", "lang"),
    [("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"), ("en-GB,en;q=0.9", "en"), ("zh-TW", "zh_CN"), ("fr-FR,fr", "zh_CN"), ("", "zh_CN"), (None, "zh_CN"),
     ("fr,en-US;q=0.5", "en")],
)
def test_browser_language(accept: str | None, lang: str) -> None:
    assert i18n.language_of(accept) == lang


def test_unknown_language_names_the_languages() -> None:
    with pytest.raises(KeyError, match="no catalogue for language 'de'; languages: zh_CN, en"):
        i18n.messages("de")


@pytest.mark.parametrize(
    ("seconds", "en", "zh"),
    [(8, "8 s", "8 秒"), (185, "3 min 5 s", "3 分 5 秒"), (900, "15 min", "15 分钟"), (7500, "2 h 5 min", "2 小时 5 分"), (3 * 86400 + 7200, "3 d 2 h", "3 天 2 小时")],
)
def test_data_ages_are_written_in_the_pages_language(seconds: float, en: str, zh: str) -> None:
    """Badges and the layer list show data ages built on the server: in Chinese on a Chinese page, not English."""
    from twin.app.live import fmt_age

    assert fmt_age(seconds) == en and fmt_age(seconds, "en") == en
    assert fmt_age(seconds, "zh_CN") == zh
