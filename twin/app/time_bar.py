"""The clock (LIVE / REPLAY and the shown time, +08:00) and the time bar (replay over the readings kept, back to live).

State: ``twin_has_live``, ``twin_live``, ``twin_time_text``, ``twin_replay_*``, ``twin_tick_error``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from trame.app import TrameComponent
from trame.decorators import controller
from trame.widgets import html
from trame.widgets import vuetify3 as v3

from twin.app.bridge import LoopBridge
from twin.app.i18n import tr, tr_expr
from twin.app.kiosk_overlays import OFF_WALL
from twin.app.live import SHANGHAI, fmt_age, fmt_datetime
from twin.session import HealthChange, Session, TimeChange

__all__ = ["TimeBar", "replay_step"]

SEEK_DEBOUNCE_S = 0.2


def replay_step(span_s: float) -> int:
    """Slider step (s): about 1,500 positions over the replay span, rounded to a readable step."""
    for step in (1, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span_s / step <= 1500:
            return step
    return 3600


class TimeBar(TrameComponent):
    """Follows the session's time; the slider replays (debounced while served), "Live" follows the clock again."""

    def __init__(self, server: Any, session: Session, bridge: LoopBridge) -> None:
        super().__init__(server)
        self.session, self.bridge = session, bridge
        self.has_live = bool(session.live_layers())
        self.state.update({"twin_has_live": self.has_live, "twin_live": session.live, "twin_time_text": fmt_datetime(session.shown_time),
                           "twin_replay_t": 0, "twin_replay_min": 0, "twin_replay_max": 1, "twin_replay_step": 1, "twin_replay_start": "",
                           "twin_replay_end": "", "twin_replay_offset": "", "twin_tick_error": session.tick_error})
        session.time_changed.connect(lambda change: bridge.soon(lambda: self.refresh(change), key=self.refresh))
        session.health_changed.connect(lambda change: bridge.soon(lambda: self._tick_error(change), key=self._tick_error))

    def refresh(self, change: TimeChange) -> None:
        """Push the shown time, the mode and the slider's bounds (oldest reading kept .. the live clock)."""
        state = self.state
        state.twin_live = change.live
        state.twin_time_text = fmt_datetime(change.shown)
        if not self.has_live:
            return
        now = change.now
        latest = math.floor(now.timestamp())
        earliest = min(math.floor(self.session.replay_start(now).timestamp()), latest)
        state.twin_replay_max, state.twin_replay_min = latest, earliest
        state.twin_replay_step = replay_step(latest - earliest)
        edge = "%m-%d %H:%M" if latest - earliest >= 12 * 3600 else "%H:%M"
        state.twin_replay_start = dt.datetime.fromtimestamp(earliest, SHANGHAI).strftime(edge)
        state.twin_replay_end = now.astimezone(SHANGHAI).strftime(edge)
        if change.live or change.shown is None:
            state.twin_replay_t, state.twin_replay_offset = latest, ""  # the chip says "live" in the page's language
        else:
            state.twin_replay_t, state.twin_replay_offset = round(change.shown.timestamp()), f"−{fmt_age(now - change.shown, state.twin_lang or 'en')}"

    def _tick_error(self, change: HealthChange) -> None:
        self.state.twin_tick_error = change.tick_error

    @controller.set("twin_go_live")
    def go_live(self) -> None:
        """Follow the clock again."""
        self.session.go_live()

    @controller.set("twin_seek")
    def seek(self, when: float | str | None) -> None:
        """Replay: show the scene at ``when`` (epoch seconds). Slider drags send many values: while served, the last one is applied after a short pause."""
        try:
            value = float(when)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return
        if self.has_live and math.isfinite(value):
            self.session.seek(value, debounce_s=SEEK_DEBOUNCE_S if self.bridge.serving else 0.0)

    def clock(self) -> None:
        """LIVE / REPLAY chip and the scene time (+08:00), for the toolbar."""
        with html.Div(classes="twin-clock", id="twin-clock", v_if="twin_time_text"):
            with v3.VChip(v_if="twin_has_live", id="twin-time-mode", color=("twin_live ? 'success' : 'warning'",), variant="flat", size="small",
                          label=True, classes="font-weight-bold"):
                html.Span(v_if="twin_live", classes="twin-live-dot")
                html.Span("{{ twin_live ? " + tr_expr("LIVE") + " : " + tr_expr("REPLAY") + " }}")
            html.Span("{{ twin_time_text }}", id="twin-time", classes="twin-time")

    def ui(self) -> None:
        """Bottom bar: back to live, and a slider over the live layers' history (replay)."""
        with html.Div(classes="twin-timebar", id="twin-timebar", v_if=f"twin_has_live && {OFF_WALL}"):
            v3.VBtn(tr("Live"), id="twin-live-btn", click=self.go_live, prepend_icon="mdi-broadcast", color=("twin_live ? 'success' : 'warning'",),
                    variant=("twin_live ? 'tonal' : 'flat'",), classes="font-weight-bold")
            html.Span("{{ twin_replay_start }}", classes="twin-timebar-edge", title=(tr_expr("oldest moment kept for replay"),))
            v3.VSlider(
                id="twin-replay", classes="twin-replay", v_model=("twin_replay_t",), update_modelValue=(self.seek, "[$event]"),
                min=("twin_replay_min",), max=("twin_replay_max",), step=("twin_replay_step",), color=("twin_live ? 'success' : 'warning'",),
                track_color="surface-variant", hide_details=True, density="compact", thumb_size=18,
                title=(tr_expr("drag into the past to replay; Live returns to the clock"),),
            )
            html.Span("{{ twin_replay_end }}", classes="twin-timebar-edge")
            v3.VChip("{{ twin_live ? " + tr_expr("live") + " : twin_replay_offset }}", id="twin-replay-offset", color=("twin_live ? 'success' : 'warning'",), variant="tonal", size="small",
                     classes="twin-replay-offset justify-center", prepend_icon=("twin_live ? 'mdi-clock-outline' : 'mdi-history'",))
            v3.VChip(tr("tick failed"), v_if="twin_tick_error", id="twin-tick-error", color="error", variant="flat", size="small", prepend_icon="mdi-alert",
                     title=("twin_tick_error",))
