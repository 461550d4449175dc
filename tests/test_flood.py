"""Flood points: levels, bad readings, stale gauges, alerts from simulated rain, image regression."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from imaging import compare_to_reference, hue_share

import twin
from twin.errors import SceneFileError
from twin.plugins import layer_types, register_source, source_types
from twin.readings import ReadingsBuffer
from twin.source import ReadingsSource, SourceParams

T0 = dt.datetime(2026, 7, 1, 18, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
STATIONS = gpd.GeoDataFrame(
    {"id": ["A", "B", "C", "D"], "name": ["河南中路", "福州路", "九江路", "汉口路"], "hidden_danger": [False, False, True, False]},
    geometry=[shapely.Point(121.4800, 31.2300), shapely.Point(121.4815, 31.2300), shapely.Point(121.4830, 31.2300), shapely.Point(121.4845, 31.2300)],
    crs="EPSG:4326",
)


class TableParams(SourceParams):
    name: str = "default"


class TableSource(ReadingsSource):
    """Readings that have arrived in an in-test table (TABLES[name]); fails when the table is None.

    Like a feed that delivers what has arrived, it returns every row whatever its timestamp:
    late readings and readings from gauges with fast clocks come through.
    """

    Params = TableParams
    TABLES: ClassVar[dict[str, pd.DataFrame | None]] = {}

    def readings(self, start, end):
        table = self.TABLES[self.params.name]
        if table is None:
            raise ConnectionError("gauge server down")
        return table


class StationSource(twin.source.Source):
    """The four test stations."""

    def read(self, bbox=None):
        return STATIONS


@pytest.fixture(autouse=True)
def _plugins():
    register_source(TableSource, "table")
    register_source(StationSource, "test_stations")
    yield
    source_types().unregister("table")
    source_types().unregister("test_stations")


def readings(rows: list[tuple[str, float, object]]) -> pd.DataFrame:
    """(sensor, minute after T0, value) rows at the station's position."""
    pos = {r.id: (r.geometry.x, r.geometry.y) for r in STATIONS.itertuples()}
    return pd.DataFrame(
        {
            "sensor_id": [s for s, _, _ in rows],
            "lon": [pos[s][0] for s, _, _ in rows],
            "lat": [pos[s][1] for s, _, _ in rows],
            "time": [T0 + dt.timedelta(minutes=m) for _, m, _ in rows],
            "value": [v for _, _, v in rows],
        }
    )


def flood_layer(name: str = "default", **params):
    Flood = layer_types().get("flood_points")
    return Flood("flood", source={"type": "table", "name": name}, stations={"type": "test_stations"}, **params)


def at(layer, minute: float):
    now = T0 + dt.timedelta(minutes=minute)
    layer.refresh(now)
    layer.set_time(now)
    return layer.current()


def test_levels_with_default_and_configured_thresholds() -> None:
    TableSource.TABLES["default"] = readings([("A", 0, 5.0), ("B", 0, 17.0), ("C", 0, 30.0), ("D", 0, 15.0)])
    cur = at(flood_layer(), 1)
    assert cur["level"].tolist() == ["normal", "warning", "alarm", "warning"]
    assert cur["depth"].tolist() == [5.0, 17.0, 30.0, 15.0]
    cur = at(flood_layer(warning=10, alarm=16), 1)
    assert cur["level"].tolist() == ["normal", "alarm", "alarm", "warning"]


def test_bad_readings_are_dropped_and_counted() -> None:
    table = readings([("A", 0, 12.0), ("A", 1, -3.0), ("B", 0, None), ("B", 1, "deep"), ("C", 2, 25.0), ("C", 2, 26.0), ("D", 60, 40.0)])
    table = pd.concat([table.astype({"time": object}), pd.DataFrame({"sensor_id": ["D"], "lon": [121.48], "lat": [31.23], "time": ["not a time"], "value": [9.0]})])
    TableSource.TABLES["default"] = table
    layer = flood_layer()
    cur = at(layer, 3)
    report = layer.health.last_report
    assert report.dropped == {"below_minimum": 1, "bad_value": 2, "future_time": 1, "bad_time": 1, "duplicate": 1}
    assert cur.loc["A", "depth"] == 12.0  # the negative reading did not replace the good one
    assert cur.loc["C", "depth"] == 26.0  # duplicate timestamp: the last one wins
    assert cur.loc["B", "level"] == "stale" and np.isnan(cur.loc["B", "depth"])  # missing depth is not 0
    assert cur.loc["D", "level"] == "stale"  # its only reading is 57 minutes in the future


