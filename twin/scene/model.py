"""The Scene: ordered layers with stable ids, a metric frame, camera presets, time and settings.

>>> import twin, geopandas as gpd, shapely
>>> scene = twin.Scene(name="poi", center=(121.48, 31.23))
>>> from twin.plugins import layer_types
>>> Vector = layer_types().get("vector")
>>> _ = scene.add(Vector("bund", data=gpd.GeoDataFrame(geometry=[shapely.Point(121.49, 31.24)], crs="EPSG:4326")))
>>> [layer.id for layer in scene.layers], scene.frame.origin
(['bund'], (0.0, 0.0, 0.0))
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
from pyogrio.errors import DataSourceError

from twin.alerts.engine import AlertEngine, AlertEvent
from twin.alerts.rules import StaleRule, ThresholdRule, format_duration
from twin.errors import SceneFileError, SourceError, TwinError, TwinWarning, unknown_name
from twin.geo.frame import Frame, lon_center
from twin.layer import Layer
from twin.live import LiveLayer, LiveSnapshot
from twin.params import ID_RULE, is_id
from twin.plugins import build_layer, build_source, layer_types, notebook_display, renderer
from twin.registry import nested_source_specs
from twin.scene.camera import CameraPreset
from twin.scene.schema import (
    SCHEMA_VERSION,
    FrameSpec,
    SceneSettings,
    locate_error,
    locator,
    validate_alerts,
    validate_doc,
    validate_layer_entry,
)
from twin.scene.tour import Tour, validate_tours
from twin.scene.views import SavedView, validate_views
from twin.scene.wall import WallSpec, parse_wall, validate_wall
from twin.scene.yamlfile import KeyPath, dump_yaml, line_of, load_yaml, read_scene_text
from twin.source import BBox, Source

__all__ = ["Scene"]


class Scene:
    """A scene that the wall display, the browser app, notebooks and ``twin render`` all show."""

    def __init__(
        self,
        name: str = "Untitled scene",
        *,
        crs: str = "auto",
        center: tuple[float, float] | None = None,
        cameras: Mapping[str, CameraPreset | Mapping[str, Any]] | None = None,
        camera: str | None = None,
        time: dt.datetime | None = None,
        settings: SceneSettings | Mapping[str, Any] | None = None,
        tours: Mapping[str, Tour | list[Any]] | None = None,
        views: Mapping[str, SavedView | Mapping[str, Any]] | None = None,
        wall: WallSpec | Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.frame_spec = FrameSpec(crs=crs, center=center)
        self.cameras: dict[str, CameraPreset] = {
            k: v if isinstance(v, CameraPreset) else CameraPreset.model_validate(dict(v)) for k, v in (cameras or {}).items()
        }
        for preset in self.cameras:
            if not is_id(preset):
                raise TwinError(f"camera name {preset!r} is invalid: {ID_RULE}")
        if camera is not None and camera not in self.cameras:
            raise TwinError(unknown_name("camera", camera, list(self.cameras), listed="cameras", none="none defined"))
        self.camera = camera
        self.time = time
        self.settings = settings if isinstance(settings, SceneSettings) else SceneSettings.model_validate(dict(settings or {}))
        self.tours: dict[str, Tour] = {name: Tour.parse(name, stops, self.cameras) for name, stops in (tours or {}).items()}
        """Camera tours by name (see twin.scene.tour); :meth:`record` flies through one."""
        self.views: dict[str, SavedView] = {k: v if isinstance(v, SavedView) else SavedView.model_validate(dict(v)) for k, v in (views or {}).items()}
        """Saved views by name (camera, layers shown, time; see twin.scene.views): the scene file's ``views:``."""
        for view_name in self.views:
            if not is_id(view_name):
                raise TwinError(f"view name {view_name!r} is invalid: {ID_RULE}")
        self.wall: WallSpec | None = None if wall is None else parse_wall(wall, list(self.tours), None)
        """The command-hall wall's tour and alert interrupts (see twin.scene.wall); None: no ``wall:`` section."""
        self._layers: list[Layer] = []
        self.alerts: list[ThresholdRule | StaleRule] = []
        """Alert rules over the scene's live layers (evaluated by twin.alerts.AlertEngine)."""
        self._engine: AlertEngine | None = None
        self._frame: Frame | None = None
        self.path: Path | None = None
        self._origin = _Origin()

    # -- layers --------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The layers in drawing order (a copy; use :meth:`add` / :meth:`remove` to change it)."""
        return list(self._layers)

    def add(self, layer: Layer, *, index: int | None = None) -> Layer:
        """Add a layer (at the end, or at ``index``); ids must be unique."""
        if not isinstance(layer, Layer):
            raise TwinError(f"scene.add takes a Layer, got {type(layer).__name__}")
        if any(existing.id == layer.id for existing in self._layers):
            raise TwinError(f"scene {self.name!r} already has a layer with id {layer.id!r}")
        self._layers.insert(len(self._layers) if index is None else index, layer)
        return layer

    def remove(self, layer_id: str) -> Layer:
        """Remove and return the layer with ``layer_id``; its source's connections are closed
        (a source reopens them if the layer is added and read again) and tour stops no longer
        override its visibility. Alert rules watching it stay: remove them from ``alerts``.
        Raises :class:`~twin.errors.TwinError` for an unknown id.

        >>> import shapely
        >>> scene = Scene("s")
        >>> _ = scene.add_data("pois", gpd.GeoDataFrame(geometry=[shapely.Point(121.49, 31.24)], crs="EPSG:4326"))
        >>> scene.remove("pois").id, [layer.id for layer in scene.layers]
        ('pois', [])
        """
        layer = self[layer_id]
        self._layers.remove(layer)
        self.tours = {name: tour.without_layer(layer_id) for name, tour in self.tours.items()}  # stops no longer show or hide it
        self.views = {name: view if view.layers is None else view.model_copy(update={"layers": tuple(i for i in view.layers if i != layer_id)})
                      for name, view in self.views.items()}
        if layer.source is not None:
            layer.source.close()
        return layer

    def close(self) -> None:
        """Close every layer's source (HTTP sessions, worker threads); the scene can still be read after."""
        for layer in self._layers:
            if layer.source is not None:
                layer.source.close()

    def __getitem__(self, layer_id: str) -> Layer:
        for layer in self._layers:
            if layer.id == layer_id:
                return layer
        raise KeyError(f"no layer {layer_id!r} in scene {self.name!r}; layers: {', '.join(l.id for l in self._layers)}")

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    # -- frame ---------------------------------------------------------------------------
    @property
    def frame(self) -> Frame:
        """The scene's metric frame, fixed at first use (centre from the spec, else from the data)."""
        if self._frame is None:
            center = self.frame_spec.center or self._data_center()
            self._frame = Frame.from_spec(self.frame_spec.crs, *center)
        return self._frame

    def _data_center(self) -> tuple[float, float]:
        """Centre of the finite lon/lat extents of the layers that load.

        A layer that fails to load does not stop the others; when none has data, the layers'
        errors are the message (they are the cause), else the scene has no data at all.
        """
        extents: list[BBox] = []
        failures: list[str] = []
        for layer in self._layers:
            try:
                extent = layer.extent()
            except TwinError as exc:
                failures.append(f"layer {layer.id!r}: {exc}")
                continue
            if extent is not None and _plausible_extent(extent):
                extents.append(extent)
        if not extents and failures:
            if len(failures) == 1:
                raise SourceError(failures[0])
            raise SourceError(f"no layer of scene {self.name!r} could be loaded: " + "; ".join(failures))
        if not extents:
            raise TwinError(f"scene {self.name!r} has no data to centre its frame on: set frame.center (lon, lat)")
        # longitude: the middle of the shortest arc holding every extent (extents across ±180 have west > east)
        lons = [v for w, _, e, _ in extents for v in ((w, e) if w > e else (w, (w + e) / 2, e))]
        return (
            lon_center(lons),
            (min(e[1] for e in extents) + max(e[3] for e in extents)) / 2,
        )

    # -- time, live data and alerts -------------------------------------------------------
    def set_time(self, when: dt.datetime) -> None:
        """Show the scene at ``when`` (tz-aware): live layers show their data as of then (replay).

        Raises :class:`~twin.errors.TwinError` for a time without a time zone.

        >>> scene = Scene("s")
        >>> scene.set_time(dt.datetime(2026, 7, 1, 15, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))))
        >>> scene.time.isoformat()
        '2026-07-01T15:00:00+08:00'
        """
        if when.tzinfo is None:
            raise TwinError(f"scene time {when.isoformat()} needs a time zone, e.g. +08:00")
        self.time = when
        for layer in self._layers:
            layer.set_time(when)

    def tick(self, now: dt.datetime | None = None) -> list[AlertEvent]:
        """Poll live layers up to ``now`` (default: the clock), show that time, evaluate alert rules.

        Returns the alert transitions (also emitted to ``alert_engine`` subscribers).
        """
        now = now or dt.datetime.now(dt.timezone.utc)
        for layer in self._layers:
            layer.refresh(now)
        self.set_time(now)
        return self.alert_engine.evaluate(self.live_snapshots(now), now)

    def live_snapshots(self, now: dt.datetime) -> dict[str, LiveSnapshot]:
        """The latest value per feature of every live layer, keyed by layer id."""
        return {layer.id: layer.snapshot(now) for layer in self._layers if isinstance(layer, LiveLayer)}

    @property
    def alert_engine(self) -> AlertEngine:
        """The engine evaluating ``alerts``: built at first use, then given the rules again whenever
        ``alerts`` changes (:meth:`AlertEngine.set_rules`: acknowledgements, history and subscribers stay).

        Assign an engine to keep alerts across restarts, before anyone subscribes, e.g.
        ``scene.alert_engine = AlertEngine(scene.alerts, store=state_dir / "alerts.sqlite")``;
        whoever builds it closes it (``engine.close()``).
        """
        if self._engine is None:
            self._engine = AlertEngine(self.alerts)
        elif self._engine.rules != tuple(self.alerts):
            self._engine.set_rules(self.alerts)
        return self._engine

    @alert_engine.setter
    def alert_engine(self, engine: AlertEngine) -> None:
        if not isinstance(engine, AlertEngine):
            raise TwinError(f"scene.alert_engine takes an AlertEngine, got {type(engine).__name__}")
        self._engine = engine

    def add_data(self, layer_id: str, data: gpd.GeoDataFrame, *, type: str = "vector", **params: Any) -> Layer:
        """Add a layer of ``type`` showing a GeoDataFrame (any CRS; none means EPSG:4326) with style ``params``.

        Points from arrays: ``gpd.GeoDataFrame({"v": values}, geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")``.
        :meth:`to_file` saves such data beside the scene file. Raises TwinError for an unknown type or parameter.

        >>> import twin, geopandas as gpd
        >>> scene = twin.Scene("pumps", center=(121.48, 31.23))
        >>> pumps = gpd.GeoDataFrame({"kind": ["pump"]}, geometry=gpd.points_from_xy([121.49], [31.24]), crs="EPSG:4326")
        >>> layer = scene.add_data("pumps", pumps, color="yellow", point_size=9)
        >>> layer.type_name, layer.params.point_size, len(layer.data())
        ('vector', 9.0, 1)
        """
        return self.add(layer_types().get(type)(layer_id, data=data, **params))

    # -- output --------------------------------------------------------------------------
    def show(self, *, size: tuple[int, int] = (960, 540), camera: str | None = None, static: bool | None = None) -> None:
        """Show the scene in a Jupyter cell: interactive (the twin app inline) where a front end can interact, else a PNG.

        ``size`` = (width, height) pixels; ``camera``: a preset name; ``static``: True for the PNG
        only (also ``TWIN_NOTEBOOK_STATIC=1``). See :func:`twin.app.notebook.show`.
        """
        notebook_display()(self, size=size, camera=camera, static=static)

    def _repr_png_(self) -> bytes | None:
        """A 960x540 PNG for IPython's rich display; None (the text repr) with a TwinWarning when it cannot be drawn."""
        try:
            with tempfile.TemporaryDirectory(prefix="twin-repr-") as tmp:
                return self.screenshot(Path(tmp) / "scene.png", size=(960, 540)).read_bytes()
        except TwinError as exc:
            warnings.warn(f"scene {self.name!r} cannot be pictured: {exc}", TwinWarning, stacklevel=2)
            return None

    def screenshot(self, path: str | Path, size: tuple[int, int] = (1920, 1080), *, camera: str | None = None) -> Path:
        """Render the scene offscreen (no display needed) to a PNG file of ``size`` (width, height in
        pixels, up to 3840×2160), from the camera preset ``camera`` (default: the scene's); returns its path.

        >>> import shapely
        >>> scene = Scene("s")
        >>> _ = scene.add_data("pois", gpd.GeoDataFrame(geometry=[shapely.Point(121.49, 31.24)], crs="EPSG:4326"), point_size=20)
        >>> path = scene.screenshot(Path(tempfile.mkdtemp()) / "pois.png", size=(160, 90))
        >>> path.suffix, path.stat().st_size > 0
        ('.png', True)
        """
        render = renderer("vtk")
        return Path(render(self, path, size=size, camera=camera))  # type: ignore[arg-type]

    def record(
        self,
        path: str | Path,
        *,
        tour: str | None = None,
        replay: tuple[dt.datetime | str, dt.datetime | str] | None = None,
        fps: float = 10.0,
        size: tuple[int, int] = (1280, 720),
        duration: float | dt.timedelta | str | None = None,
    ) -> Path:
        """Record an H.264 MP4 offscreen (no display needed): a flight through ``tour`` and/or a ``replay`` of scene time.

        ``replay`` = (start, end), tz-aware datetimes or ISO 8601 text: scene time runs from start to end over
        the video. ``duration`` (seconds, a timedelta or text like ``30s``) is the video's length: by default the tour's, else 10 s. The clock
        (+08:00) and the legends are burnt into every frame. Returns the path; raises
        :class:`~twin.errors.ExportError` (one line) for a bad size, fps, tour, replay or output path.
        See :func:`twin.export.video.record_video` (renderer ``mp4``).
        """
        record = renderer("mp4")
        return Path(record(self, path, tour=tour, replay=replay, fps=fps, size=size, duration=duration))  # type: ignore[call-arg]

    def to_html(self, path: str | Path, *, size: tuple[int, int] = (1280, 720)) -> Path:
        """Write one self-contained HTML file showing the scene in 3D (vtk.js, data embedded), with legends and
        layer toggles, that opens in a browser with no server and no network. A snapshot at the scene time:
        live updates and alerts are left out (the page says so). See :func:`twin.export.html.export_html` (renderer ``html``).
        """
        export = renderer("html")
        return Path(export(self, path, size=size))  # type: ignore[call-arg]

    # -- scene files ---------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> Scene:
        """Read and validate a YAML scene file; errors name the file, line and key.

        Raises :class:`~twin.errors.SceneFileError` (one line: ``file:line: key: what is wrong``).

        >>> import shapely
        >>> scene = Scene("pois", cameras={"bund": {"target": [121.49, 31.24], "range": 800}})
        >>> _ = scene.add_data("pois", gpd.GeoDataFrame({"name": ["外滩"]}, geometry=[shapely.Point(121.49, 31.24)], crs="EPSG:4326"))
        >>> saved = scene.to_file(Path(tempfile.mkdtemp()) / "pois.yaml")
        >>> again = Scene.from_file(saved)
        >>> again.to_dict() == scene.to_dict(), again["pois"].data()["name"].tolist()
        (True, ['外滩'])
        """
        path = Path(path)
        data, lines = load_yaml(read_scene_text(path), path)
        scene = cls.from_dict(data, file=str(path), lines=lines, base_dir=path.parent)
        scene.path = path
        return scene

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        file: str | None = None,
        lines: dict[KeyPath, int] | None = None,
        base_dir: Path | None = None,
    ) -> Scene:
        """Build a scene from scene-file data (validated like a file)."""
        lines = lines or {}
        doc = validate_doc(data, file=file, lines=lines)
        scene = cls(
            doc.name,
            crs=doc.frame.crs,
            center=doc.frame.center,
            cameras=doc.cameras,
            camera=doc.camera,
            time=doc.time,
            settings=doc.settings,
        )
        for index, entry in enumerate(doc.layers):
            spec, own = validate_layer_entry(entry, index, file=file, lines=lines)
            path: KeyPath = ("layers", index)
            if any(layer.id == spec.id for layer in scene._layers):
                raise SceneFileError(f"duplicate layer id {spec.id!r}", file=file, line=line_of(lines, path + ("id",)), key=f"layers[{index}].id")
            params = {"title": spec.title, "visible": spec.visible, "opacity": spec.opacity, "where": spec.where, **own}
            layer = build_layer(spec.type, spec.id, source=spec.source, params=params, where=locator(path, file=file, lines=lines), base_dir=base_dir)
            scene._layers.append(layer)
        scene.alerts = validate_alerts(doc, {layer.id for layer in scene._layers}, file=file, lines=lines)
        scene.tours = validate_tours(doc.tours, scene.cameras, [layer.id for layer in scene._layers], file=file, lines=lines)
        scene.views = validate_views(doc.views, [layer.id for layer in scene._layers], file=file, lines=lines)
        scene.wall = validate_wall(doc.wall, list(scene.tours), [rule.id for rule in scene.alerts], file=file, lines=lines)
        scene._origin = _Origin(file, lines, base_dir)
        return scene

    def check(self) -> None:
        """Run every source's :meth:`~twin.source.Source.check` (no data read), nested source specs too.

        A layer's ``source`` is checked as the layer holds it; a source spec among a layer's own
        parameters (e.g. a flood layer's ``stations: {type: file, ...}``) is built the way the layer
        builds it. Raises :class:`SceneFileError` naming the scene file, line and key of the first
        failure, e.g. ``scene.yaml:12: layers[2].source.path: file 'x.geojson' not found (looked in /abs/dir)``.
        """
        origin = self._origin
        for index, layer in enumerate(self._layers):
            checks: list[tuple[KeyPath, Source]] = []
            if layer.source is not None:
                checks.append((("layers", index, "source"), layer.source))
            for key, spec in nested_source_specs(layer.params.model_dump()):
                path: KeyPath = ("layers", index, key)
                checks.append((path, build_source(spec, where=locator(path, file=origin.file, lines=origin.lines), base_dir=origin.base_dir)))
            for path, source in checks:
                try:
                    source.check()
                except SourceError as exc:
                    raise locate_error(exc, path, file=origin.file, lines=origin.lines) from None

    def to_dict(self) -> dict[str, Any]:
        """Scene-file data (defaults left out), the inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {"version": SCHEMA_VERSION, "name": self.name}
        frame = self.frame_spec.model_dump(mode="json", exclude_defaults=True)
        if frame:
            out["frame"] = frame
        if self.time is not None:
            out["time"] = self.time.isoformat()
        settings = self.settings.model_dump(mode="json", exclude_defaults=True)
        if settings:
            out["settings"] = settings
        if self.cameras:
            out["cameras"] = {k: v.model_dump(mode="json", exclude_defaults=True) for k, v in self.cameras.items()}
        if self.camera is not None:
            out["camera"] = self.camera
        if self.tours:
            out["tours"] = {name: tour.to_list() for name, tour in self.tours.items()}
        out["layers"] = [layer.to_dict() for layer in self._layers]
        if self.views:
            out["views"] = {name: view.to_dict() for name, view in self.views.items()}
        if self.alerts:
            out["alerts"] = [_rule_dict(rule) for rule in self.alerts]
        if self.wall is not None:
            out["wall"] = self.wall.to_dict()
        return out

    def to_file(self, path: str | Path) -> Path:
        """Write the scene as YAML; ``Scene.from_file`` reads it back to an equal scene.

        Layers holding in-memory data (:meth:`add_data`) are first saved as GeoJSON (EPSG:4326) in
        ``<file stem>_data/<layer id>.geojson`` beside the file and read from there from then on,
        so the file is complete and the app and the wall load it unchanged. Returns the path;
        see :meth:`from_file` for an example.
        """
        path = Path(path)
        for layer in self._layers:
            if layer.source is not None and layer.source.type_name == "memory":
                layer.source = _saved_beside(layer, path)
        text = dump_yaml(self.to_dict())
        path.write_text(f"# twin scene file, schema version {SCHEMA_VERSION}\n{text}", encoding="utf-8")
        return path

    def write_views(self) -> Path:
        """Write :attr:`views` into the scene's own file (:attr:`path`): only its ``views:`` changes, the rest stays as written
        (a planner's layer switches and styles are not saved with a view). Returns the path; raises
        :class:`~twin.errors.SceneFileError` for a scene without a file or a file that cannot be read or written.
        """
        if self.path is None:
            raise SceneFileError("scene has no file to keep its views in: save it with Scene.to_file first", file=f"<scene {self.name}>")
        text = read_scene_text(self.path)
        data, _ = load_yaml(text, self.path)
        data = dict(data or {})
        data.pop("views", None)
        if self.views:
            data["views"] = {name: view.to_dict() for name, view in self.views.items()}
        header = "".join(line + "\n" for line in itertools.takewhile(lambda row: row.startswith("#"), text.splitlines()))
        try:
            self.path.write_text(header + dump_yaml(data), encoding="utf-8")
        except OSError as exc:
            raise SceneFileError(f"cannot write the scene's views: {exc.strerror or exc}", file=self.path) from None
        return self.path

    def __repr__(self) -> str:
        return f"<Scene {self.name!r}: {len(self._layers)} layers>"


@dataclass(frozen=True)
class _Origin:
    """Where a scene was read from, for located errors after loading: the file name and the line of each key."""

    file: str | None = None
    lines: dict[KeyPath, int] = field(default_factory=dict)
    base_dir: Path | None = None


def _saved_beside(layer: Layer, scene_path: Path) -> Source:
    """Write ``layer``'s in-memory features to ``<stem>_data/<id>.geojson`` beside ``scene_path``; the file source reading them."""
    relative = Path(f"{scene_path.stem}_data") / f"{layer.id}.geojson"
    target = scene_path.parent / relative
    data = layer.source.read() if layer.source is not None else gpd.GeoDataFrame(geometry=[], crs="EPSG:4326")
    try:
        target.parent.mkdir(exist_ok=True)
        data.to_file(target, driver="GeoJSON", engine="pyogrio")
    except (OSError, ValueError, DataSourceError) as exc:
        raise TwinError(f"cannot save layer {layer.id!r}'s data to {target}: {exc}") from None
    return build_source({"type": "file", "path": relative.as_posix()}, base_dir=scene_path.parent)


def _plausible_extent(extent: BBox) -> bool:
    """A lon/lat extent that a frame can be centred on: finite and within ±180°/±90°."""
    west, south, east, north = extent
    return all(math.isfinite(v) for v in extent) and -180.0 <= min(west, east) and max(west, east) <= 180.0 and -90.0 <= south <= north <= 90.0


def _rule_dict(rule: ThresholdRule | StaleRule) -> dict[str, Any]:
    data = rule.model_dump(mode="python", by_alias=True, exclude_defaults=True)
    data["kind"] = rule.kind
    return {k: (format_duration(v) if isinstance(v, dt.timedelta) else v) for k, v in data.items()}
