"""The live parts of the browser app's page: clock, time bar (live / replay), alerts drawer.

Each builder adds trame widgets to the layout context it is called in; ``app`` is the
:class:`~twin.app.server.TwinApp` whose methods the widgets call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trame.widgets import html
from trame.widgets import vuetify3 as v3

if TYPE_CHECKING:
    from twin.app.server import TwinApp

__all__ = ["LIVE_CSS", "alert_button", "alerts_drawer", "clock", "layer_live_chips", "time_bar"]

LIVE_CSS = """
.twin-main { display: flex; flex-direction: column; height: 100%; }
.twin-clock { display: flex; align-items: center; gap: 10px; margin-right: 16px; }
.twin-time { font-family: "DejaVu Sans Mono", "Noto Sans Mono", monospace; font-size: 1.15rem; color: #f8fafc;
  letter-spacing: 0.02em; white-space: nowrap; font-variant-numeric: tabular-nums; }
.twin-live-dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; background: #22c55e;
  margin-right: 6px; animation: twin-pulse 1.6s ease-in-out infinite; }
@keyframes twin-pulse { 0%, 100% { opacity: 1; } 50% { opacity: 0.25; } }
.twin-timebar { flex: none; display: flex; align-items: center; gap: 14px; height: 60px; padding: 0 18px;
  background: #0d1528; border-top: 1px solid rgba(148, 163, 184, 0.25); color: #e2e8f0; }
.twin-timebar-edge { font-family: "DejaVu Sans Mono", monospace; font-size: 0.85rem; color: #94a3b8; white-space: nowrap; }
.twin-timebar .v-slider { flex: 1 1 auto; }
.twin-replay-offset { min-width: 110px; text-align: center; }
.twin-alerts { color: #e2e8f0; }
.twin-alerts-head { display: flex; align-items: center; gap: 8px; padding: 14px 16px 8px; }
.twin-alerts-title { font-size: 1.15rem; font-weight: 700; letter-spacing: 0.04em; }
.twin-alert { margin: 0 12px 10px; padding: 10px 12px; border-radius: 6px; cursor: pointer;
  background: rgba(30, 41, 66, 0.85); border: 1px solid rgba(148, 163, 184, 0.18); border-left-width: 5px; }
.twin-alert:hover { background: rgba(43, 58, 92, 0.9); }
.twin-alert-selected { box-shadow: 0 0 0 2px #38bdf8; }
.twin-alert-acked { opacity: 0.72; }
.twin-alert-title { font-size: 1rem; font-weight: 700; color: #f8fafc; }
.twin-alert-where { font-size: 0.85rem; color: #cbd5e1; }
.twin-alert-value { font-size: 1.6rem; font-weight: 800; line-height: 1.9rem; font-variant-numeric: tabular-nums; }
.twin-alert-since { font-size: 0.8rem; color: #94a3b8; font-family: "DejaVu Sans Mono", monospace; }
.twin-section { padding: 6px 16px; font-size: 0.72rem; letter-spacing: 0.12em; text-transform: uppercase; color: #94a3b8; }
.twin-focus { margin: 0 12px 10px; padding: 8px 12px; border-radius: 6px; background: rgba(56, 189, 248, 0.08);
  border: 1px solid rgba(56, 189, 248, 0.35); font-size: 0.85rem; }
.twin-focus table { width: 100%; border-collapse: collapse; }
.twin-focus td { padding: 2px 4px; border-bottom: 1px solid rgba(148, 163, 184, 0.15); }
.twin-events { padding: 0 12px 16px; }
.twin-event { display: flex; gap: 8px; font-size: 0.78rem; line-height: 1.35rem; white-space: nowrap; overflow: hidden; }
.twin-event-at { font-family: "DejaVu Sans Mono", monospace; color: #94a3b8; }
.twin-event-kind { font-weight: 700; min-width: 86px; }
.twin-event-text { overflow: hidden; text-overflow: ellipsis; color: #cbd5e1; }
.twin-layer-age { font-size: 0.75rem; color: #94a3b8; font-family: "DejaVu Sans Mono", monospace; }
"""


def clock() -> None:
    """LIVE / REPLAY chip and the scene time (+08:00), for the toolbar."""
    with html.Div(classes="twin-clock", id="twin-clock", v_if="twin_time_text"):
        with v3.VChip(
            v_if="twin_has_live",
            id="twin-time-mode",
            color=("twin_live ? 'success' : 'warning'",),
            variant="flat",
            size="small",
            label=True,
            classes="font-weight-bold",
        ):
            html.Span(v_if="twin_live", classes="twin-live-dot")
            html.Span("{{ twin_live ? 'LIVE 实时' : 'REPLAY 回放' }}")
        html.Span("{{ twin_time_text }}", id="twin-time", classes="twin-time")


def alert_button(app: TwinApp) -> None:
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
        html.Span("告警 Alerts", classes="mr-2")
        html.Span("{{ twin_alert_count }}", id="twin-alert-count", classes="font-weight-bold")


def time_bar(app: TwinApp) -> None:
    """Bottom bar: back to live, and a slider over the live layers' history (replay)."""
    with html.Div(classes="twin-timebar", id="twin-timebar", v_if="twin_has_live"):
        v3.VBtn(
            "Live 实时",
            id="twin-live-btn",
            click=app.go_live,
            prepend_icon="mdi-broadcast",
            color=("twin_live ? 'success' : 'warning'",),
            variant=("twin_live ? 'tonal' : 'flat'",),
            classes="font-weight-bold",
        )
        html.Span("{{ twin_replay_start }}", classes="twin-timebar-edge", title="oldest moment kept for replay")
        v3.VSlider(
            id="twin-replay",
            classes="twin-replay",
            v_model=("twin_replay_t",),
            update_modelValue=(app.seek, "[$event]"),
            min=("twin_replay_min",),
            max=("twin_replay_max",),
            step=("twin_replay_step",),
            color=("twin_live ? 'success' : 'warning'",),
            track_color="surface-variant",
            hide_details=True,
            density="compact",
            thumb_size=18,
            title="drag into the past to replay; Live returns to the clock",
        )
        html.Span("{{ twin_replay_end }}", classes="twin-timebar-edge")
        v3.VChip(
            "{{ twin_replay_offset }}",
            id="twin-replay-offset",
            color=("twin_live ? 'success' : 'warning'",),
            variant="tonal",
            size="small",
            classes="twin-replay-offset justify-center",
            prepend_icon=("twin_live ? 'mdi-clock-outline' : 'mdi-history'",),
        )
        v3.VChip(
            "tick failed",
            v_if="twin_tick_error",
            id="twin-tick-error",
            color="error",
            variant="flat",
            size="small",
            prepend_icon="mdi-alert",
            title=("twin_tick_error",),
        )


def alerts_drawer(app: TwinApp) -> None:
    """Right drawer: open alerts (acknowledge, fly to), help within reach, the event log."""
    ack = app.server.trigger_name(app.acknowledge)
    with v3.VNavigationDrawer(
        v_model=("twin_alerts_open",),
        v_if="twin_has_alerts",
        location="right",
        width=410,
        color="surface",
        disable_resize_watcher=True,
        classes="twin-alerts",
        id="twin-alerts",
    ):
        with html.Div(classes="twin-alerts-head"):
            v3.VIcon("mdi-alarm-light", color=("twin_alert_firing ? 'error' : 'secondary'",))
            html.Span("告警 Alerts", classes="twin-alerts-title")
            v3.VSpacer()
            v3.VChip("{{ twin_alert_firing }} firing", color="error", variant=("twin_alert_firing ? 'flat' : 'tonal'",),
                     size="small", label=True, id="twin-alert-firing")
            v3.VChip("{{ twin_alert_count - twin_alert_firing }} pending", color="warning", variant="tonal", size="small", label=True)
        html.Div(
            "Replay: alerts as of the last live update",
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
                html.Div("Help within {{ twin_focus.radius }} 附近资源", classes="text-caption text-medium-emphasis")
                html.Div("nothing within reach", v_if="!twin_focus.resources.length", classes="text-caption text-warning")
                with html.Table(v_if="twin_focus.resources.length"), html.Tr(v_for="(r, i) in twin_focus.resources", key="i", classes="twin-resource"):
                    html.Td("{{ r.name }}")
                    html.Td("{{ r.kind || r.layer }}", classes="text-medium-emphasis")
                    html.Td("{{ r.distance }}", classes="text-right")
        html.Div("No open alerts 无告警", v_if="!twin_alerts.length", classes="text-medium-emphasis px-4 py-3", id="twin-no-alerts")
        with html.Div(
            v_for="a in twin_alerts",
            key="a.id",
            classes="twin-alert",
            click=(app.focus_alert, "[a.id]"),
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
                    "{{ a.state === 'firing' ? 'FIRING' : 'PENDING' }}",
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
                    "Acknowledge 确认",
                    v_if="!a.acknowledged",
                    size="small",
                    variant="tonal",
                    color="primary",
                    prepend_icon="mdi-check",
                    classes="twin-alert-ack",
                    raw_attrs=[f'@click.stop="trigger(\'{ack}\', [a.id])"'],
                )
                v3.VChip(
                    "acknowledged 已确认",
                    v_if="a.acknowledged",
                    color="info",
                    variant="tonal",
                    size="small",
                    prepend_icon="mdi-check-all",
                    classes="twin-alert-acknowledged",
                    title=("`by ${a.acknowledged_by}`",),
                )
            html.Div("since {{ a.since }} · {{ a.duration }}", classes="twin-alert-since")
        html.Div("Events 事件", classes="twin-section", v_if="twin_events.length")
        with html.Div(classes="twin-events", id="twin-events"), html.Div(v_for="e in twin_events", key="e.n", classes="twin-event"):
            html.Span("{{ e.at.slice(0, 8) }}", classes="twin-event-at")
            html.Span("{{ e.kind }}", classes="twin-event-kind", style=("{ color: e.color }",))
            html.Span("{{ e.name }} {{ e.value }} · {{ e.title }}", classes="twin-event-text")


def layer_live_chips() -> None:
    """Data age and a stale chip in a live layer's row (inside the layer list's ``v-for``)."""
    with html.Div(v_if="twin_live_info[layer.id]", classes="d-flex align-center pb-1"):
        v3.VIcon("mdi-access-point", size="x-small", classes="mr-1 text-medium-emphasis")
        html.Span("{{ twin_live_info[layer.id].age }}", classes="twin-layer-age", title=("twin_live_info[layer.id].tip",))
        v3.VSpacer()
        v3.VChip(
            "stale",
            v_if="twin_live_info[layer.id].stale",
            color=("twin_live_info[layer.id].color",),
            variant="flat",
            size="x-small",
            prepend_icon=("twin_live_info[layer.id].error ? 'mdi-lan-disconnect' : 'mdi-timer-sand'",),
            classes="twin-layer-stale",
            title=("twin_live_info[layer.id].tip",),
            raw_attrs=[':data-error="twin_live_info[layer.id].error ? 1 : 0"'],
        )