def test_silent_gauge_is_stale_not_zero() -> None:
    TableSource.TABLES["default"] = readings([("A", 0, 22.0), ("B", 0, 3.0), ("B", 15, 4.0)])
    layer = flood_layer(stale_after="10m")
    assert at(layer, 5).loc["A", "level"] == "alarm"
    cur = at(layer, 15)
    assert cur.loc["A", "level"] == "stale" and np.isnan(cur.loc["A", "depth"])
    assert cur.loc["B", "level"] == "normal"
    snap = layer.snapshot(T0 + dt.timedelta(minutes=15))
    assert np.isnan(snap.table.loc["A", "value"]) and snap.table.loc["A", "name"] == "河南中路"


def test_late_readings_land_in_their_window_and_replay_shows_the_past() -> None:
    TableSource.TABLES["default"] = readings([("A", 0, 5.0), ("A", 10, 25.0)])
    layer = flood_layer(stale_after="30m")
    at(layer, 11)
    TableSource.TABLES["default"] = readings([("A", 0, 5.0), ("A", 10, 25.0), ("A", 5, 18.0), ("A", 12, 30.0)])  # A@5 arrives late
    now = T0 + dt.timedelta(minutes=13)
    layer.refresh(now)
    assert layer.buffer.data["value"].tolist() == [5.0, 18.0, 25.0, 30.0]  # time order restored
    layer.set_time(T0 + dt.timedelta(minutes=6))  # replay: the scene shows 6 minutes past
    assert layer.current().loc["A", "depth"] == 18.0


def test_failed_poll_keeps_the_last_good_data() -> None:
    TableSource.TABLES["default"] = readings([("A", 0, 22.0)])
    layer = flood_layer()
    at(layer, 1)
    TableSource.TABLES["default"] = None
    cur = at(layer, 2)
    assert cur.loc["A", "depth"] == 22.0
    assert "gauge server down" in layer.health.error and layer.health.last_success == T0 + dt.timedelta(minutes=1)


def test_readings_buffer_span_and_order() -> None:
    buf = ReadingsBuffer(span=dt.timedelta(minutes=30))
    rows = readings([("A", 20, 1.0), ("A", 0, 2.0), ("A", -40, 3.0), ("A", 10, 4.0)])
    report = buf.ingest(rows, T0 + dt.timedelta(minutes=25))
    assert report.dropped == {"too_old": 1}
    assert buf.data["value"].tolist() == [2.0, 4.0, 1.0]
    window = buf.window(T0 + dt.timedelta(minutes=15), dt.timedelta(minutes=10))
    assert window["value"].tolist() == [4.0]


def test_scene_file_validates_flood_params(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("version: 1\nlayers:\n  - id: f\n    type: flood_points\n    source: {type: flood_sim}\n    warning: 25\n    alarm: 20\n", encoding="utf-8")
    with pytest.raises(SceneFileError, match="warning .25.0 cm. must not be above alarm"):
        twin.Scene.from_file(path)


def test_demo_rain_drives_alerts() -> None:
    scene = twin.Scene.from_file(Path(__file__).resolve().parents[1] / "scenes" / "demo.yaml")
    start = dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.timezone.utc)  # a storm starts on the half hour
    kinds: list[str] = []
    scene.alert_engine.subscribe(lambda event: kinds.append(f"{event.alert['rule_id']}:{event.kind}"))
    for minute in range(31):
        scene.tick(start + dt.timedelta(minutes=minute))
    firing_deep = [k for k in kinds if k == "road_flooded:firing"]
    assert len(firing_deep) >= 3, kinds
    assert "road_flooded:resolved" in kinds  # the water drains after the storm
    assert "gauge_silent:firing" in kinds  # a gauge went silent mid-storm
    assert "feed_down:firing" not in kinds  # the feed itself kept delivering
    history = scene.alert_engine.history
    assert any(a.rule_id == "road_flooded" and a.peak >= 20 and a.name and a.lon for a in history)


