"""SceneView: the one renderer behind every view (offscreen files, the browser app, notebooks).

It turns each layer's :class:`~twin.layer.LayerVisual` into a VTK actor and keeps them in
step: a new geometry version swaps the mesh, a new style version swaps only the colour array,
visibility and opacity touch only the actor. A filter (cells the style marks ``hidden``) draws a
threshold of the same mesh: the layer's mesh is not rebuilt.

>>> import twin, geopandas as gpd, shapely
>>> from twin.plugins import layer_types
>>> scene = twin.Scene(center=(121.48, 31.23))
>>> _ = scene.add(layer_types().get("vector")("box", data=gpd.GeoDataFrame(
...     geometry=[shapely.box(121.47, 31.22, 121.49, 31.24)], crs="EPSG:4326")))
>>> view = SceneView(scene, size=(320, 240))
>>> view.sync()
>>> view.image().shape
(240, 320, 3)
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from numpy.typing import NDArray
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkCommonDataModel import vtkDataObject, vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkThreshold
from vtkmodules.vtkFiltersGeometry import vtkGeometryFilter
from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkBillboardTextActor3D,
    vtkCellPicker,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkRenderWindow,
    vtkTextActor,
    vtkTextProperty,
    vtkTexture,
    vtkWindowToImageFilter,
)

from twin.errors import TwinError
from twin.layer import Layer, LayerVisual
from twin.mesh.cell_blocks import CellBlocks, CellState, blocks_payload, tick_payload
from twin.render import vtk_setup
from twin.render.block_parts import COLOR_ARRAY, MAX_PARTS, BlockPart, appended_triangles, extends, new_part, tail_blocks
from twin.render.lod import Eye, LodSettings, Tiles, build_tiles, choose_levels, geometry_bytes, refresh_cell_data
from twin.scene.model import Scene
from twin.style import Legend, to_rgba8

__all__ = ["LayerError", "LodFrame", "SceneView"]

log = logging.getLogger(__name__)

_COLOR_ARRAY = COLOR_ARRAY
_SHOWN_ARRAY = "twin_shown"
_CELL_ARRAY = "twin_cell"


@dataclass
class LayerError:
    """A layer that could not be drawn; the view keeps showing everything else."""

    layer_id: str
    message: str


@dataclass
class _Drawn:
    actor: vtkActor
    polydata: vtkPolyData
    geometry_version: int = -1
    style_version: int = -1
    points_version: int = -1
    legend: Legend | None = None
    n_cells: int = 0
    labels: list[vtkBillboardTextActor3D] = field(default_factory=list)
    blocks: CellBlocks | None = None
    parts: list[BlockPart] = field(default_factory=list)
    """A block layer's datasets (the first is :attr:`polydata`, drawn by :attr:`actor`; more when new cells were appended)."""
    block_state: CellState | None = None
    """A block layer's latest tick when :attr:`parts` do not show it yet (they are written when the server renders or picks)."""
    cell_ids: NDArray[np.int64] | None = None
    """With a filter: the cell of :attr:`polydata` behind each cell drawn (the mapper draws a threshold of it)."""
    feature_index: str | None = None
    tiles: Tiles | None = None
    tile_actors: list[list[vtkActor]] = field(default_factory=list)
    tiles_key: tuple[object, ...] = ()


@dataclass(frozen=True)
class LodFrame:
    """How the last frame drew one tiled layer: ``levels`` per tile (-1: outside the view, 0: full detail), the error allowed (pixels), triangles drawn."""

    levels: NDArray[np.int64]
    allowed_px: float
    triangles: int


