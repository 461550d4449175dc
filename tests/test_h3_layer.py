"""The live H3 layer on small hand-checkable streams, and the real taxi fixes rendered."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

import twin
from twin.plugins import layer_types, register_source, source_types
from twin.source import ReadingsSource, SourceParams
from imaging import compare_to_reference, hue_share

T0 = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.timezone.utc)
A = (121.4737, 31.2304)  # two points in one res-9 cell, one point in another
A2 = (121.47375, 31.23045)
B = (121.4900, 31.2400)


def minutes(m: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=m)


class StreamParams(SourceParams):
    name: str = "s"


class StreamSource(ReadingsSource):
    """Readings that have arrived so far in STREAMS[name] (delivered whatever their time)."""

    Params = StreamParams
    STREAMS: dict[str, list[tuple]] = {}

    def readings(self, start, end):
        rows = self.STREAMS[self.params.name]
        return pd.DataFrame(rows, columns=["lon", "lat", "time", "value", "sensor_id"])


@pytest.fixture(autouse=True)
def _stream():
    register_source(StreamSource, "stream")
    StreamSource.STREAMS.clear()
    yield
    source_types().unregister("stream")


def reading(point, minute, value=1.0, sensor=None):
    return (point[0], point[1], minutes(minute), value, sensor or f"{point}-{minute}-{value}")


def layer(**params):
    H3 = layer_types().get("h3")
    defaults = {"resolution": 9, "window": "5m", "history": "2h"}
    return H3("crowd", source={"type": "stream", "name": "s"}, **{**defaults, **params})


def at(lyr, minute):
    lyr.refresh(minutes(minute))
    lyr.set_time(minutes(minute))
    return dict(zip([int(c) for c in lyr.cells], lyr.values))


def cell(point, res=9) -> int:
    return h3.str_to_int(h3.latlng_to_cell(point[1], point[0], res))


@pytest.mark.parametrize(("aggregate", "expected_a", "expected_b"), [("count", 3, 1), ("sum", 12, 5), ("mean", 4, 5), ("max", 7, 5)])
def test_aggregation_per_cell(aggregate, expected_a, expected_b) -> None:
    StreamSource.STREAMS["s"] = [reading(A, 1, 2.0), reading(A2, 2, 3.0), reading(A, 3, 7.0), reading(B, 3, 5.0)]
    values = at(layer(aggregate=aggregate), 4)
    assert values == {cell(A): expected_a, cell(B): expected_b}
    assert cell(A) == cell(A2) != cell(B)


def test_levels_with_chinese_labels_and_colours() -> None:
    levels = [{"at": 0, "label": "正常", "color": "#2ecc71"}, {"at": 3, "label": "较高", "color": "#ffb300"}, {"at": 5, "label": "高风险", "color": "#ff3b30"}]
    StreamSource.STREAMS["s"] = [reading(A, 1, sensor=f"a{i}") for i in range(5)] + [reading(B, 1, sensor=f"b{i}") for i in range(3)]
    lyr = layer(levels=levels)
    at(lyr, 2)
    names = dict(zip([int(c) for c in lyr.cells], lyr.level_names()))
    assert names == {cell(A): "高风险", cell(B): "较高"}
    colors, legend = lyr.cell_colors()
    by_cell = dict(zip([int(c) for c in lyr.cells], map(tuple, colors)))
    assert by_cell[cell(A)] == (255, 59, 48, 255) and by_cell[cell(B)] == (255, 179, 0, 255)
    assert [e.label for e in legend.entries] == ["正常 ≥ 0", "较高 ≥ 3", "高风险 ≥ 5"]


def test_window_expiry_fades_then_hides() -> None:
    StreamSource.STREAMS["s"] = [reading(A, 0), reading(B, 4)]
    lyr = layer(expired="fade", fade="10m")
    f = twin.Frame.auto(121.48, 31.23)
    at(lyr, 4)
    lyr.visual(f)
    row_a = list(lyr.cells).index(cell(A))
    at(lyr, 6)  # A's reading left the 5-minute window
    assert lyr.state[row_a] == 1 and np.isnan(lyr.values[row_a])
    assert tuple(lyr.cell_colors()[0][row_a]) == (89, 96, 107, 255)  # faded colour
    at(lyr, 16)  # and the fade span too
    assert lyr.state[row_a] == 2
    mesh = lyr.visual(f).mesh
    rows = np.asarray(mesh.cell_data["cell_row"]) == row_a
    tri = mesh.faces.reshape(-1, 4)[rows][:, 1:]
    pts = mesh.points[tri]
    assert np.allclose(pts[:, 0, :2], pts[:, 1, :2]) and np.allclose(pts[:, 0, :2], pts[:, 2, :2])  # collapsed: draws nothing

    hide = layer(expired="hide")
    at(hide, 4)
    at(hide, 6)
    assert hide.state[list(hide.cells).index(cell(A))] == 2


def test_live_tick_same_cells_rewrites_values_not_geometry() -> None:
    stream = [reading(A, 1, 2.0), reading(B, 1, 2.0)]
    StreamSource.STREAMS["s"] = stream
    lyr = layer(aggregate="max", height_scale=10.0)
    f = twin.Frame.auto(121.48, 31.23)
    at(lyr, 1)
    first = lyr.visual(f)
    faces = first.mesh.faces.copy()
    StreamSource.STREAMS["s"] = stream + [reading(A, 2, 9.0)]
    at(lyr, 2)
    second = lyr.visual(f)
    assert second.mesh is first.mesh and second.geometry_version == first.geometry_version
    assert second.points_version > first.points_version and second.style_version > first.style_version
    np.testing.assert_array_equal(second.mesh.faces, faces)
    assert float(second.mesh.points[:, 2].max()) == pytest.approx(0.5 + 90.0)
    # a new cell extends the geometry; the old cells keep their rows
    C = (121.50, 31.25)
    StreamSource.STREAMS["s"] = stream + [reading(A, 2, 9.0), reading(C, 3, 1.0)]
    at(lyr, 3)
    third = lyr.visual(f)
    assert third.geometry_version > second.geometry_version
    assert [int(c) for c in lyr.cells] == [cell(A), cell(B), cell(C)]


def test_new_cells_extend_the_mesh_without_recomputing_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    import twin_layers.h3_layer as module

    StreamSource.STREAMS["s"] = [reading(A, 1), reading(B, 1)]
    lyr = layer()
    f = twin.Frame.auto(121.48, 31.23)
    at(lyr, 1)
    before = lyr.visual(f).mesh.copy()
    asked: list[list[int]] = []
    real = module.h3.cells_to_boundaries
    monkeypatch.setattr(module.h3, "cells_to_boundaries", lambda cells: asked.append([int(c) for c in cells]) or real(cells))
    C = (121.50, 31.25)
    StreamSource.STREAMS["s"] = [reading(A, 1), reading(B, 1), reading(C, 2)]
    at(lyr, 2)
    after = lyr.visual(f).mesh
    assert asked == [[cell(C)]]  # only the new cell's boundary was computed
    n = before.n_points
    np.testing.assert_array_equal(after.points[:n, :2], before.points[:, :2])
    np.testing.assert_array_equal(after.faces[: len(before.faces)], before.faces)
    assert after.n_cells > before.n_cells


def test_late_and_bad_readings_and_replay() -> None:
    StreamSource.STREAMS["s"] = [reading(A, 1), reading(A, 2), (float("nan"), 31.2, minutes(2), 1.0, "x"), (200.0, 31.2, minutes(2), 1.0, "y"),
                                 (121.48, 31.23, "yesterday-ish", 1.0, "z"), reading(A, 2)]
    lyr = layer()
    assert at(lyr, 3) == {cell(A): 2}
    assert lyr.health.last_report.dropped == {"bad_coordinates": 2, "bad_time": 1, "duplicate": 1}
    StreamSource.STREAMS["s"] = StreamSource.STREAMS["s"] + [reading(A, 0.5), reading(A, 30)]  # one late, one new
    assert at(lyr, 31) == {cell(A): 1}
    lyr.set_time(minutes(3))  # replay: the window ending at minute 3 now has the late reading too
    assert dict(zip([int(c) for c in lyr.cells], lyr.values)) == {cell(A): 3}


def test_snapshot_feeds_alert_rules(tmp_path: Path) -> None:
    StreamSource.STREAMS["s"] = [reading(A, 1, sensor=f"a{i}") for i in range(6)]
    path = tmp_path / "s.yaml"
    path.write_text("version: 1\nframe: {center: [121.48, 31.23]}\nlayers:\n  - id: crowd\n    type: h3\n    source: {type: stream}\n"
                    "alerts:\n  - {id: crowded, kind: threshold, layer: crowd, above: 5}\n", encoding="utf-8")
    scene = twin.Scene.from_file(path)
    events = scene.tick(minutes(2))
    assert [e.kind for e in events] == ["pending", "firing"]
    assert events[-1].alert["key"] == f"{cell(A):x}" and events[-1].alert["value"] == 6


def test_taxi_fixes_bin_and_render(shared_data: Path) -> None:
    H3 = layer_types().get("h3")
    source = {"type": "file_readings", "path": str(shared_data / "shanghai_taxi_gps_sample.csv"), "lon": "longitude", "lat": "latitude", "time": "datetime", "sensor": "id"}
    lyr = H3("taxi", source=source, resolution=8, window="1d", history="2d", aggregate="count", height_scale=30.0, colormap="plasma", clim=(0, 20))
    raw = pd.read_csv(shared_data / "shanghai_taxi_gps_sample.csv")
    end = pd.Timestamp(raw["datetime"].max(), tz="Asia/Shanghai").to_pydatetime() + dt.timedelta(seconds=1)
    lyr.refresh(end)
    lyr.set_time(end)
    duplicates = raw.duplicated(["id", "datetime"], keep="last")
    assert lyr.health.last_report.dropped == {"duplicate": int(duplicates.sum())}  # repeated fixes: counted, dropped
    unique = raw[~duplicates]
    expected = pd.Series([h3.str_to_int(h3.latlng_to_cell(la, lo, 8)) for lo, la in zip(unique.longitude, unique.latitude)]).value_counts()
    got = pd.Series(lyr.values, index=[int(c) for c in lyr.cells])
    assert got.sort_index().to_dict() == expected.sort_index().astype(float).to_dict()
    scene = twin.Scene("taxi", center=(121.575, 31.287), cameras={"c": {"target": [121.575, 31.285], "heading": 20, "pitch": 50, "range": 26000}}, camera="c",
                       settings={"background": "#101418", "background_top": None, "show_legend": False})
    scene.add(lyr)
    from twin.render.view import SceneView

    view = SceneView(scene, size=(560, 360))
    view.sync()
    image = view.image()
    view.close()
    assert hue_share(image, 300, width=50, min_saturation=0.4) + hue_share(image, 40, width=25, min_saturation=0.4) > 0.002
    compare_to_reference(image, "taxi_h3")
