"""The wall's page spends a tick only on what it shows, so its JS heap stays level over a day (issue 13).

A kiosk page hides the app bar, the layer drawer, the time bar and the pick card (``static/kiosk.css``). It used to build
them anyway, and every tick (the replay range, the data ages, the scene time: several state keys a second) re-rendered them:
~49,000 JS function calls per state update on the demo wall, through ~450 functions of Vue and Vuetify. V8 compiles a
function to machine code once it has run enough, so functions that ran a little on each tick were compiled hours into the
day, and the page's JS heap (CDP ``JSHeapUsedSize`` after a forced GC) rose ~0.02 MiB per simulated hour, all of it compiled
code (heap snapshots: JS objects, DOM nodes and listeners flat). Now a wall page builds only what it shows
(:data:`twin.app.kiosk_overlays.OFF_WALL`), and a tick costs it about a tenth of the calls. It decides so before its template
first renders (``static/kiosk_flag.js``): deciding once the page was built built the chrome, removed it at once, and Vue's render
cache kept the removed nodes (~1,500 outside the document, again after each reconnection). And a tick re-renders only the
elements that show what it changed (the clock, the data ages: :func:`twin.app.kiosk_overlays.ticking`), not the page's template.

What is left of the heap's rise over a compressed day is V8's compiled code and nothing else: with Chromium's ``--js-flags=--jitless``
the wall page's heap in ``benchmarks/bench_wall.py --hours 8`` stayed at 5.18 MiB every hour (6.25 -> 6.45 MiB with the JIT).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browsing import chromium, twin_serve
from playwright import sync_api
from test_wall_memory import LIVE_SCENE  # the same one flood layer

HIDDEN_ON_THE_WALL = (".v-app-bar", ".v-navigation-drawer", "#twin-layers", "#twin-timebar")
"""What ``static/kiosk.css`` hides on a wall page (an operator's page shows it all)."""
CALLS_PER_UPDATE = 1_800
"""JS function calls a wall page may spend on a state update: measured ~940 on this scene now that what changes every tick (the
clock, the data ages) re-renders on its own (:func:`twin.app.kiosk_overlays.ticking`); ~2,800 when every tick re-rendered the
page's whole template, ~23,000 when that also built what the wall hides."""
WINDOW_MS = 4_000

LOADED = "() => { const s = window.trame && window.trame.state; return !!(s && s.get('twin_time_text')); }"
WALL_READY = "() => document.documentElement.classList.contains('twin-kiosk') && window.trame.state.get('twin_kiosk_page') === true"
COUNT_UPDATES = """() => {
  window.twinTestUpdates = 0;
  window.trame.client.getRemote().Trame.subscribeToStateUpdate(() => { window.twinTestUpdates += 1; });
}"""


IN_DOCUMENT = "(() => { let n = 0; const walk = document.createTreeWalker(document, NodeFilter.SHOW_ALL); while (walk.nextNode()) n++; return n; })()"
"""The nodes of the page's document (elements, text, comments; the document itself not counted)."""
KEPT_OUT_OF_DOCUMENT = 150
"""DOM nodes a wall page may hold outside its document after a full GC: measured under 10 on the demo wall; when it built the chrome
and removed it, ~320 on this scene and ~1,500 on the demo."""


def _out_of_document(page: sync_api.Page) -> int:
    """DOM nodes the page holds (CDP ``Nodes`` after a full GC) that are not in its document: built, removed and kept."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    cdp.send("HeapProfiler.collectGarbage")
    nodes = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}["Nodes"]
    return int(nodes) - 1 - int(page.evaluate(IN_DOCUMENT))


def _count(page: sync_api.Page, selector: str) -> int:
    return int(page.evaluate(f"document.querySelectorAll({selector!r}).length"))


def _calls_per_update(page: sync_api.Page) -> tuple[float, int]:
    """The JS function calls the page makes per state update from the server over :data:`WINDOW_MS` (V8 precise coverage),
    and the updates it got."""
    page.evaluate(COUNT_UPDATES)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.startPreciseCoverage", {"callCount": True, "detailed": False})
    cdp.send("Profiler.takePreciseCoverage")  # counts from now on
    before = int(page.evaluate("window.twinTestUpdates"))
    page.wait_for_timeout(WINDOW_MS)
    coverage = cdp.send("Profiler.takePreciseCoverage")["result"]
    updates = int(page.evaluate("window.twinTestUpdates")) - before
    cdp.send("Profiler.stopPreciseCoverage")
    calls = sum(f["ranges"][0]["count"] for script in coverage for f in script["functions"])
    return calls / max(updates, 1), updates


def test_a_wall_page_builds_only_what_it_shows_and_spends_a_tick_on_that(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ticks every 0.25 s: an operator's page has the chrome, a wall page builds none of it and a tick re-renders only what it changed."""
    scene = tmp_path / "wall.yaml"
    scene.write_text(LIVE_SCENE, encoding="utf-8")
    monkeypatch.setenv("TWIN_TICK_SECONDS", "0.25")
    monkeypatch.setenv("TWIN_CLOCK_SPEED", "20")
    with twin_serve(scene, tmp_path / "serve.log") as url, chromium() as browser:
        operator, wall = (browser.new_page(viewport={"width": 1280, "height": 720}) for _ in range(2))
        operator.goto(url + "?kiosk=0")
        wall.goto(url + "?kiosk=1")
        for page in (operator, wall):
            page.wait_for_function(LOADED, timeout=60_000)
        wall.wait_for_function(WALL_READY, timeout=10_000)
        wall.locator("#twin-kiosk-clock").wait_for(timeout=10_000)  # no element handle: it would keep the page's tree alive
        assert [_count(operator, s) > 0 for s in HIDDEN_ON_THE_WALL] == [True] * len(HIDDEN_ON_THE_WALL)
        assert {s: _count(wall, s) for s in HIDDEN_ON_THE_WALL} == dict.fromkeys(HIDDEN_ON_THE_WALL, 0)
        operator.close()
        assert _out_of_document(wall) < KEPT_OUT_OF_DOCUMENT  # what the wall hides was never built (static/kiosk_flag.js)
        wall.wait_for_timeout(1_000)  # past the first renders of the alerts and ages
        per_update, updates = _calls_per_update(wall)
        assert updates >= WINDOW_MS / 1_000, f"only {updates} state updates in {WINDOW_MS} ms (ticks every 0.25 s)"
        assert per_update < CALLS_PER_UPDATE, f"{per_update:.0f} JS calls per state update on the wall page ({updates} updates)"
