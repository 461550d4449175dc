"""Issue 17: readings aggregated per H3 cell and window over day-partitioned Parquet, in-process and on a local Dask
cluster, with the live h3 layer's semantics (end-inclusive windows, drops by reason, duplicates keep the last)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.aggregate import AggregateFile, aggregate_readings
from twin.alerts.rules import parse_duration
from twin.cli import main
from twin.errors import AggregateError

NOW = dt.datetime(2026, 7, 4, tzinfo=dt.timezone.utc)
WINDOW = pd.Timedelta(minutes=5)
DAYS = ("2026-07-01", "2026-07-02", "2026-07-03")


def write_day(root: Path, day: str, name: str, frame: pd.DataFrame) -> None:
    folder = root / f"day={day}"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / name, index=False)


def synthetic(root: Path, per_day: int = 30_000, seed: int = 0) -> pd.DataFrame:
    """Three days of readings in two files a day: an in-order file, then a late file (older times, revisions of earlier
    readings = duplicates, readings exactly on window ends and on midnight) and bad rows of every kind. Values are
    multiples of 0.5, so sums are exact in any order. Returns all rows in dataset (file, row) order."""
    rng = np.random.default_rng(seed)
    frames = []
    for day in DAYS:
        start = pd.Timestamp(day, tz="UTC")
        n = per_day
        secs = np.sort(rng.integers(0, 86_400, n))
        secs[:: 50] = (secs[:: 50] // 300) * 300  # on window ends (midnight included)
        main_part = pd.DataFrame(
            {
                "sensor_id": rng.integers(0, 400, n).astype(str),
                "lon": 121.40 + rng.random(n) * 0.15,
                "lat": 31.18 + rng.random(n) * 0.10,
                "time": start + pd.to_timedelta(secs, unit="s"),
                "value": rng.integers(0, 400, n) / 2,
            }
        )
        revised = main_part.sample(n // 20, random_state=seed).assign(value=lambda f: f["value"] + 0.5)  # duplicates, kept over the first
        late = main_part.sample(n // 10, random_state=seed + 1).assign(sensor_id=lambda f: "late-" + f["sensor_id"])
        edge = pd.DataFrame({"sensor_id": ["edge"] * 3, "lon": [121.47] * 3, "lat": [31.23] * 3,
                             "time": [start, start + pd.Timedelta(1, "ns"), start + pd.Timedelta(hours=24) - pd.Timedelta(1, "ns")], "value": [2.0, 4.0, 8.0]})
        bad = pd.DataFrame(
            {
                "sensor_id": ["bad"] * 5,
                "lon": [np.nan, 121.47, 121.47, 121.47, 121.47],
                "lat": [31.23] * 5,
                "time": [start + pd.Timedelta(hours=1), pd.NaT, start + pd.Timedelta(hours=2), pd.Timestamp(NOW) + pd.Timedelta(hours=1), start - pd.Timedelta(hours=1)],
                "value": [1.0, 1.0, np.nan, 1.0, 1.0],
            }
        )
        late_part = pd.concat([late.iloc[::-1], revised, edge, bad], ignore_index=True)  # newest first: out of time order
        write_day(root, day, "part-0.parquet", main_part)
        write_day(root, day, "part-1-late.parquet", late_part)
        frames += [main_part, late_part]
    return pd.concat(frames, ignore_index=True)


def reference(rows: pd.DataFrame, window: pd.Timedelta = WINDOW, resolution: int = 9, now: dt.datetime = NOW) -> tuple[pd.DataFrame, dict[str, int]]:
    """The aggregate by a plain pandas groupby over all rows at once, cells from h3-py; and the drops by reason."""
    t = pd.to_datetime(rows["time"], utc=True)
    day = rows.attrs.get("day")  # the folder each row was filed under
    reasons = {
        "bad_coordinates": ~np.isfinite(rows["lon"]) | ~np.isfinite(rows["lat"]),
        "bad_time": t.isna(),
        "bad_value": ~np.isfinite(rows["value"]),
        "future_time": t > pd.Timestamp(now) + pd.Timedelta(minutes=5),
        "outside_partition": t.dt.strftime("%Y-%m-%d") != day,
    }
    keep = pd.Series(True, index=rows.index)
    dropped = {}
    for reason, mask in reasons.items():
        dropped[reason] = int((mask & keep).sum())
        keep &= ~mask
    kept = rows[keep].assign(time=t[keep])
    duplicate = kept.duplicated(["sensor_id", "time"], keep="last")
    dropped["duplicate"] = int(duplicate.sum())
    kept = kept[~duplicate]
    length = window.value
    ends = -((-kept["time"].dt.as_unit("ns").astype("int64")) // length) * length
    cells = [int(h3.str_to_int(h3.latlng_to_cell(la, lo, resolution))) for lo, la in zip(kept["lon"], kept["lat"])]
    grouped = pd.DataFrame({"window_end": pd.to_datetime(ends.to_numpy(), utc=True), "cell": np.array(cells, dtype=np.uint64), "value": kept["value"].to_numpy()})
    out = grouped.groupby(["window_end", "cell"], sort=True)["value"].agg(["count", "sum", "mean", "max"]).reset_index()
    return out, {k: v for k, v in dropped.items() if v}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("readings")
    rows = synthetic(root)
    rows.attrs["day"] = np.repeat([d for d in DAYS for _ in (0, 1)], [len(pd.read_parquet(p)) for d in DAYS for p in sorted((root / f"day={d}").iterdir())])  # the folder of each row
    return root, rows


@pytest.fixture(scope="module")
def in_process(dataset: tuple[Path, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("out") / "cells.parquet"
    summary = aggregate_readings(dataset[0], out, resolution=9, window="5m", now=NOW, batch_rows=7_000)  # several batches a file
    return out, summary


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def test_in_process_equals_a_pandas_groupby_with_the_live_drop_rules(dataset: tuple[Path, pd.DataFrame], in_process: tuple[Path, object]) -> None:
    rows = dataset[1]
    out, summary = in_process
    expected, dropped = reference(rows)
    got = read(out)
    pd.testing.assert_frame_equal(got[["window_end", "cell", "count", "sum", "mean", "max"]], expected, check_exact=True, check_dtype=False)
    assert dict(summary.dropped) == dropped
    assert summary.rows_read == len(rows)
    assert summary.rows_written == len(expected) and summary.cells == expected["cell"].nunique()
    assert {"duplicate", "bad_coordinates", "bad_time", "bad_value", "future_time", "outside_partition"} <= set(summary.dropped)


def test_local_cluster_of_two_workers_gives_the_same_file(dataset: tuple[Path, pd.DataFrame], in_process: tuple[Path, object], tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GiB", dashboard_address=None) as cluster, Client(cluster) as client:
        summary = aggregate_readings(dataset[0], tmp_path / "cells.parquet", resolution=9, window="5m", now=NOW, batch_rows=7_000, scheduler=client)
    pd.testing.assert_frame_equal(read(tmp_path / "cells.parquet"), read(in_process[0]), check_exact=True)
    assert summary.engine.startswith("Dask cluster") and "2 workers" in summary.engine
    assert (summary.rows_read, summary.dropped, summary.cells) == (in_process[1].rows_read, in_process[1].dropped, in_process[1].cells)


def test_window_ends_are_inclusive_and_a_window_spanning_midnight_combines_both_days(tmp_path: Path) -> None:
    at = pd.Timestamp("2026-07-02", tz="UTC")
    point = {"lon": 121.47, "lat": 31.23}
    write_day(tmp_path / "r", "2026-07-01", "a.parquet", pd.DataFrame({"sensor_id": ["a", "b"], **point, "time": [at - pd.Timedelta(minutes=3), at - pd.Timedelta(minutes=5)], "value": [1.0, 16.0]}))
    write_day(tmp_path / "r", "2026-07-02", "a.parquet", pd.DataFrame({"sensor_id": ["a", "a"], **point, "time": [at, at + pd.Timedelta(1, "ns")], "value": [2.0, 4.0]}))
    aggregate_readings(tmp_path / "r", tmp_path / "c.parquet", window="5m", now=NOW)
    got = read(tmp_path / "c.parquet").set_index("window_end")[["count", "sum", "mean", "max"]]
    assert got.loc[at - pd.Timedelta(minutes=5)].tolist() == [1, 16.0, 16.0, 16.0]  # 23:55 exactly: the window ending then
    assert got.loc[at].tolist() == [2, 3.0, 1.5, 2.0]  # (23:55, 00:00]: one reading from each day
    assert got.loc[at + pd.Timedelta(minutes=5)].tolist() == [1, 4.0, 4.0, 4.0]


def test_same_as_the_live_h3_layer_on_real_taxi_fixes(shared_data: Path, tmp_path: Path) -> None:
    from twin_layers.h3_layer import H3Layer

    taxi = pd.read_csv(shared_data / "shanghai_taxi_gps_sample.csv")
    local = pd.to_datetime(taxi["datetime"]).dt.tz_localize("Asia/Shanghai")
    for day, rows in taxi.groupby(local.dt.tz_convert("UTC").dt.strftime("%Y-%m-%d")):
        write_day(tmp_path / "taxi", str(day), "fixes.parquet", rows)
    columns = {"sensor_id": "id", "time": "datetime", "lon": "longitude", "lat": "latitude", "value": "Speed"}
    summary = aggregate_readings(tmp_path / "taxi", tmp_path / "taxi.parquet", resolution=9, window="5m", columns=columns, time_zone="Asia/Shanghai", now=local.max())
    agg = AggregateFile(tmp_path / "taxi.parquet")
    live = H3Layer("live", resolution=9, window="5m", history="1d", aggregate="mean")
    frame = pd.DataFrame({"sensor_id": taxi["id"].astype(str), "lon": taxi["longitude"], "lat": taxi["latitude"], "time": local, "value": taxi["Speed"]})
    report = live.buffer.ingest(frame, local.max())
    assert summary.dropped == report.dropped == {"duplicate": 4}  # the sample repeats 4 fixes (same taxi, same second)
    ends = pd.unique(read(tmp_path / "taxi.parquet")["window_end"])
    assert len(ends) >= 5
    for end in ends:
        live.set_time(end.to_pydatetime())
        shown = agg.windows(end, end)
        values = pd.Series(live.values, index=live.cells)[lambda s: s.notna()].sort_index()
        assert np.array_equal(values.index.to_numpy(), np.sort(shown["cell"].to_numpy()))
        np.testing.assert_allclose(values.to_numpy(), shown.sort_values("cell")["mean"].to_numpy(), rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    readings=st.lists(
        st.tuples(st.integers(0, 5), st.integers(-3, 3 * 288 + 3), st.sampled_from([0, 1, 299, 300]), st.integers(0, 3), st.integers(0, 20)),
        min_size=1,
        max_size=60,
    ),
    window=st.sampled_from(["5m", "7m", "1h", "2d"]),
)
def test_any_readings_any_window_equal_the_reference(readings: list[tuple[int, int, int, int, int]], window: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Readings on and around window ends (any length, including windows longer than a day) in any file order."""
    root = tmp_path_factory.mktemp("prop")
    start = pd.Timestamp(DAYS[0], tz="UTC")
    rows = pd.DataFrame(
        [{"sensor_id": f"s{s}", "lon": 121.40 + 0.01 * c, "lat": 31.2, "time": start + pd.Timedelta(minutes=5 * k) - pd.Timedelta(seconds=o), "value": v / 2} for s, k, o, c, v in readings]
    )
    rows["day"] = rows["time"].dt.strftime("%Y-%m-%d")
    ordered = []
    for day, part in rows.groupby("day", sort=True):
        write_day(root, str(day), "p.parquet", part.drop(columns="day"))
        ordered.append(part)
    rows = pd.concat(ordered, ignore_index=True)
    rows.attrs["day"] = rows.pop("day").to_numpy()
    aggregate_readings(root, root / "c.parquet", window=window, now=NOW)
    expected, _ = reference(rows, window=pd.Timedelta(parse_duration(window)))
    got = read(root / "c.parquet")
    if expected.empty:
        assert got.empty
    else:
        pd.testing.assert_frame_equal(got, expected, check_exact=True, check_dtype=False)


