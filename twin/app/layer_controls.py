"""Style controls in each layer's row: colour by an attribute (numbers through a colormap with a range, other values
through a palette), a filter (values, or a range of numbers), and for live H3 layers the window and the aggregate.

Every change goes through :meth:`twin.session.Session.set_layer` as a ``style`` change, so the views recolour or
threshold the mesh they have (no geometry rebuild). State: ``twin_controls`` (layer id → what its controls show) and
``twin_control_error`` (layer id → the one-line error of the last change that was refused).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from trame.app import TrameComponent
from trame.decorators import controller, trigger
from trame.widgets import html

from twin.app.bridge import LoopBridge
from twin.app.i18n import tr, tr_expr, tr_fmt
from twin.errors import TwinError
from twin.layer import Layer
from twin.session import Session
from twin.style import ValueRange

__all__ = ["AGGREGATES", "COLORMAPS", "PALETTES", "WINDOWS_MIN", "LayerControls", "attribute_info", "controls_of"]

log = logging.getLogger(__name__)

COLORMAPS = ("viridis", "magma", "plasma", "cividis", "YlOrRd", "YlGnBu", "Blues", "Reds", "RdYlGn_r")
PALETTES = ("tab10", "tab20", "Set1", "Set2", "Set3", "Pastel1")
WINDOWS_MIN = (1, 5, 10, 15, 30, 60)
AGGREGATES = ("count", "sum", "mean", "max")
_MAX_VALUES = 40


def attribute_info(data: pd.DataFrame) -> list[dict[str, Any]]:
    """The attributes a control may colour or filter by: name, numeric or not, range of the numbers, up to 40 distinct values."""
    out = []
    for column in data.columns:
        if column == "geometry" or str(column).startswith("_"):
            continue
        values = data[column]
        numeric = bool(pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))
        info: dict[str, Any] = {"name": str(column), "numeric": numeric, "min": None, "max": None, "values": []}
        if numeric:
            finite = values.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = finite[np.isfinite(finite)]
            if len(finite):
                info["min"], info["max"] = float(finite.min()), float(finite.max())
        elif pd.api.types.is_datetime64_any_dtype(values):
            continue
        else:
            distinct = values.dropna().head(100_000).astype(str).unique()  # as text: a column may hold lists
            info["values"] = sorted(distinct)[:_MAX_VALUES]
        out.append(info)
    return out


def controls_of(layer: Layer) -> dict[str, Any]:
    """What the controls of ``layer`` show now: which controls it has (``color_by``, ``colormap``, ``palette``, ``live``),
    their values, its attributes and its filter (one column: values or a range)."""
    fields = type(layer).Params.model_fields
    params = layer.params
    try:
        data = layer.loaded_data()  # never a read on the event loop: a frozen server must not hold the page
        attributes = attribute_info(data) if data is not None else []
    except Exception as exc:  # noqa: BLE001  (a layer that cannot load shows its error badge; no controls)
        log.debug("layer %s: no attributes for controls: %s", layer.id, exc)
        attributes = []
    where = dict(layer.where or {})
    column, rule = next(iter(where.items()), (None, None))
    clim = getattr(params, "clim", None)
    window = getattr(params, "window", None)
    return {
        "attributes": attributes,
        "has_color_by": "color_by" in fields,
        "has_colormap": "colormap" in fields,
        "has_palette": "palette" in fields,
        "color_by": getattr(params, "color_by", None) or "",
        "colormap": getattr(params, "colormap", ""),
        "palette": getattr(params, "palette", ""),
        "clim_min": "" if clim is None else _number(clim[0]),
        "clim_max": "" if clim is None else _number(clim[1]),
        "where_column": column or "",
        "where_values": [str(v) for v in rule] if isinstance(rule, list) else [],
        "where_min": _number(rule.min) if isinstance(rule, ValueRange) and rule.min is not None else "",
        "where_max": _number(rule.max) if isinstance(rule, ValueRange) and rule.max is not None else "",
        "live": "window" in fields and "aggregate" in fields,
        "window_min": round(window.total_seconds() / 60) if window is not None else None,
        "aggregate": getattr(params, "aggregate", ""),
    }


def _number(value: float) -> str:
    return f"{value:g}"


def _float(text: object) -> float | None:
    """A number typed into a control ('' or nothing: none); TwinError for text that is no finite number."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TwinError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise TwinError(f"{text!r} is not a finite number")
    return value


