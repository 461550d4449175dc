"""What the app shows about live data: scene time, data age, alerts, events, help within reach.

Pure functions from the model (scene, live layers, alert engine, a session's focus) to the small JSON-friendly
dicts the browser app keeps in its shared state. Times are shown in Shanghai time (+08:00;
no daylight saving since 1991, so a fixed offset needs no tz database).

>>> import datetime as dt
>>> fmt_datetime(dt.datetime(2026, 7, 1, 10, 15, tzinfo=dt.timezone.utc))
'2026-07-01 18:15:00 +08:00'
>>> fmt_age(dt.timedelta(seconds=75)), fmt_age(dt.timedelta(hours=2, minutes=5)), fmt_age(None)
('1 min 15 s', '2 h 5 min', '—')
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

from twin.alerts.engine import LAYER_KEY, AlertEngine, AlertEvent, AlertState
from twin.alerts.rules import StaleRule
from twin.app.i18n import N_, gettext
from twin.clock import SHANGHAI, fmt_clock, fmt_datetime
from twin.layer import Layer
from twin.live import LiveLayer
from twin.scene.model import Scene
from twin.session.events import Focus
from twin.style import text_in

__all__ = [
    "SHANGHAI",
    "alert_rows",
    "event_row",
    "fmt_age",
    "fmt_clock",
    "fmt_datetime",
    "focus_dict",
    "layer_live_info",
    "shows_labels",
]

log = logging.getLogger(__name__)

SEVERITY_COLORS = {"critical": "#ef4444", "warning": "#f59e0b", "info": "#38bdf8"}
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
EVENT_COLORS = {"pending": "#f59e0b", "firing": "#ef4444", "resolved": "#22c55e", "cancelled": "#94a3b8", "acknowledged": "#38bdf8"}
DROP_REASONS = {
    "bad_coordinates": N_("bad coordinates"), "bad_time": N_("bad time"), "bad_value": N_("bad value"), "below_minimum": N_("below minimum"),
    "above_maximum": N_("above maximum"), "future_time": N_("in the future"), "too_old": N_("too old"), "duplicate": N_("duplicate"),
}
"""The reasons :class:`twin.readings.ReadingsBuffer` drops a reading for → their msgid (another reason is shown as its name)."""
LAYER_WIDE = N_("(layer)")
"""The msgid of an alert's place when it is on a whole layer (the engine's key :data:`~twin.alerts.engine.LAYER_KEY`)."""
# units of the values that layer types report (a layer may also say so itself with a ``unit`` attribute)
UNITS = {"flood_points": "cm"}


# -- time ----------------------------------------------------------------------------------------
def fmt_age(age: dt.timedelta | float | None, lang: str = "en") -> str:
    """A duration for people in ``lang``: ``8 s``, ``3 min 5 s``, ``2 h 5 min`` (zh_CN: ``8 秒``, ``3 分 5 秒``); ``—`` for unknown."""
    if age is None:
        return "—"
    seconds = age.total_seconds() if isinstance(age, dt.timedelta) else float(age)
    if not math.isfinite(seconds):
        return "—"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return gettext(lang, "{s} s").format(s=f"{seconds:.0f}")
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return gettext(lang, "{m} min {s} s").format(m=minutes, s=sec) if sec and minutes < 10 else gettext(lang, "{m} min").format(m=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return gettext(lang, "{h} h {m} min").format(h=hours, m=minutes) if minutes else gettext(lang, "{h} h").format(h=hours)
    return gettext(lang, "{d} d {h} h").format(d=hours // 24, h=hours % 24)


# -- live layers ---------------------------------------------------------------------------------
def layer_live_info(layer: Layer, now: dt.datetime, lang: str = "en") -> dict[str, Any]:
    """Data age and stale/error flags of one live layer, for its row in the layer list; texts in ``lang``."""
    health = getattr(layer, "health", None)
    params = getattr(layer, "params", None)
    stale_after = getattr(params, "stale_after", None)
    if health is None:  # a live layer without a health record: nothing to judge
        return {"age": "", "stale": False, "error": "", "tip": "", "color": ""}
    age = health.data_age(now)
    error = health.error or ""
    stale = bool(error) or (isinstance(stale_after, dt.timedelta) and health.is_stale(now, stale_after))
    newest = getattr(health, "newest_reading", None)
    seen = (gettext(lang, "newest reading {time}").format(time=fmt_clock(newest)) if newest is not None
            else gettext(lang, "last update {time}").format(time=fmt_clock(health.last_success)))
    if error:
        tip = gettext(lang, "source failing since {time}: {error}").format(time=fmt_clock(health.last_error), error=error)
    elif age is None:
        tip = gettext(lang, "no data received yet")
    elif stale:
        tip = gettext(lang, "{seen}: no new data for {age} (stale after {limit})").format(seen=seen, age=fmt_age(age, lang), limit=fmt_age(stale_after, lang))
    else:
        tip = seen
    if not error and getattr(health, "last_poll", None) is not None and health.last_success is not None:
        tip += gettext(lang, "; last poll {time}").format(time=fmt_clock(health.last_success))
    losses = dict(getattr(health, "dropped", {}) or {})
    if losses:  # the drop counters' own names (twin.readings), in words of the catalogue
        counts = ", ".join(f"{n} {gettext(lang, DROP_REASONS.get(reason, reason.replace('_', ' ')))}" for reason, n in sorted(losses.items()))
        tip += gettext(lang, "; dropped {counts}").format(counts=counts)
    if getattr(health, "late", 0):
        tip += gettext(lang, "; {n} arrived late").format(n=health.late)
    return {
        "age": gettext(lang, "no data yet") if age is None else gettext(lang, "data {age} old").format(age=fmt_age(age, lang)),
        "stale": stale,
        "error": error,
        "tip": tip,
        "color": "error" if error else "warning",
    }


def shows_labels(layer: Layer, scene: Scene) -> bool:
    """Whether a layer draws VTK text labels (which only the remote, server-rendered view shows).

    True when its current visual has labels, or when it is a live layer configured to label
    points (its labels may come and go with the data).
    """
    try:
        if layer.visual(scene.frame).style.labels:
            return True
    except Exception as exc:  # noqa: BLE001  (a broken layer is reported by the view, not here)
        log.debug("layer %s: no visual to inspect: %s", layer.id, exc)
        return False
    labels = getattr(getattr(layer, "params", None), "labels", None)
    return isinstance(layer, LiveLayer) and isinstance(labels, str) and labels not in ("none", "")


# -- alerts --------------------------------------------------------------------------------------
def _unit(scene: Scene, layer_id: str) -> str:
    try:
        layer = scene[layer_id]
    except KeyError:
        return ""
    unit = getattr(layer, "unit", None)
    return str(unit) if unit else UNITS.get(getattr(layer, "type_name", ""), "")


def _value_text(value: Any, rule: Any, unit: str, lang: str) -> str:
    """An alert's value for people in ``lang``: the reading with its unit, or for a stale rule how long no data came ('' for none)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    if isinstance(rule, StaleRule):
        return gettext(lang, "no data") if not math.isfinite(value) else gettext(lang, "no data for {age}").format(age=fmt_age(value, lang))
    text = f"{value:.0f}" if unit else f"{value:.4g}"
    return f"{text} {unit}".strip()