# -- errors a user sees: one line naming the input -----------------------------------------
def test_missing_folder_file_outside_a_day_folder_and_missing_column(tmp_path: Path) -> None:
    with pytest.raises(AggregateError, match=r"^\S*nowhere: no such folder of readings$"):
        aggregate_readings(tmp_path / "nowhere", tmp_path / "c.parquet")
    (tmp_path / "flat").mkdir()
    pd.DataFrame({"lon": [1.0]}).to_parquet(tmp_path / "flat" / "x.parquet")
    with pytest.raises(AggregateError, match=r"x\.parquet: not under a day=YYYY-MM-DD folder"):
        aggregate_readings(tmp_path / "flat", tmp_path / "c.parquet")
    write_day(tmp_path / "r", "2026-07-01", "x.parquet", pd.DataFrame({"lon": [1.0], "lat": [2.0], "ts": [pd.Timestamp("2026-07-01", tz="UTC")]}))
    with pytest.raises(AggregateError, match=r"x\.parquet: no column 'time'; columns: lon, lat, ts$"):
        aggregate_readings(tmp_path / "r", tmp_path / "c.parquet")
    with pytest.raises(AggregateError, match=r"x\.parquet: no column 'kurs' \(for value\)"):
        aggregate_readings(tmp_path / "r", tmp_path / "c.parquet", columns={"time": "ts", "value": "kurs"})
    with pytest.raises(AggregateError, match=r"unknown reading field 'tme' \(did you mean 'time'\?\)"):
        aggregate_readings(tmp_path / "r", tmp_path / "c.parquet", columns={"tme": "ts"})
    assert not (tmp_path / "c.parquet").exists()


