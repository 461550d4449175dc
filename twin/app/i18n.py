"""Languages of the app: every UI string comes from a gettext catalogue (``twin/app/locale/<lang>/LC_MESSAGES/twin.po``).

The catalogues are read with Babel (:func:`babel.messages.pofile.read_po`); the page holds the
current language's messages in the state key ``twin_t`` (msgid → text) and the language in
``twin_lang``, so switching language re-renders every string without rebuilding the UI.

In component templates, wrap a msgid with :func:`tr` (text), :func:`tr_expr` (a bound
property) or :func:`tr_fmt` (text with ``{name}`` fields filled from state expressions).
``make messages`` extracts the msgids (keywords ``tr``, ``tr_expr``, ``tr_fmt``, ``gettext``, ``N_``)
into ``twin.pot`` and updates both catalogues; ``tests/test_i18n.py`` fails on a msgid that
a catalogue lacks or leaves untranslated.

Example::

    >>> from twin.app.i18n import gettext, tr
    >>> gettext("zh_CN", "Layers")
    '图层'
    >>> tr("Layers")
    "{{ twin_t['Layers'] }}"
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from babel.messages.pofile import read_po
from trame.app import TrameComponent

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "N_", "I18n", "gettext", "language_of", "messages", "tr", "tr_expr", "tr_fmt"]

LANGUAGES: dict[str, str] = {"zh_CN": "中文", "en": "English"}
"""The catalogues that ship, with each language's own name (shown in the language switch)."""
DEFAULT_LANGUAGE = "zh_CN"
DOMAIN = "twin"


@functools.cache
def messages(lang: str) -> dict[str, str]:
    """Every msgid of the catalogue for ``lang`` → its text (untranslated entries fall back to the msgid).

    Raises KeyError naming the languages that exist for an unknown ``lang``.
    """
    if lang not in LANGUAGES:
        raise KeyError(f"no catalogue for language {lang!r}; languages: {', '.join(LANGUAGES)}")
    path = resources.files("twin.app").joinpath("locale", lang, "LC_MESSAGES", f"{DOMAIN}.po")
    with path.open("rb") as po:
        catalog = read_po(po, locale=lang, domain=DOMAIN)
    return {str(m.id): (str(m.string) or str(m.id)) for m in catalog if m.id and isinstance(m.id, str)}


def gettext(lang: str, msgid: str) -> str:
    """``msgid`` in ``lang`` (the msgid itself when the catalogue lacks it), for strings built on the server."""
    return messages(lang).get(msgid, msgid)


def N_(msgid: str) -> str:
    """Mark ``msgid`` for the catalogues without translating it (``make messages`` extracts it): for messages the model
    hands the app as msgids, such as :data:`twin.style.NO_VALUE`, which the app translates with :func:`gettext`."""
    return msgid


def language_of(accept: str | None) -> str:
    """The shipped language that best matches a browser's language list (``navigator.languages`` joined, or an
    ``Accept-Language`` header); :data:`DEFAULT_LANGUAGE` when none matches. ``"en-GB,en;q=0.9"`` → ``"en"``."""
    for tag in (accept or "").replace(";", ",").split(","):
        tag = tag.strip().replace("-", "_")
        if not tag or tag.startswith("q="):
            continue
        if tag in LANGUAGES:
            return tag
        base = tag.split("_")[0].lower()
        for lang in LANGUAGES:
            if lang.split("_")[0].lower() == base:
                return lang
    return DEFAULT_LANGUAGE


def _key(msgid: str) -> str:
    """``msgid`` as a single-quoted JavaScript string literal (templates sit inside double-quoted attributes)."""
    return "'" + msgid.replace("\\", "\\\\").replace("'", "\\'").replace('"', "\\x22").replace("\n", "\\n") + "'"


def tr_expr(msgid: str) -> str:
    """A JavaScript expression for ``msgid`` in the page's language, for bound properties: ``title=(tr_expr("Close"),)``."""
    return f"twin_t[{_key(msgid)}]"


def tr(msgid: str) -> str:
    """A template text for ``msgid`` in the page's language: ``html.Div(tr("Layers"))``."""
    return "{{ " + tr_expr(msgid) + " }}"


def tr_fmt(msgid: str, **fields: str) -> str:
    """A template text for ``msgid`` with ``{name}`` fields filled from JavaScript expressions on state.

    ``tr_fmt("{n} cells", n="twin_cells")`` → the page shows "3 cells" / "3 个单元".
    """
    expr = tr_expr(msgid)
    for name, value in fields.items():
        expr += f".replace({_key('{' + name + '}')}, {value})"
    return "{{ " + expr + " }}"


class I18n(TrameComponent):
    """The page's language: state ``twin_lang`` (a key of :data:`LANGUAGES`) and ``twin_t`` (its messages).

    ``lang``: a fixed language (the wall), or None to follow the browser's language on first load
    (planners), switchable in the page with :meth:`switch`.
    """

    def __init__(self, server: Any, lang: str | None = None) -> None:
        super().__init__(server)
        self.fixed = lang is not None
        first = lang or DEFAULT_LANGUAGE
        messages(first)  # raises for an unknown language before anything is served
        self.state.twin_langs = [{"value": k, "title": v} for k, v in LANGUAGES.items()]
        self.state.twin_lang = first
        self.state.twin_t = messages(first)
        self.state.twin_lang_from_browser = not self.fixed
        self.state.change("twin_lang")(self._on_lang)
        self.server.trigger("twin_browser_language")(self.browser_language)  # called by the page once, with its languages

    @property
    def lang(self) -> str:
        """The language shown now."""
        return str(self.state.twin_lang)

    def _on_lang(self, twin_lang: str, **_: Any) -> None:
        if twin_lang not in LANGUAGES:
            twin_lang = DEFAULT_LANGUAGE
            self.state.twin_lang = twin_lang
        self.state.twin_t = messages(twin_lang)

    def browser_language(self, languages: str) -> None:
        """The page reports ``navigator.languages`` once; the language follows it unless fixed or already switched."""
        if self.state.twin_lang_from_browser:
            self._show(language_of(languages))

    def switch(self, lang: str) -> None:
        """Show the page in ``lang`` (KeyError for a language without a catalogue)."""
        self._show(lang)

    def _show(self, lang: str) -> None:
        """Language, its messages and the end of following the browser, in one state update (the page never shows a mix)."""
        self.state.update({"twin_t": messages(lang), "twin_lang": lang, "twin_lang_from_browser": False})

    def ui(self) -> None:
        """The language switch (a compact toggle) and the one-shot browser-language report."""
        from trame.widgets import client
        from trame.widgets import vuetify3 as v3

        client.ClientTriggers(mounted="twin_lang_from_browser && trigger('twin_browser_language', [(window.navigator.languages || [window.navigator.language]).join(',')])")
        with v3.VBtnToggle(v_model=("twin_lang",), mandatory=True, density="compact", variant="text", id="twin-lang", classes="mr-2"):
            for value, title in LANGUAGES.items():
                v3.VBtn(title, value=value, size="small", classes=f"twin-lang-{value}")