class LayerControls(TrameComponent):
    """Colour-by, filter and live-window controls for every layer of the session's scene."""

    def __init__(self, server: Any, session: Session, bridge: LoopBridge) -> None:
        super().__init__(server)
        self.session = session
        self.state.twin_control_error = {}
        self.state.twin_filter_open = {}
        self.refresh()
        session.layer_changed.connect(  # one waiting refresh per restyled layer, however far ticks run ahead of the page's loop
            lambda change: "style" in change.kinds and bridge.soon(lambda: self.refresh(change.layer_id), key=(self.refresh, change.layer_id)))

    def refresh(self, layer_id: str | None = None) -> None:
        """Push the controls of one layer (or all)."""
        with self.session.lock:
            current = dict(self.state.twin_controls or {}) if layer_id else {}
            for layer in self.session.scene.layers:
                if layer_id is None or layer.id == layer_id:
                    current[layer.id] = controls_of(layer)
        self.state.twin_controls = current

    def _set(self, layer_id: str, **changes: Any) -> None:
        """Apply a change through the session; a refused one is shown under the layer as one line."""
        errors = dict(self.state.twin_control_error or {})
        try:
            self.session.set_layer(layer_id, **changes)
            errors.pop(layer_id, None)
        except TwinError as exc:
            log.warning("layer %s: %s", layer_id, exc)
            errors[layer_id] = str(exc)
            self.refresh(layer_id)
        self.state.twin_control_error = errors

    @controller.set("twin_set_color_by")
    @trigger("twin_set_color_by")
    def set_color_by(self, layer_id: str, column: str) -> None:
        """Colour by ``column`` ('' for one colour); the colour range starts from the data's again."""
        self._set(layer_id, color_by=column or None, clim=None)

    @controller.set("twin_set_colormap")
    @trigger("twin_set_colormap")
    def set_colormap(self, layer_id: str, colormap: str) -> None:
        self._set(layer_id, colormap=colormap)

    @controller.set("twin_set_palette")
    @trigger("twin_set_palette")
    def set_palette(self, layer_id: str, palette: str) -> None:
        self._set(layer_id, palette=palette)

    @controller.set("twin_set_clim")
    @trigger("twin_set_clim")
    def set_clim(self, layer_id: str, low: object, high: object) -> None:
        """The colormap's value range (both empty: the data's 2–98 %)."""
        try:
            lo, hi = _float(low), _float(high)
            if (lo is None) != (hi is None):
                raise TwinError("give both ends of the colour range, or neither")
            if lo is not None and hi is not None and lo >= hi:
                raise TwinError(f"colour range {lo:g} .. {hi:g}: the low end must be below the high end")
        except TwinError as exc:
            self.state.twin_control_error = {**(self.state.twin_control_error or {}), layer_id: f"layer {layer_id!r}: {exc}"}
            return
        self._set(layer_id, clim=None if lo is None else (lo, hi))

    @controller.set("twin_set_filter_values")
    @trigger("twin_set_filter_values")
    def set_filter_values(self, layer_id: str, column: str, values: list[str]) -> None:
        """Show only features whose ``column`` is one of ``values`` (none chosen: no filter)."""
        self._set(layer_id, where={column: list(values)} if column and values else None)

    @controller.set("twin_set_filter_range")
    @trigger("twin_set_filter_range")
    def set_filter_range(self, layer_id: str, column: str, low: object, high: object) -> None:
        """Show only features whose ``column`` is within low .. high (either end may be empty)."""
        try:
            lo, hi = _float(low), _float(high)
        except TwinError as exc:
            self.state.twin_control_error = {**(self.state.twin_control_error or {}), layer_id: f"layer {layer_id!r}: filter {column}: {exc}"}
            return
        self._set(layer_id, where={column: {"min": lo, "max": hi}} if column and (lo is not None or hi is not None) else None)

    @controller.set("twin_clear_filter")
    @trigger("twin_clear_filter")
    def clear_filter(self, layer_id: str) -> None:
        self._set(layer_id, where=None)

    @controller.set("twin_set_window")
    @trigger("twin_set_window")
    def set_window(self, layer_id: str, minutes: object) -> None:
        """A live layer's window, in minutes."""
        self._set(layer_id, window=f"{_float(minutes) or 0:g}m")

    @controller.set("twin_set_aggregate")
    @trigger("twin_set_aggregate")
    def set_aggregate(self, layer_id: str, aggregate: str) -> None:
        self._set(layer_id, aggregate=aggregate)

    # -- UI (inside the layer list's v-for "layer in twin_layers") ---------------------------
    def ui(self) -> None:
        """The controls of ``layer`` (hidden for a layer in error)."""
        c = "twin_controls[layer.id]"
        with html.Div(v_if=f"!layer.error && {c}", classes="twin-controls"):
            self._color_controls(c)
            self._filter_controls(c)
            self._live_controls(c)
            html.Div("{{ twin_control_error[layer.id] }}", v_if="twin_control_error[layer.id]", classes="text-caption text-error twin-control-error")

    @staticmethod
    def _select(label: str, cls: str, value: str, change: str, **attrs: Any) -> html.Select:
        """A native select labelled ``label`` (a template text: ``tr(msgid)``) (keyboard- and test-friendly) bound to ``value``, calling ``change`` with the choice."""
        with html.Label(classes="twin-control"):
            html.Span(label, classes="twin-control-label")
            return html.Select(classes=f"twin-select {cls}", raw_attrs=[f':value="{value}"', f'@change="{change}"'], **attrs)

    def _color_controls(self, c: str) -> None:
        with html.Div(v_if=f"{c}.has_color_by", classes="twin-control-row"), self._select(tr("Colour by"), "twin-color-by", f"{c}.color_by", "trigger('twin_set_color_by', [layer.id, $event.target.value])"):
            html.Option(tr("one colour"), value="")
            html.Option("{{ a.name }}", v_for=f"a in {c}.attributes", key="a.name", raw_attrs=[':value="a.name"'])
        numeric = f"({c}.has_colormap && (!{c}.has_color_by || ({c}.attributes.find(a => a.name === {c}.color_by) || {{}}).numeric))"
        with html.Div(v_if=numeric, classes="twin-control-row"):
            with self._select(tr("Colormap"), "twin-colormap", f"{c}.colormap", "trigger('twin_set_colormap', [layer.id, $event.target.value])"):
                for name in COLORMAPS:
                    html.Option(name, value=name)
            with html.Label(classes="twin-control"):
                html.Span(tr("Range"), classes="twin-control-label")
                ends = "$event.target.parentElement.querySelector('.twin-clim-min').value, $event.target.parentElement.querySelector('.twin-clim-max').value"
                for end in ("min", "max"):
                    html.Input(type="number", step="any", classes=f"twin-number twin-clim-{end}", placeholder=(tr_expr("auto"),),
                               raw_attrs=[f':value="{c}.clim_{end}"', f"@change=\"trigger('twin_set_clim', [layer.id, {ends}])\""])
        with (
            html.Div(v_if=f"{c}.has_palette && {c}.color_by && !{numeric}", classes="twin-control-row"),
            self._select(tr("Palette"), "twin-palette", f"{c}.palette", "trigger('twin_set_palette', [layer.id, $event.target.value])"),
        ):
            for name in PALETTES:
                html.Option(name, value=name)

    @staticmethod
    def _filter_controls(c: str) -> None:
        column = f"({c}.attributes.find(a => a.name === (twin_filter_open[layer.id] || {c}.where_column)) || null)"
        with html.Div(v_if=f"{c}.attributes.length", classes="twin-control-row twin-filter"):
            with html.Label(classes="twin-control"):
                html.Span(tr("Filter"), classes="twin-control-label")
                with html.Select(classes="twin-select twin-filter-column", raw_attrs=[
                    f':value="twin_filter_open[layer.id] || {c}.where_column"',
                    ('@change="twin_filter_open = {...twin_filter_open, [layer.id]: $event.target.value}; '
                    "if (!$event.target.value) trigger('twin_clear_filter', [layer.id])\""),
                ]):
                    html.Option(tr("all features"), value="")
                    html.Option("{{ a.name }}", v_for=f"a in {c}.attributes", key="a.name", raw_attrs=[':value="a.name"'])
            with html.Select(v_if=f"{column} && !{column}.numeric", multiple=True, size=4, classes="twin-select twin-filter-values", raw_attrs=[
                f"@change=\"trigger('twin_set_filter_values', [layer.id, {column}.name, Array.from($event.target.selectedOptions).map(o => o.value)])\"",
            ]):
                html.Option("{{ v }}", v_for=f"v in {column}.values", key="v", raw_attrs=[':value="v"', f':selected="{c}.where_values.includes(v)"'])
            with html.Div(v_if=f"{column} && {column}.numeric", classes="twin-control"):
                ends = "$event.target.parentElement.querySelector('.twin-filter-min').value, $event.target.parentElement.querySelector('.twin-filter-max').value"
                for end in ("min", "max"):
                    html.Input(type="number", step="any", classes=f"twin-number twin-filter-{end}",
                               placeholder=(f"{column}.{end} === null ? '' : String({column}.{end})",),
                               raw_attrs=[f':value="{c}.where_{end}"', f"@change=\"trigger('twin_set_filter_range', [layer.id, {column}.name, {ends}])\""])

    @staticmethod
    def _live_controls(c: str) -> None:
        with html.Div(v_if=f"{c}.live", classes="twin-control-row twin-live-controls"):
            with LayerControls._select(tr("Window"), "twin-window", f"String({c}.window_min)", "trigger('twin_set_window', [layer.id, $event.target.value])"):
                for minutes in WINDOWS_MIN:
                    html.Option(tr_fmt("{n} min", n=str(minutes)), value=str(minutes))
            with LayerControls._select(tr("Aggregate"), "twin-aggregate", f"{c}.aggregate", "trigger('twin_set_aggregate', [layer.id, $event.target.value])"):
                html.Option(tr("count"), value="count")
                html.Option(tr("sum"), value="sum")
                html.Option(tr("mean"), value="mean")
                html.Option(tr("max"), value="max")