def _key_text(key: str, lang: str) -> str:
    """Where an alert is, by its key: a feature's id as it is, a whole layer (:data:`LAYER_KEY`) in words of ``lang``."""
    return gettext(lang, LAYER_WIDE) if key == LAYER_KEY else key


def _alert_title(rule: Any, recorded: str, lang: str) -> str:
    """The alert's title in ``lang``: its rule's (per language when the scene gives several), else the one the alert recorded."""
    return rule.title_in(lang) if rule is not None else recorded


def _place_name(scene: Scene, layer_id: str, name: str, lang: str) -> str:
    """An alert's place name in ``lang`` where the layer made it (an H3 level name, :meth:`Layer.own_texts`), else as recorded."""
    try:
        texts = scene[layer_id].own_texts()
    except KeyError:
        return name
    return text_in(dict(texts[name]), lang) if name in texts else name


def alert_rows(engine: AlertEngine, scene: Scene, now: dt.datetime, lang: str = "en", limit: int = 50) -> list[dict[str, Any]]:
    """Open alerts, firing first, then pending; most severe and oldest first within each; texts (title, value, peak,
    duration, a place name the layer made) in ``lang``."""
    rules = {rule.id: rule for rule in scene.alerts}
    alerts = sorted(
        engine.active(),
        key=lambda a: (a.state is not AlertState.FIRING, SEVERITY_RANK.get(a.severity, 9), a.since, a.id),
    )
    rows = []
    for alert in alerts[:limit]:
        rule = rules.get(alert.rule_id)
        unit = _unit(scene, alert.layer_id)
        where = alert.lon is not None and alert.lat is not None and math.isfinite(alert.lon) and math.isfinite(alert.lat)
        peak = "" if alert.peak is None or isinstance(rule, StaleRule) or alert.peak == alert.value else gettext(lang, "peak {value}").format(
            value=f"{alert.peak:.0f} {unit}".strip())
        rows.append(
            {
                "id": alert.id,
                "severity": alert.severity,
                "color": SEVERITY_COLORS.get(alert.severity, "#94a3b8"),
                "title": _alert_title(rule, alert.title, lang),
                "name": _place_name(scene, alert.layer_id, alert.name, lang) if alert.name else "",
                "key": _key_text(alert.key, lang),
                "layer": alert.layer_id,
                "value": _value_text(alert.value, rule, unit, lang) or "—",
                "number": None if alert.value is None or not math.isfinite(alert.value) else round(alert.value, 3),
                "peak": peak,
                "since": fmt_clock(alert.since),
                "duration": fmt_age(now - alert.since, lang),
                "state": alert.state.value,
                "acknowledged": alert.acknowledged,
                "acknowledged_by": alert.acknowledged_by or "",
                "can_fly": where,
            }
        )
    return rows