def test_image_three_levels_in_distinct_colours() -> None:
    TableSource.TABLES["default"] = readings([("A", 0, 5.0), ("B", 0, 17.0), ("C", 0, 30.0), ("D", 0, 40.0)])
    scene = twin.Scene("flood test", center=(121.4822, 31.2300), cameras={"side": {"target": [121.4822, 31.2300, 60], "heading": 0, "pitch": 20, "range": 900}}, camera="side",
                       settings={"background_top": None, "background": "#101418", "show_legend": False})
    scene.add(flood_layer(stale_after="2h", labels="none"))
    scene.set_time(T0 + dt.timedelta(minutes=1))
    scene["flood"].refresh(T0 + dt.timedelta(minutes=1))
    from twin.render.view import SceneView

    view = SceneView(scene, size=(480, 320))
    view.sync()
    image = view.image()
    view.close()
    green, orange, red, purple = hue_share(image, 135), hue_share(image, 42), hue_share(image, 3), hue_share(image, 280)
    assert green > 0.002 and orange > 0.002 and red > 0.01 and purple > 0.001, (green, orange, red, purple)
    assert red > 2 * orange  # two alarm columns, taller than the warning one
    compare_to_reference(image, "flood_levels")


def test_a_flood_layer_with_no_stations_yet_draws_empty() -> None:
    """Found in CI: the app draws live layers before their first poll; an empty station list must draw nothing, not raise."""
    from twin.geo import Frame

    class NoStations(twin.source.Source):
        def read(self, bbox=None):
            return STATIONS.iloc[:0]

    register_source(NoStations, "no_stations")
    try:
        TableSource.TABLES["default"] = readings([])
        layer = layer_types().get("flood_points")("flood", source={"type": "table"}, stations={"type": "no_stations"}, labels="all")
        at(layer, 1)
        visual = layer.visual(Frame.auto(121.48, 31.23))
        assert visual.mesh.n_cells == 0 and visual.style.labels == ()
    finally:
        source_types().unregister("no_stations")


def _legend_and_labels(**params):
    from twin.geo import Frame

    TableSource.TABLES["default"] = readings([("A", 0, 5.0), ("B", 0, 17.0), ("C", 0, 30.0)])  # D never reports: no data
    layer = flood_layer(labels="alerting", **params)
    at(layer, 1)
    style = layer.visual(Frame.auto(121.48, 31.23)).style
    return style.legend, [label.text for label in style.labels]


def test_the_legend_is_worded_per_language_not_mixed() -> None:
    """The legend's title and level names come in Chinese and in English, never both in one text ("正常 normal")."""
    legend, labels = _legend_and_labels(warning=10, alarm=25)
    assert (legend.title, dict(legend.titles)) == ("积水深度 ≥10/25 cm", {"zh_CN": "积水深度 ≥10/25 cm", "en": "water depth ≥10/25 cm"})
    assert [(e.label, dict(e.labels)) for e in legend.entries] == [
        ("正常", {"zh_CN": "正常", "en": "normal"}), ("预警", {"zh_CN": "预警", "en": "warning"}), ("报警", {"zh_CN": "报警", "en": "alarm"}),
        ("无数据", {"zh_CN": "无数据", "en": "no data"}), ("隐患点", {"zh_CN": "隐患点", "en": "hidden danger"})]
    assert labels == ["福州路 17 cm", "九江路 30 cm", "汉口路 无数据"]  # rendered labels: the default language


def test_level_labels_from_the_scene_one_string_or_one_per_language(tmp_path: Path) -> None:
    """A scene file's own labels: a plain string (the older form) stays as given in every language; one per language
    reaches the legend per language; the stale label is also the 3D label of a silent gauge."""
    legend, labels = _legend_and_labels(level_labels={"alarm": "危险", "stale": {"zh_CN": "离线", "en": "offline"}})
    assert [(e.label, dict(e.labels)) for e in legend.entries][2:4] == [("危险", {}), ("离线", {"zh_CN": "离线", "en": "offline"})]
    assert labels[-1] == "汉口路 离线"
    path = tmp_path / "s.yaml"
    path.write_text("version: 1\nlayers:\n  - id: f\n    type: flood_points\n    source: {type: flood_sim}\n"
                    "    level_labels: {alarm: {zh_CN: 报警, en: alarm}, flooded: 淹没}\n", encoding="utf-8")
    with pytest.raises(SceneFileError, match=r"s\.yaml:6: .*level_labels: Value error, unknown level\(s\) flooded; levels: normal, warning, alarm, stale, hidden_danger"):
        twin.Scene.from_file(path)
    path.write_text(path.read_text(encoding="utf-8").replace(", flooded: 淹没", "").replace("en: alarm", "en: ''"), encoding="utf-8")
    with pytest.raises(SceneFileError, match=r"s\.yaml:6: .*level_labels\.alarm: Value error, the en text is empty"):
        twin.Scene.from_file(path)
