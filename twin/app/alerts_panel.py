"""The alerts drawer and its toolbar button: open alerts (acknowledge, fly to), help within reach, the event log.

State: ``twin_has_alerts``, ``twin_alerts_open``, ``twin_alerts``, ``twin_alert_count``, ``twin_alert_firing``,
``twin_alert_selected``, ``twin_focus``, ``twin_events``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from typing import Any

from trame.app import TrameComponent
from trame.decorators import controller
from trame.widgets import html
from trame.widgets import vuetify3 as v3

from twin.alerts.engine import AlertEvent
from twin.app.access import current_user
from twin.app.bridge import LoopBridge
from twin.app.i18n import tr, tr_expr, tr_fmt
from twin.app.kiosk_overlays import OFF_WALL
from twin.app.live import alert_rows, event_row, focus_dict
from twin.errors import TwinError
from twin.session import Focus, Session

__all__ = ["ALERTS_DRAWER_PX", "AlertsPanel"]

log = logging.getLogger(__name__)

_EVENT_LOG = 20
ALERTS_DRAWER_PX = 410
"""Width of the alerts drawer (CSS pixels), open on the right of the view box when the scene has alerts."""
_EVENT_KINDS = ("({pending: " + tr_expr("pending") + ", firing: " + tr_expr("firing") + ", resolved: " + tr_expr("resolved")
                + ", cancelled: " + tr_expr("cancelled") + ", acknowledged: " + tr_expr("acknowledged") + "})")


class AlertsPanel(TrameComponent):
    """Open alerts of the session's engine, the last transitions, and the focused alert with help within reach."""

    def __init__(self, server: Any, session: Session, bridge: LoopBridge) -> None:
        super().__init__(server)
        self.session = session
        scene = session.scene
        self.enabled = bool(session.live_layers() or scene.alerts)
        self._events: deque[tuple[int, AlertEvent]] = deque(maxlen=_EVENT_LOG)  # rows are written at each refresh, in the page's language
        self._serial = 0
        self.state.update({"twin_has_alerts": self.enabled, "twin_alerts_open": bool(scene.alerts), "twin_alert_selected": None, "twin_focus": None})
        self.refresh(session.now or session.clock())
        session.alert_event.connect(lambda event: bridge.soon(lambda: self._on_event(event)))
        session.time_changed.connect(lambda change: bridge.soon(lambda: self.refresh(change.now), key=self.refresh))
        session.focus_changed.connect(lambda focus: bridge.soon(lambda: self._show_focus(focus), key=self._show_focus))
        self.state.change("twin_lang")(lambda **_: self.refresh(session.now or session.clock()))  # titles, values and durations in the page's language

    def refresh(self, now: dt.datetime) -> None:
        """Push the open alerts (durations at ``now``), their counts and the event log."""
        if not self.enabled:
            self.state.update({"twin_alerts": [], "twin_alert_count": 0, "twin_alert_firing": 0, "twin_events": []})
            return
        lang = self.state.twin_lang or "en"
        with self.session.lock:
            engine, scene = self.session.engine, self.session.scene
            rows, count, firing = alert_rows(engine, scene, now, lang), len(engine.active()), len(engine.firing())
            events = [event_row(event, serial, scene, lang) for serial, event in reversed(self._events)]
        self.state.update({"twin_alerts": rows, "twin_alert_count": count, "twin_alert_firing": firing, "twin_events": events})

    def _on_event(self, event: AlertEvent) -> None:
        self._serial += 1
        if not event.alert.get("name"):  # a "pending" event precedes the first reading
            try:
                with self.session.lock:
                    name = self.session.engine.get(str(event.alert.get("id"))).name
            except TwinError:
                name = None
            if name:
                event = AlertEvent(event.kind, {**event.alert, "name": name}, event.at)
        self._events.append((self._serial, event))
        self.refresh(self.session.now or self.session.clock())

    def _show_focus(self, focus: Focus | None) -> None:
        self.state.twin_focus = None if focus is None else focus_dict(focus, self.session.scene)

    @controller.set("twin_acknowledge")
    def acknowledge(self, alert_id: str) -> None:
        """An operator has seen this alert (it stays open until it resolves); records the name the request's token maps to."""
        try:
            self.session.acknowledge(str(alert_id), by=current_user())
        except TwinError as exc:
            log.warning("cannot acknowledge: %s", exc)

    @controller.set("twin_focus_alert")
    def focus(self, alert_id: str) -> None:
        """Select an alert: fly the camera to it (~800 m, same direction) and list help within reach."""
        try:
            self.session.focus_alert(str(alert_id))
        except TwinError as exc:
            log.warning("cannot focus: %s", exc)
            return
        self.state.twin_alert_selected = str(alert_id)

    def button(self) -> None:
        """Toolbar button opening the alerts drawer, with the count of open alerts."""
        with v3.VBtn(
            v_if="twin_has_alerts",
            id="twin-alerts-toggle",
            click="twin_alerts_open = !twin_alerts_open",
            color=("twin_alert_firing ? 'error' : (twin_alert_count ? 'warning' : 'secondary')",),
            variant=("twin_alert_count ? 'flat' : 'tonal'",),
            classes="ml-2 mr-1",
            prepend_icon=("twin_alert_count ? 'mdi-bell-alert' : 'mdi-bell-outline'",),
        ):
            html.Span(tr("Alerts"), classes="mr-2")
            html.Span("{{ twin_alert_count }}", id="twin-alert-count", classes="font-weight-bold")

    def ui(self) -> None:
        """Right drawer: open alerts (acknowledge, fly to), help within reach, the event log."""
        ack = self.server.trigger_name(self.acknowledge)
        with v3.VNavigationDrawer(
            v_model=("twin_alerts_open",),
            v_if=f"twin_has_alerts && {OFF_WALL}",  # a wall page hides the drawer: its cards are not built there
            location="right",
            width=ALERTS_DRAWER_PX,
            color="surface",
            disable_resize_watcher=True,
            classes="twin-alerts",
            id="twin-alerts",
        ):
            with html.Div(classes="twin-alerts-head"):
                v3.VIcon("mdi-alarm-light", color=("twin_alert_firing ? 'error' : 'secondary'",))
                html.Span(tr("Alerts"), classes="twin-alerts-title")
                v3.VSpacer()
                v3.VChip(tr_fmt("{n} firing", n="twin_alert_firing"), color="error", variant=("twin_alert_firing ? 'flat' : 'tonal'",),
                         size="small", label=True, id="twin-alert-firing")
                v3.VChip(tr_fmt("{n} pending", n="(twin_alert_count - twin_alert_firing)"), color="warning", variant="tonal", size="small", label=True)
            html.Div(
                tr("Replay: the alerts are live"),
                v_if="!twin_live && twin_has_live",
                classes="text-caption text-warning px-4 pb-2",
            )
            with html.Div(v_if="twin_focus", classes="twin-focus", id="twin-focus"):
                with html.Div(classes="d-flex align-center mb-1"):
                    v3.VIcon("mdi-crosshairs-gps", color="primary", size="small", classes="mr-2")
                    html.Span("{{ twin_focus.name }}", classes="font-weight-bold")
                    v3.VSpacer()
                    html.Span("{{ twin_focus.lonlat }}", classes="text-caption text-medium-emphasis")
                with html.Div(v_if="twin_focus.has_resources"):
                    html.Div(tr_fmt("Help within {radius}", radius="twin_focus.radius"), classes="text-caption text-medium-emphasis")
                    html.Div(tr("nothing within reach"), v_if="!twin_focus.resources.length", classes="text-caption text-warning")
                    with html.Table(v_if="twin_focus.resources.length"), html.Tr(v_for="(r, i) in twin_focus.resources", key="i", classes="twin-resource"):
                        html.Td("{{ r.name }}")
                        html.Td("{{ r.kind || r.layer }}", classes="text-medium-emphasis")
                        html.Td("{{ r.distance }}", classes="text-right")
            html.Div(tr("No open alerts"), v_if="!twin_alerts.length", classes="text-medium-emphasis px-4 py-3", id="twin-no-alerts")
            with html.Div(
                v_for="a in twin_alerts",
                key="a.id",
                classes="twin-alert",
                click=(self.focus, "[a.id]"),
                style=("{ borderLeftColor: a.color }",),
                raw_attrs=[
                    ':data-alert-id="a.id"',
                    ':data-state="a.state"',
                    ':class="{ \'twin-alert-selected\': a.id === twin_alert_selected, \'twin-alert-acked\': a.acknowledged }"',
                ],
            ):
                with html.Div(classes="d-flex align-center"):
                    v3.VIcon(
                        icon=("a.severity === 'critical' ? 'mdi-alert-octagon' : (a.severity === 'warning' ? 'mdi-alert' : 'mdi-information')",),
                        style=("{ color: a.color }",), size="small", classes="mr-2",
                    )
                    html.Span("{{ a.title }}", classes="twin-alert-title")
                    v3.VSpacer()
                    v3.VChip(
                        "{{ a.state === 'firing' ? " + tr_expr("FIRING") + " : " + tr_expr("PENDING") + " }}",
                        color=("a.state === 'firing' ? 'error' : 'warning'",),
                        variant=("a.state === 'firing' ? 'flat' : 'outlined'",),
                        size="x-small", label=True, classes="twin-alert-state font-weight-bold",
                    )
                html.Div("{{ a.name ? a.name + ' · ' + a.key : a.key }}", classes="twin-alert-where")
                with html.Div(classes="d-flex align-end mt-1"):
                    html.Div("{{ a.value }}", classes="twin-alert-value", style=("{ color: a.color }",))
                    html.Span("{{ a.peak }}", v_if="a.peak", classes="text-caption text-medium-emphasis ml-2 mb-1")
                    v3.VSpacer()
                    v3.VBtn(
                        tr("Acknowledge"),
                        v_if="!a.acknowledged",
                        size="small",
                        variant="tonal",
                        color="primary",
                        prepend_icon="mdi-check",
                        classes="twin-alert-ack",
                        raw_attrs=[f'@click.stop="trigger(\'{ack}\', [a.id])"'],
                    )
                    v3.VChip(
                        tr("acknowledged"),
                        v_if="a.acknowledged",
                        color="info",
                        variant="tonal",
                        size="small",
                        prepend_icon="mdi-check-all",
                        classes="twin-alert-acknowledged",
                        title=(tr_expr("by {name}") + ".replace('{name}', a.acknowledged_by)",),
                    )
                html.Div(tr_fmt("since {since} · {duration}", since="a.since", duration="a.duration"), classes="twin-alert-since")
            html.Div(tr("Events"), classes="twin-section", v_if="twin_events.length")
            with html.Div(classes="twin-events", id="twin-events"), html.Div(v_for="e in twin_events", key="e.n", classes="twin-event"):
                html.Span("{{ e.at.slice(0, 8) }}", classes="twin-event-at")
                html.Span("{{ " + _EVENT_KINDS + "[e.kind] || e.kind }}", classes="twin-event-kind", style=("{ color: e.color }",))
                html.Span("{{ e.name }} {{ e.value }} · {{ e.title }}", classes="twin-event-text")