def event_row(event: AlertEvent, serial: int, scene: Scene | None = None, lang: str = "en") -> dict[str, Any]:
    """One line of the event log, its texts (title, value, a place name the layer made) in ``lang``."""
    alert = event.alert
    rule = next((r for r in scene.alerts if r.id == alert.get("rule_id")), None) if scene is not None else None
    layer_id, name = str(alert.get("layer_id")), str(alert.get("name") or "")
    return {
        "n": serial,
        "at": fmt_clock(event.at),
        "kind": event.kind,
        "color": EVENT_COLORS.get(event.kind, "#94a3b8"),
        "title": _alert_title(rule, str(alert.get("title") or alert.get("rule_id") or ""), lang),
        "name": (_place_name(scene, layer_id, name, lang) if scene is not None and name else name) or _key_text(str(alert.get("key") or ""), lang),
        "value": _value_text(alert.get("value"), rule, _unit(scene, layer_id) if scene is not None else "", lang),
    }


# -- help within reach ---------------------------------------------------------------------------
def focus_dict(focus: Focus, scene: Scene, limit: int = 12) -> dict[str, Any] | None:
    """The focused alert for the drawer: name, where, and the resources within reach (nearest first); None without location."""
    if focus.lon is None or focus.lat is None:
        return None
    titles = {layer.id: layer.title for layer in scene.layers}
    rows = []
    for _, row in focus.resources.head(limit).iterrows():
        name, kind = row.get("name"), row.get("kind")
        rows.append(
            {
                "layer": titles.get(str(row["layer"]), str(row["layer"])),
                "name": f"#{int(row['feature'])}" if name is None or (isinstance(name, float) and math.isnan(name)) else str(name),
                "kind": "" if kind is None or (isinstance(kind, float) and math.isnan(kind)) else str(kind),
                "distance": f"{float(row['distance_m']):,.0f} m",
            }
        )
    return {
        "id": focus.alert_id,
        "name": focus.name,
        "lonlat": f"{focus.lon:.5f}, {focus.lat:.5f}",
        "has_resources": bool(focus.resource_layers),
        "resources": rows,
        "radius": f"{focus.radius_m / 1000:g} km",
    }