class SceneView:
    """VTK renderer + render window for one scene. ``strict`` raises on a layer that fails.

    ``show_title`` / ``show_legend``: whether this view draws the scene's title and legends
    itself (a page that shows them as HTML turns them off; the scene's settings are left as
    they are). :attr:`overlays`: layers the view draws above the scene's without being in it
    (highlights: help within reach, a focused alert, a picked feature), by name; call
    :meth:`sync` after changing them. :attr:`lod`: big layers drawn as tiles at the level of
    detail each needs, lighter while the camera moves (see :mod:`twin.render.lod`; None: always
    full detail); :attr:`lod_frames` tells how the last frame drew them.
    """

    def __init__(
        self,
        scene: Scene,
        *,
        size: tuple[int, int] = (1280, 720),
        offscreen: bool = True,
        strict: bool = False,
        show_title: bool = True,
        show_legend: bool = True,
    ) -> None:
        self.scene = scene
        self.strict = strict
        self.show_title = show_title
        self.show_legend = show_legend
        self.overlays: dict[str, Layer] = {}
        self._direct_colors = False
        self.cell_ticks = True
        """With :attr:`direct_colors`: layers made of per-cell point blocks (H3) keep their arrays'
        identity across ticks and publish each tick in :attr:`block_ticks` (False: every tick
        rewrites the arrays a browser-side view re-downloads)."""
        self.block_layouts: dict[str, list[dict[str, object]]] = {}
        """Per block layer: the static layout of each part (dataset) a browser-side view needs (see :func:`blocks_payload`
        and :mod:`twin.render.block_parts`), in the order of :meth:`block_actors`."""
        self.block_ticks: dict[str, list[dict[str, object]]] = {}
        """Per block layer: its latest tick for each part, ~3 bytes per cell (see :func:`tick_payload`)."""
        self.scene_changed = True
        """After :meth:`sync`: whether anything besides block ticks changed (a browser-side view needs the scene again)."""
        self._signature: tuple[object, ...] = ()
        self.errors: dict[str, LayerError] = {}
        self.pending: set[str] = set()
        """Ids of scene layers still being built elsewhere (a streamed start-up): :meth:`sync` leaves them out until they are ready."""
        self.renderer = vtkRenderer()
        self.window = vtkRenderWindow()
        self.window.SetOffScreenRendering(1 if offscreen else 0)
        self.window.AddRenderer(self.renderer)
        # labels live in an overlay renderer sharing the camera, so buildings never hide them
        self.label_renderer = vtkRenderer()
        self.label_renderer.SetLayer(1)
        self.label_renderer.InteractiveOff()
        self.label_renderer.SetActiveCamera(self.renderer.GetActiveCamera())
        self.label_renderer.SetUseOIT(False)  # text quads blend in drawing order: no order-independent pass, whose float textures
        # (~48 MiB at 1920x1080, 4x at 4K) a wall kept from the first translucent label on
        self.window.SetNumberOfLayers(2)
        self.window.AddRenderer(self.label_renderer)
        self.window.SetSize(*size)
        self.window.SetMultiSamples(0)
        self.renderer.SetUseFXAA(True)
        self._drawn: dict[str, _Drawn] = {}
        self._blocks_on_server = False
        self._overlay: list[object] = []
        self._camera_set = False
        self._lod: LodSettings | None = None
        self._fxaa_still = True
        self._moving_frame = False
        self._moving_until = 0.0
        self.proxied: tuple[str, ...] = ()
        """Layers the last frame drew partly from proxies (empty: every tile in view was at full detail)."""
        self.lod_frames: dict[str, LodFrame] = {}
        """Per tiled layer: how the last frame drew it."""
        self.renderer.AddObserver("StartEvent", self._frame_start)
        self.renderer.AddObserver("EndEvent", self._frame_end)
        self._apply_settings()

    # -- keeping actors in step with the scene -------------------------------------------
    def sync(self) -> None:
        """Bring every actor up to date with the scene's layers (except :attr:`pending` ones); failures are recorded, not fatal."""
        frame = self.scene.frame
        seen, before = set(), set(self._drawn)
        for order, layer in enumerate([*self.scene.layers, *self.overlays.values()]):
            if layer.id in self.pending:
                continue
            seen.add(layer.id)
            try:
                visual = layer.visual(frame)
            except TwinError as exc:
                self._fail(layer, str(exc))
                continue
            except Exception as exc:  # a broken plugin must not take the wall display down
                log.exception("layer %s failed", layer.id)
                self._fail(layer, f"{type(exc).__name__}: {exc}")
                continue
            self.errors.pop(layer.id, None)
            self._update_actor(visual, order)
        for gone in set(self._drawn) - seen:
            drawn = self._drawn.pop(gone)
            self.block_layouts.pop(gone, None)
            self.block_ticks.pop(gone, None)
            self.renderer.RemoveActor(drawn.actor)
            self._drop_parts(drawn)
            self._drop_tiles(drawn)
            for label in drawn.labels:
                self.label_renderer.RemoveActor(label)
        self._update_overlay()
        self._update_tiles()
        if not self._camera_set:
            self.set_camera(self.scene.camera)
            self._camera_set = self.scene.camera is not None or not self.pending  # framing all data waits for every layer
        elif set(self._drawn) - before:  # a layer came in: near/far planes around it too
            self._reset_clipping()
        signature = self._scene_signature()
        self.scene_changed, self._signature = signature != self._signature, signature

    def _scene_signature(self) -> tuple[object, ...]:
        """What a browser-side view shows, except block ticks: versions, actor settings, errors."""
        parts: list[object] = [tuple(sorted(self.errors))]
        for layer_id, drawn in self._drawn.items():
            prop = drawn.actor.GetProperty()
            versions = (drawn.geometry_version, len(drawn.parts)) if drawn.blocks is not None else (drawn.geometry_version, drawn.style_version, drawn.points_version)
            parts.append((layer_id, id(drawn.polydata), *versions, drawn.actor.GetVisibility(), prop.GetOpacity(), prop.GetLineWidth(),
                          prop.GetPointSize(), prop.GetAmbient()))
        return tuple(parts)

    def _fail(self, layer: Layer, message: str) -> None:
        if self.strict:
            raise TwinError(f"layer {layer.id!r}: {message}")
        log.error("layer %s: %s", layer.id, message)
        self.errors[layer.id] = LayerError(layer.id, message)

    def _update_actor(self, visual: LayerVisual, order: int) -> None:
        drawn = self._drawn.get(visual.layer_id)
        if drawn is None:
            mapper = vtkPolyDataMapper()
            actor = vtkActor()
            actor.SetMapper(mapper)
            drawn = _Drawn(actor=actor, polydata=vtkPolyData())
            self._drawn[visual.layer_id] = drawn
            self.renderer.AddActor(actor)
        mapper = drawn.actor.GetMapper()
        blocks = visual.meta.get("cell_blocks") if self._direct_colors and self.cell_ticks else None
        if not isinstance(blocks, CellBlocks):
            blocks = None
        if blocks is not None:
            self._update_blocks(drawn, visual, blocks)
        elif drawn.blocks is not None or drawn.geometry_version != visual.geometry_version or drawn.n_cells != visual.mesh.n_cells:
            drawn.blocks, drawn.block_state = None, None
            self._drop_parts(drawn)
            self.block_layouts.pop(visual.layer_id, None)
            self.block_ticks.pop(visual.layer_id, None)
            drawn.polydata = vtkPolyData()
            drawn.polydata.ShallowCopy(visual.mesh)
            mapper.SetInputData(drawn.polydata)
            drawn.geometry_version = visual.geometry_version
            drawn.n_cells = visual.mesh.n_cells
            drawn.style_version = -1
        if blocks is None and drawn.points_version != visual.points_version:
            points = drawn.polydata.GetPoints()  # shared with the layer's mesh, changed in place
            if points is not None:
                points.Modified()
            drawn.polydata.Modified()
            drawn.points_version = visual.points_version
            if drawn.cell_ids is not None:
                self._apply_filter(drawn, visual.style.hidden)
        if blocks is None and drawn.style_version != visual.style_version:
            self._apply_colors(drawn, visual)
            self._apply_labels(drawn, visual)
            self._apply_filter(drawn, visual.style.hidden)
            drawn.style_version = visual.style_version
            drawn.feature_index = visual.style.feature_index
        drawn.legend = visual.style.legend
        prop = drawn.actor.GetProperty()
        prop.SetOpacity(visual.opacity)
        prop.SetLineWidth(visual.line_width)
        prop.SetPointSize(visual.point_size)
        if visual.lighting:
            prop.SetAmbient(0.25)
            prop.SetDiffuse(0.75)
            prop.SetSpecular(0.05)
        else:
            prop.SetAmbient(1.0)
            prop.SetDiffuse(0.0)
            prop.SetSpecular(0.0)
        drawn.actor.SetVisibility(visual.visible and visual.mesh.n_cells > 0)
        for label in drawn.labels:
            label.SetVisibility(visual.visible)
        for part_mapper in [mapper, *(part.actor.GetMapper() for part in drawn.parts[1:])]:
            part_mapper.SetResolveCoincidentTopologyToPolygonOffset()
            part_mapper.SetRelativeCoincidentTopologyPolygonOffsetParameters(0, -order * 2.0)
            part_mapper.SetRelativeCoincidentTopologyLineOffsetParameters(0, -order * 2.0 - 1.0)
        for part in drawn.parts[1:]:
            part.actor.SetVisibility(drawn.actor.GetVisibility())

    @staticmethod
    def _apply_filter(drawn: _Drawn, hidden: NDArray[np.bool_] | None) -> None:
        """Draw only the cells not ``hidden`` (per cell of the layer's mesh): a threshold of the view's copy, never a new layer mesh."""
        mapper = drawn.actor.GetMapper()
        cell_data = drawn.polydata.GetCellData()
        if hidden is None or len(hidden) != drawn.n_cells or not hidden.any():
            cell_data.RemoveArray(_SHOWN_ARRAY)
            drawn.cell_ids = None
            mapper.SetInputData(drawn.polydata)
            return
        for name, values in ((_SHOWN_ARRAY, ~hidden), (_CELL_ARRAY, np.arange(drawn.n_cells))):
            array = numpy_to_vtk(np.ascontiguousarray(values, dtype=np.uint8 if values.dtype == bool else np.int64), deep=True)
            array.SetName(name)
            cell_data.AddArray(array)
        threshold = vtkThreshold()
        threshold.SetInputData(drawn.polydata)
        threshold.SetInputArrayToProcess(0, 0, 0, vtkDataObject.FIELD_ASSOCIATION_CELLS, _SHOWN_ARRAY)
        threshold.SetThresholdFunction(vtkThreshold.THRESHOLD_UPPER)
        threshold.SetUpperThreshold(0.5)
        surface = vtkGeometryFilter()
        surface.SetInputConnection(threshold.GetOutputPort())
        surface.Update()
        kept = vtkPolyData()
        kept.ShallowCopy(surface.GetOutput())
        ids = kept.GetCellData().GetArray(_CELL_ARRAY)
        drawn.cell_ids = vtk_to_numpy(ids).astype(np.int64) if ids is not None else np.zeros(0, np.int64)
        mapper.SetInputData(kept)

    def _update_blocks(self, drawn: _Drawn, visual: LayerVisual, blocks: CellBlocks) -> None:
        """A block layer for a browser-side view: datasets of their own (every cell's full outline, one RGBA per point), one per part.

        A tick only makes :attr:`block_ticks` (heights, hidden flags, colour indices per cell and part); the
        datasets a browser holds are left as they are (trame-vtk sends nothing again) and take the tick only when
        the server itself renders or picks (:meth:`_server_blocks`). New cells that extend the mesh become a new
        part (see :mod:`twin.render.block_parts`); any other new mesh replaces every part.
        """
        new_mesh = drawn.blocks is not blocks or drawn.geometry_version != visual.geometry_version
        if not new_mesh and drawn.points_version == visual.points_version and drawn.style_version == visual.style_version:
            return
        state: CellState = visual.meta["cell_state"]()  # type: ignore[operator]
        drawn.block_state = state  # the parts drawn before take it when the server renders or picks
        if new_mesh and not self._append_part(drawn, visual, blocks, state):
            self._drop_parts(drawn)
            polydata = vtkPolyData()
            polydata.ShallowCopy(visual.mesh)  # the triangles are shared; points and colours are this view's own
            drawn.parts, drawn.polydata, drawn.block_state = [new_part(drawn.actor, polydata, blocks, state)], polydata, None
        if new_mesh:
            drawn.blocks, drawn.geometry_version, drawn.n_cells = blocks, visual.geometry_version, visual.mesh.n_cells
            self.block_layouts[visual.layer_id] = [blocks_payload(part.blocks) for part in drawn.parts]
        self.block_ticks[visual.layer_id] = [tick_payload(part.blocks, part.cells_of(state)) for part in drawn.parts]
        drawn.points_version, drawn.style_version = visual.points_version, visual.style_version

    def _append_part(self, drawn: _Drawn, visual: LayerVisual, blocks: CellBlocks, state: CellState) -> bool:
        """New cells after those drawn: a new part with only them (its own actor, sharing the layer's look); False if they are not."""
        old = drawn.blocks
        if old is None or not old.n_cells or not drawn.parts or len(drawn.parts) >= MAX_PARTS or not extends(old, blocks):
            return False
        first_triangle = sum(part.polydata.GetNumberOfPolys() for part in drawn.parts)
        triangles = appended_triangles(visual.mesh, len(old.template), first_triangle)
        if triangles is None:
            return False
        polydata = vtkPolyData()
        polydata.SetPolys(triangles)
        actor = vtkActor()
        actor.SetMapper(vtkPolyDataMapper())
        actor.SetProperty(drawn.actor.GetProperty())
        drawn.parts.append(new_part(actor, polydata, tail_blocks(blocks, old.n_cells), state, first_cell=old.n_cells, first_triangle=first_triangle))
        self.renderer.AddActor(actor)
        return True

    def _drop_parts(self, drawn: _Drawn) -> None:
        """Remove the actors of a block layer's appended parts."""
        for part in drawn.parts[1:]:
            self.renderer.RemoveActor(part.actor)
        drawn.parts = []

    def _server_blocks(self, on: bool) -> bool:
        """Block layers drawn from the server's copies, brought up to their latest tick (``on``), or from what the browsers
        hold; whether they were on the server's copies before.

        Around the server's own renders, bounds and picks; outside them a browser-side view serializes what it holds.
        """
        was, self._blocks_on_server = self._blocks_on_server, on
        for drawn in self._drawn.values():
            if on and drawn.block_state is not None:
                for part in drawn.parts:
                    part.write(drawn.block_state)
                drawn.block_state = None
            for part in drawn.parts:
                mapper, dataset = part.actor.GetMapper(), part.server if on else part.polydata
                if mapper.GetInput() is not dataset:
                    mapper.SetInputData(dataset)
        return was

    def block_actors(self, layer_id: str) -> list[vtkActor]:
        """The actors drawing block layer ``layer_id``, one per part, in the order of :attr:`block_ticks` (empty if not drawn as blocks)."""
        drawn = self._drawn.get(layer_id)
        return [part.actor for part in drawn.parts] if drawn is not None and drawn.blocks is not None else []

    @property
    def direct_colors(self) -> bool:
        """True: colours per feature are expanded to one RGBA per cell (what vtk.js, the browser-side
        renderer, can show); False: they go through a lookup table (a restyle sends k colours)."""
        return self._direct_colors

    @direct_colors.setter
    def direct_colors(self, value: bool) -> None:
        if value != self._direct_colors:
            self._direct_colors = value
            for drawn in self._drawn.values():
                drawn.style_version = -1  # re-apply colours the other way on the next sync

    def _apply_colors(self, drawn: _Drawn, visual: LayerVisual) -> None:
        mapper = drawn.actor.GetMapper()
        texture = visual.style.texture
        if texture is not None and drawn.polydata.GetPointData().GetArray("tcoords") is not None:
            drawn.polydata.GetPointData().SetActiveTCoords("tcoords")
            drawn.actor.SetTexture(_vtk_texture(texture))
            drawn.actor.GetProperty().SetColor(1.0, 1.0, 1.0)
            mapper.ScalarVisibilityOff()
            return
        drawn.actor.SetTexture(None)
        style = visual.style
        index_array = drawn.polydata.GetCellData().GetArray(style.feature_index) if style.feature_index else None
        if style.feature_colors is not None and index_array is not None and self._direct_colors:
            rows = vtk_to_numpy(index_array).astype(np.int64)
            mapper.SetLookupTable(None)
            self._set_cell_rgba(drawn, style.feature_colors[rows] if len(rows) else np.zeros((0, 4), np.uint8))
            return
        if style.feature_colors is not None and index_array is not None:
            table = _feature_table(style.feature_colors)
            mapper.SetLookupTable(table)
            mapper.UseLookupTableScalarRangeOn()
            mapper.SetScalarModeToUseCellFieldData()
            mapper.SelectColorArray(style.feature_index)
            mapper.SetColorModeToMapScalars()
            mapper.InterpolateScalarsBeforeMappingOff()
            mapper.ScalarVisibilityOn()
            drawn.polydata.GetCellData().RemoveArray(_COLOR_ARRAY)
            return
        colors = visual.style.colors
        cell_data = drawn.polydata.GetCellData()
        if colors is None or len(colors) != drawn.n_cells:
            cell_data.RemoveArray(_COLOR_ARRAY)
            mapper.ScalarVisibilityOff()
            r, g, b, _ = visual.style.color
            drawn.actor.GetProperty().SetColor(r / 255, g / 255, b / 255)
            return
        self._set_cell_rgba(drawn, colors)

    @staticmethod
    def _set_cell_rgba(drawn: _Drawn, colors: NDArray[np.uint8]) -> None:
        mapper = drawn.actor.GetMapper()
        cell_data = drawn.polydata.GetCellData()
        array = numpy_to_vtk(np.ascontiguousarray(colors, dtype=np.uint8), deep=True)
        array.SetName(_COLOR_ARRAY)
        cell_data.AddArray(array)
        mapper.SetScalarModeToUseCellFieldData()
        mapper.SelectColorArray(_COLOR_ARRAY)
        mapper.SetColorModeToDirectScalars()
        mapper.ScalarVisibilityOn()
        drawn.polydata.Modified()

    def _apply_labels(self, drawn: _Drawn, visual: LayerVisual) -> None:
        for label in drawn.labels:
            self.label_renderer.RemoveActor(label)
        drawn.labels = []
        scale = max(self.window.GetSize()[1] / 1080.0, 0.5)
        for spec in visual.style.labels:
            actor = vtkBillboardTextActor3D()
            actor.SetInput(spec.text)
            actor.SetPosition(*spec.position)
            prop = self._text_property(int(15 * scale), bold=True)
            r, g, b, _ = spec.color
            prop.SetColor(r / 255, g / 255, b / 255)
            prop.SetBackgroundColor(0.05, 0.07, 0.12)
            prop.SetBackgroundOpacity(0.65)
            prop.SetJustificationToCentered()
            actor.SetTextProperty(prop)
            self.label_renderer.AddActor(actor)
            drawn.labels.append(actor)

    # -- level of detail -----------------------------------------------------------------
    @property
    def lod(self) -> LodSettings | None:
        """Tiles at several levels of detail for big layers (see :mod:`twin.render.lod`; None: every frame at full detail)."""
        return self._lod

    @lod.setter
    def lod(self, settings: LodSettings | None) -> None:
        self._lod = settings
        self._update_tiles()

    def _update_tiles(self) -> None:
        """Build, recolour or drop each layer's tiles (their actors are hidden between frames and never pickable)."""
        for layer in [*self.scene.layers, *self.overlays.values()]:
            drawn = self._drawn.get(layer.id)
            if drawn is None:
                continue
            lod = self._lod
            if lod is None or drawn.blocks is not None or drawn.actor.GetTexture() is not None or layer.triangle_count() < lod.min_triangles:
                self._drop_tiles(drawn)
                continue
            shape = (id(drawn.polydata), drawn.geometry_version, drawn.points_version, drawn.feature_index, lod)
            if drawn.tiles is None or drawn.tiles_key[:-1] != shape:
                self._drop_tiles(drawn)
                drawn.tiles = build_tiles(drawn.polydata, lod, drawn.feature_index)
                if drawn.tiles is None:
                    continue
                log.info("layer %s: %d tiles at %d levels of detail built in %.1f s", layer.id, len(drawn.tiles.meshes), drawn.tiles.errors.shape[1],
                         drawn.tiles.built_s)
            elif drawn.tiles_key[-1] != drawn.style_version:
                refresh_cell_data(drawn.tiles, drawn.polydata)
            else:
                continue
            self._tile_actors(drawn)
            drawn.tiles_key = (*shape, drawn.style_version)

    def _tile_actors(self, drawn: _Drawn) -> None:
        """One hidden, unpickable actor per distinct tile mesh, drawn like the layer's actor (its mapper's colouring, its property)."""
        for actor in {id(a): a for row in drawn.tile_actors for a in row}.values():
            self.renderer.RemoveActor(actor)
        made: dict[int, vtkActor] = {}
        drawn.tile_actors = []
        for levels in drawn.tiles.meshes if drawn.tiles is not None else []:
            row = []
            for mesh in levels:
                actor = made.get(id(mesh))
                if actor is None:
                    mapper = vtkPolyDataMapper()
                    mapper.ShallowCopy(drawn.actor.GetMapper())  # colours by feature: the same lookup table and cell array
                    mapper.SetInputData(mesh)
                    actor = made[id(mesh)] = vtkActor()
                    actor.SetMapper(mapper)
                    actor.SetProperty(drawn.actor.GetProperty())
                    actor.PickableOff()
                    actor.VisibilityOff()
                    self.renderer.AddActor(actor)
                row.append(actor)
            drawn.tile_actors.append(row)

    def _drop_tiles(self, drawn: _Drawn) -> None:
        for actor in {id(a): a for row in drawn.tile_actors for a in row}.values():
            self.renderer.RemoveActor(actor)
        drawn.tiles, drawn.tile_actors, drawn.tiles_key = None, [], ()

    def hold_moving(self, seconds: float) -> None:
        """Count frames as moving for the next ``seconds`` (wheel zoom: VTK's style is moving only inside each wheel step)."""
        self._moving_until = time.monotonic() + seconds

    def moving(self) -> bool:
        """Whether a frame rendered now counts as moving: LOD on, and the window's desired update rate at least its moving rate or within :meth:`hold_moving`."""
        return self._lod is not None and (self.window.GetDesiredUpdateRate() >= self._lod.moving_rate or time.monotonic() < self._moving_until)

    def _eye(self) -> Eye:
        """The active camera as level choice needs it (frustum planes for this renderer's aspect, pixels per metre)."""
        camera = self.renderer.GetActiveCamera()
        planes = [0.0] * 24
        camera.GetFrustumPlanes(self.renderer.GetTiledAspectRatio(), planes)
        height = max(self.renderer.GetSize()[1], 1)
        if camera.GetParallelProjection():
            return Eye(np.array(camera.GetPosition()), np.reshape(planes, (6, 4)), height / (2.0 * camera.GetParallelScale()), parallel=True)
        return Eye(np.array(camera.GetPosition()), np.reshape(planes, (6, 4)), height / (2.0 * math.tan(math.radians(camera.GetViewAngle()) / 2.0)))

    def _frame_start(self, *_: object) -> None:
        """Renderer start: block layers draw from the server's copies (up to their latest tick), tiled layers show the level each
        tile needs (none outside the view); a moving frame also skips FXAA."""
        self._server_blocks(True)
        self.proxied, self.lod_frames = (), {}
        lod = self._lod
        if lod is None:
            return
        self._moving_frame = self.moving()
        error_px, budget = (lod.moving_error_px, lod.moving_triangles) if self._moving_frame else (lod.still_error_px, lod.still_triangles)
        eye = None
        for layer_id, drawn in self._drawn.items():
            if drawn.tiles is None or not drawn.actor.GetVisibility():
                continue
            eye = eye or self._eye()
            tiles = drawn.tiles
            levels, allowed = choose_levels(tiles.bounds, tiles.errors, tiles.triangles, eye, error_px=error_px, budget=budget)
            drawn.actor.VisibilityOff()
            for row, level in zip(drawn.tile_actors, levels):
                if level >= 0:
                    row[level].VisibilityOn()
            shown = levels >= 0
            self.lod_frames[layer_id] = LodFrame(levels=levels, allowed_px=allowed, triangles=int(tiles.triangles[np.flatnonzero(shown), levels[shown]].sum()))
        self.proxied = tuple(layer_id for layer_id, frame in self.lod_frames.items() if (frame.levels > 0).any())
        if self._moving_frame:
            self._fxaa_still = bool(self.renderer.GetUseFXAA())
            self.renderer.SetUseFXAA(False)

    def _frame_end(self, *_: object) -> None:
        """Renderer end: back to the full-detail actor, so picking, bounds and exports never see a tile or a proxy, and to the
        block layers' datasets the browsers hold."""
        self._server_blocks(False)
        for layer_id, frame in self.lod_frames.items():
            drawn = self._drawn[layer_id]
            for row, level in zip(drawn.tile_actors, frame.levels):
                if level >= 0:
                    row[level].VisibilityOff()
            drawn.actor.VisibilityOn()
        if self._moving_frame:
            self.renderer.SetUseFXAA(self._fxaa_still)
            self._moving_frame = False

    # -- settings, legends, title ----------------------------------------------------------
    def _apply_settings(self) -> None:
        settings = self.scene.settings
        r, g, b, _ = to_rgba8(settings.background)
        self.renderer.SetBackground(r / 255, g / 255, b / 255)
        if settings.background_top:
            r, g, b, _ = to_rgba8(settings.background_top)
            self.renderer.SetBackground2(r / 255, g / 255, b / 255)
            self.renderer.GradientBackgroundOn()
        else:
            self.renderer.GradientBackgroundOff()

    def _text_property(self, size: int, bold: bool = False, panel: bool = False) -> vtkTextProperty:
        prop = vtkTextProperty()
        if panel:  # a dark translucent panel keeps legend text readable over a busy city
            prop.SetBackgroundColor(0.04, 0.06, 0.11)
            prop.SetBackgroundOpacity(0.6)
        font = vtk_setup.cjk_font_file()
        if font:
            prop.SetFontFamily(4)  # VTK_FONT_FILE
            prop.SetFontFile(font)
        prop.SetFontSize(size)
        prop.SetBold(bold)
        prop.SetColor(0.95, 0.95, 0.95)
        prop.SetShadow(True)
        return prop

    def _update_overlay(self) -> None:
        for actor in self._overlay:
            self.renderer.RemoveViewProp(actor)  # type: ignore[arg-type]
        self._overlay = []
        _width, height = self.window.GetSize()
        scale = max(height / 1080.0, 0.5)
        if self.show_title and self.scene.settings.title:
            title = vtkTextActor()
            title.SetInput(self.scene.settings.title)
            title.SetTextProperty(self._text_property(int(30 * scale), bold=True))
            title.SetDisplayPosition(int(20 * scale), height - int(50 * scale))
            self._add_overlay(title)
        if not (self.show_legend and self.scene.settings.show_legend):
            return
        top = 0.95
        for layer in self.scene.layers:
            drawn = self._drawn.get(layer.id)
            if drawn is None or drawn.legend is None or not drawn.actor.GetVisibility():
                continue
            top = self._add_legend(layer, drawn.legend, top, scale)
            if top < 0.1:
                break

    def _add_overlay(self, actor: object) -> None:
        self._overlay.append(actor)
        self.renderer.AddViewProp(actor)  # type: ignore[arg-type]

    def _add_legend(self, layer: Layer, legend: Legend, top: float, scale: float) -> float:
        title = f"{layer.title}: {legend.title}" if legend.title else layer.title
        if legend.is_continuous:
            bar = vtkScalarBarActor()
            bar.SetLookupTable(_lookup_table(legend))
            bar.SetTitle(title)
            bar.SetNumberOfLabels(5)
            bar.SetLabelFormat("%.0f" if (legend.vmax or 0) - (legend.vmin or 0) >= 10 else "%.2g")
            bar.SetOrientationToHorizontal()
            bar.SetTitleTextProperty(self._text_property(int(18 * scale), bold=True, panel=True))
            bar.SetLabelTextProperty(self._text_property(int(14 * scale), panel=True))
            bar.UnconstrainedFontSizeOn()
            bar.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
            bar.GetPositionCoordinate().SetValue(0.78, top - 0.13)
            bar.SetWidth(0.2)
            bar.SetHeight(0.12)
            self._add_overlay(bar)
            return top - 0.15
        entries = legend.entries[:12]
        width, height = self.window.GetSize()
        row = 26 * scale
        x = int(width * 0.80)
        y = int(height * top)
        heading = vtkTextActor()
        heading.SetInput(title)
        heading.SetTextProperty(self._text_property(int(18 * scale), bold=True, panel=True))
        heading.SetDisplayPosition(x, int(y - row))
        self._add_overlay(heading)
        for i, entry in enumerate(entries, start=2):
            r, g, b, _ = entry.color
            swatch = vtkTextActor()
            swatch.SetInput("\u25a0")
            prop = self._text_property(int(20 * scale))
            prop.SetColor(r / 255, g / 255, b / 255)
            prop.SetShadow(False)
            swatch.SetTextProperty(prop)
            swatch.SetDisplayPosition(x, int(y - i * row))
            label = vtkTextActor()
            label.SetInput(entry.label)
            label.SetTextProperty(self._text_property(int(16 * scale), panel=True))
            label.SetDisplayPosition(int(x + 28 * scale), int(y - i * row + 2 * scale))
            self._add_overlay(swatch)
            self._add_overlay(label)
        if len(legend.entries) > len(entries):
            more = vtkTextActor()
            more.SetInput(f"... {len(legend.entries) - len(entries)} more")
            more.SetTextProperty(self._text_property(int(14 * scale)))
            more.SetDisplayPosition(x, int(y - (len(entries) + 2) * row))
            self._add_overlay(more)
            return top - (len(entries) + 3) * row / height
        return top - (len(entries) + 2) * row / height

    # -- camera --------------------------------------------------------------------------
    def set_camera(self, name: str | None = None) -> None:
        """Apply a named preset (or the scene's default); with none, frame all visible data."""
        camera = self.renderer.GetActiveCamera()
        name = name or self.scene.camera
        if name is not None:
            if name not in self.scene.cameras:
                raise TwinError(f"unknown camera {name!r}; cameras: {', '.join(self.scene.cameras) or 'none defined'}")
            preset = self.scene.cameras[name]
            position, focal, up = preset.resolve(self.scene.frame)
            camera.SetPosition(*position)
            camera.SetFocalPoint(*focal)
            camera.SetViewUp(*up)
            camera.SetViewAngle(preset.view_angle)
        else:
            self._fit_camera()
        self._reset_clipping()
        self._camera_set = True

    def _fit_camera(self) -> None:
        bounds = self._finite_bounds()
        if bounds is None:
            return
        cx, cy, cz = (bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2
        extent = max(bounds[1] - bounds[0], bounds[3] - bounds[2], 1.0)
        pitch = math.radians(55.0)
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(cx, cy, cz)
        camera.SetPosition(cx, cy - extent * math.cos(pitch), cz + extent * math.sin(pitch))
        camera.SetViewUp(0, 0, 1)
        camera.SetViewAngle(30)
        self.renderer.ResetCamera(*bounds)
        camera.Dolly(1.25)

    def _finite_bounds(self) -> tuple[float, float, float, float, float, float] | None:
        """(xmin, xmax, ymin, ymax, zmin, zmax) in local metres of the visible layers' finite points; None if none.

        VTK's own bounds turn NaN when one vertex is non-finite, and a NaN camera draws nothing.
        """
        was = self._server_blocks(True)
        bounds = self.renderer.ComputeVisiblePropBounds()
        self._server_blocks(was)
        if bounds[0] <= bounds[1] and all(math.isfinite(v) for v in bounds):
            return tuple(bounds)  # type: ignore[return-value]
        lows, highs = [], []
        for drawn in self._drawn.values():
            points = drawn.polydata.GetPoints()
            if not drawn.actor.GetVisibility() or points is None or points.GetNumberOfPoints() == 0:
                continue
            xyz = vtk_to_numpy(points.GetData())
            xyz = xyz[np.isfinite(xyz).all(axis=1)]
            if len(xyz):
                lows.append(xyz.min(axis=0))
                highs.append(xyz.max(axis=0))
        if not lows:
            return None
        low, high = np.min(lows, axis=0), np.max(highs, axis=0)
        return (float(low[0]), float(high[0]), float(low[1]), float(high[1]), float(low[2]), float(high[2]))

    def _reset_clipping(self) -> None:
        """Near/far planes around the finite geometry (VTK's reset turns NaN with one non-finite vertex)."""
        bounds = self._finite_bounds()
        if bounds is not None:
            self.renderer.ResetCameraClippingRange(*bounds)

    # -- output --------------------------------------------------------------------------
    def resize(self, width: int, height: int) -> None:
        self.window.SetSize(width, height)
        self._update_overlay()

    def render(self) -> None:
        self._reset_clipping()
        self.label_renderer.ResetCameraClippingRange()
        self.window.Render()

    def image(self) -> NDArray[np.uint8]:
        """The current frame as an (height, width, 3) RGB array, top row first."""
        self.render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        image = grab.GetOutput()
        width, height, _ = image.GetDimensions()
        pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
        return np.ascontiguousarray(pixels[::-1, :, :3])

    def save_png(self, path: str | Path, pixels: NDArray[np.uint8] | None = None) -> Path:
        """Write the current frame (or ``pixels`` already grabbed) to a PNG file."""
        from PIL import Image

        path = Path(path)
        Image.fromarray(self.image() if pixels is None else pixels).save(path, format="PNG")
        return path

    # -- picking -------------------------------------------------------------------------
    def pick(self, x: int, y: int) -> dict[str, object] | None:
        """The feature under display pixel (x, y) (origin bottom-left): attributes and lon/lat."""
        picker = vtkCellPicker()
        picker.SetTolerance(0.0005)
        camera = self.renderer.GetActiveCamera()
        was, clipping = self._server_blocks(True), camera.GetClippingRange()
        try:
            if any(drawn.parts for drawn in self._drawn.values()):
                self._reset_clipping()  # around block layers' latest tick: the clipping range may be from an older one
            if not picker.Pick(x, y, 0, self.renderer):
                return None
        finally:
            camera.SetClippingRange(*clipping)
            self._server_blocks(was)
        actor = picker.GetActor()
        for layer in self.scene.layers:
            drawn = self._drawn.get(layer.id)
            if drawn is None:
                continue
            cell = picker.GetCellId()
            part = next((part for part in drawn.parts if part.actor is actor), None)
            if part is not None:  # a block layer's part: the server's copy draws its shown cells' triangles, the layer mesh's from first_triangle on
                triangle = part.part_triangle(cell)
                return None if triangle < 0 else layer.pick(self.scene.frame, part.first_triangle + triangle, np.asarray(picker.GetPickPosition()))
            if drawn.actor is actor:
                if drawn.cell_ids is not None:  # a filtered layer draws a subset of its cells
                    cell = int(drawn.cell_ids[cell]) if 0 <= cell < len(drawn.cell_ids) else -1
                return layer.pick(self.scene.frame, cell, np.asarray(picker.GetPickPosition()))
        return None

    def empty_layers(self) -> list[str]:
        """Ids of drawn layers that have no cells (no features) to show."""
        return [layer_id for layer_id, drawn in self._drawn.items() if drawn.n_cells == 0]

    def triangle_count(self) -> int:
        """Triangles drawn across all visible layers (lets the app choose remote rendering above a budget)."""
        layers = [*self.scene.layers, *self.overlays.values()]
        return sum(layer.triangle_count() for layer in layers if (d := self._drawn.get(layer.id)) is not None and d.actor.GetVisibility())

    def geometry_bytes(self) -> int:
        """Bytes of geometry across visible layers, what a browser-side view downloads (see :func:`twin.render.lod.geometry_bytes`)."""
        datasets = [part.polydata for d in self._drawn.values() if d.actor.GetVisibility() for part in d.parts[1:]]  # block layers' appended parts
        return sum(geometry_bytes(d.polydata) for d in self._drawn.values() if d.actor.GetVisibility()) + sum(map(geometry_bytes, datasets))

    def close(self) -> None:
        self.window.Finalize()


def _feature_table(colors: NDArray[np.uint8]) -> vtkLookupTable:
    """A lookup table whose entry i is feature i's colour (range -0.5 .. k-0.5 maps index i to entry i)."""
    table = vtkLookupTable()
    count = max(len(colors), 1)
    data = np.ascontiguousarray(colors if len(colors) else np.zeros((1, 4), np.uint8), dtype=np.uint8)
    table.SetNumberOfTableValues(count)
    table.SetTable(numpy_to_vtk(data, deep=True))
    table.SetRange(-0.5, count - 0.5)
    return table


def _vtk_texture(image: NDArray[np.uint8]) -> vtkTexture:
    """A VTK texture from an (h, w, 3|4) uint8 image whose first row is the top."""
    height, width, channels = image.shape
    data = vtkImageData()
    data.SetDimensions(width, height, 1)
    pixels = numpy_to_vtk(np.ascontiguousarray(image[::-1].reshape(-1, channels)), deep=True)
    pixels.SetNumberOfComponents(channels)
    data.GetPointData().SetScalars(pixels)
    texture = vtkTexture()
    texture.SetInputData(data)
    texture.InterpolateOn()
    texture.MipmapOn()
    texture.SetColorModeToDirectScalars()
    return texture


def _lookup_table(legend: Legend) -> vtkLookupTable:
    table = vtkLookupTable()
    table.SetNumberOfTableValues(256)
    cmap = colormaps[legend.colormap or "viridis"]
    for i in range(256):
        table.SetTableValue(i, *cmap(i / 255))
    table.SetRange(legend.vmin or 0.0, legend.vmax if legend.vmax is not None else 1.0)
    table.Build()
    return table