def test_bad_day_folder_and_a_file_that_is_not_parquet(tmp_path: Path) -> None:
    (tmp_path / "r" / "day=July").mkdir(parents=True)
    (tmp_path / "r" / "day=July" / "a.parquet").write_text("x")
    with pytest.raises(AggregateError, match=r"folder day=July does not name a day"):
        aggregate_readings(tmp_path / "r", tmp_path / "c.parquet")
    (tmp_path / "s" / "day=2026-07-01").mkdir(parents=True)
    (tmp_path / "s" / "day=2026-07-01" / "a.parquet").write_text("not parquet")
    with pytest.raises(AggregateError, match=r"a\.parquet: cannot read as Parquet: "):
        aggregate_readings(tmp_path / "s", tmp_path / "c.parquet")


def test_an_aggregate_file_that_is_not_one(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(AggregateError, match=r"x\.parquet: not an aggregate written by twin aggregate"):
        AggregateFile(tmp_path / "x.parquet")
    with pytest.raises(AggregateError, match=r"y\.parquet: cannot read the aggregate: no such file"):
        AggregateFile(tmp_path / "y.parquet")


# -- the command -------------------------------------------------------------------------------
def test_cli_aggregate_prints_a_summary(dataset: tuple[Path, pd.DataFrame], in_process: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["aggregate", str(dataset[0]), "--res", "9", "--window", "5m", "--out", str(tmp_path / "c.parquet"), "--now", NOW.isoformat(), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"read {len(dataset[1]):,} readings in 3 day(s) on this process" in out
    assert "dropped" in out and "duplicate" in out and "outside_partition" in out
    pd.testing.assert_frame_equal(read(tmp_path / "c.parquet"), read(in_process[0]), check_exact=True)


def test_cli_aggregate_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("twin.aggregate.run.CONNECT_TIMEOUT_S", 1.0)
    assert main(["aggregate", str(tmp_path / "none"), "--out", str(tmp_path / "c.parquet")]) == 1
    assert capsys.readouterr().err.strip() == f"twin: error: {tmp_path / 'none'}: no such folder of readings"
    write_day(tmp_path / "r", "2026-07-01", "x.parquet", pd.DataFrame({"lon": [1.0], "lat": [2.0], "time": [pd.Timestamp("2026-07-01", tz="UTC")]}))
    assert main(["aggregate", str(tmp_path / "r"), "--out", str(tmp_path / "c.parquet"), "--scheduler", "tcp://127.0.0.1:9", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("twin: error: cannot reach the Dask scheduler tcp://127.0.0.1:9") and "\n" not in err


# -- a scene shows and replays a precomputed aggregate --------------------------------------------
def test_h3_layer_replays_an_aggregate_from_a_scene_file(dataset: tuple[Path, pd.DataFrame], in_process: tuple[Path, object], tmp_path: Path) -> None:
    import twin

    out = in_process[0]
    (tmp_path / "cells.parquet").symlink_to(out)
    scene_file = tmp_path / "history.yaml"
    scene_file.write_text(
        "version: 1\nframe: {center: [121.47, 31.23]}\nlayers:\n  - id: hist\n    type: h3\n    resolution: 9\n    window: 5m\n    aggregate: mean\n"
        "    expired: fade\n    fade: 10m\n    source: {type: h3_aggregate, path: cells.parquet}\n",
        encoding="utf-8",
    )
    scene = twin.Scene.from_file(scene_file)
    layer = scene.layers[0]
    table = read(out)
    end = pd.Timestamp("2026-07-02 13:05", tz="UTC")
    for at in (end, end + pd.Timedelta(minutes=4, seconds=59)):  # between grid times: the window ending at or before
        scene.tick(at.to_pydatetime())
        shown = pd.Series(layer.values, index=layer.cells)[layer.state == 0].sort_index()
        expected = table[table["window_end"] == end].set_index("cell")["mean"].sort_index()
        pd.testing.assert_series_equal(shown, expected, check_names=False, check_index_type=False)
        faded = set(table[(table["window_end"] >= end - pd.Timedelta(minutes=10)) & (table["window_end"] < end)]["cell"]) - set(expected.index)
        assert set(layer.cells[layer.state == 1]) == faded
    assert layer.health.error is None and layer.health.newest_reading == pd.Timestamp("2026-07-02 13:05", tz="UTC")
    assert layer.snapshot(end.to_pydatetime()).table["value"].sort_index().tolist() == expected.rename(index=lambda c: f"{c:x}").sort_index().tolist()
    scene.set_time(dt.datetime(2026, 7, 1, 0, 2, tzinfo=dt.timezone.utc))  # replay back to the first window of all
    assert (layer.values[layer.state == 0] == table[table["window_end"] == pd.Timestamp("2026-07-01", tz="UTC")].set_index("cell").loc[layer.cells[layer.state == 0], "mean"]).all()


def test_h3_layer_with_an_aggregate_of_another_resolution_or_window_is_one_line(in_process: tuple[Path, object]) -> None:
    from twin_layers.h3_layer import H3Layer

    from twin.errors import LayerDataError

    with pytest.raises(LayerDataError, match=r"^layer 'hist': resolution 8, window 0:05:00 but \S+cells\.parquet holds resolution 9, window 0:05:00$"):
        H3Layer("hist", source={"type": "h3_aggregate", "path": str(in_process[0])}, resolution=8)
    with pytest.raises(LayerDataError, match=r"window 0:10:00 but \S+ holds resolution 9, window 0:05:00$"):
        H3Layer("hist", source={"type": "h3_aggregate", "path": str(in_process[0])}, window="10m")


def test_missing_aggregate_fails_validation_and_a_vanished_one_keeps_the_wall_showing(in_process: tuple[Path, object], tmp_path: Path) -> None:
    import shutil

    from twin_layers.aggregate_source import H3AggregateSource
    from twin_layers.h3_layer import H3Layer

    from twin.errors import SourceCheckError

    with pytest.raises(SourceCheckError, match=r"aggregate 'nope\.parquet' not found .*; make it with `twin aggregate READINGS_DIR --out \.\.\.`$"):
        H3AggregateSource(path="nope.parquet").check()
    shutil.copy(in_process[0], tmp_path / "c.parquet")
    layer = H3Layer("hist", source={"type": "h3_aggregate", "path": str(tmp_path / "c.parquet")})
    at = dt.datetime(2026, 7, 2, 12, tzinfo=dt.timezone.utc)
    layer.refresh(at)
    layer.set_time(at)
    shown = layer.values.copy()
    (tmp_path / "c.parquet").unlink()
    layer.refresh(at + dt.timedelta(minutes=5))
    layer.set_time(at + dt.timedelta(minutes=5))
    assert layer.health.error == f"{tmp_path / 'c.parquet'}: cannot read the aggregate: no such file"
    np.testing.assert_array_equal(layer.values, shown)


def test_cli_aggregate_scene_makes_each_aggregate_on_the_scene_s_scheduler(dataset: tuple[Path, pd.DataFrame], in_process: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scene_file = tmp_path / "s.yaml"
    scene_file.write_text(
        "version: 1\nframe: {center: [121.47, 31.23]}\nlayers:\n  - id: hist\n    type: h3\n    resolution: 9\n    window: 5m\n"
        f"    source: {{type: h3_aggregate, path: made.parquet, readings: {dataset[0]}}}\n",
        encoding="utf-8",
    )
    assert main(["aggregate", "--scene", str(scene_file), "--now", NOW.isoformat(), "--no-progress"]) == 0, capsys.readouterr()
    assert "twin: aggregate: layer hist: wrote" in capsys.readouterr().out
    pd.testing.assert_frame_equal(read(tmp_path / "made.parquet"), read(in_process[0]), check_exact=True)
