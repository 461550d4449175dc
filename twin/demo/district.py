"""A deterministic synthetic demo district at the location of Shanghai's Huangpu district.

Everything is generated from a seed (no real dataset is read or copied): a ~6 km x 5 km
district centred near 121.48°E, 31.23°N with a ~350 m wide river that bends like the
Huangpu at the Bund, two slightly irregular street grids (one per bank), a pedestrian street
running east to the river, ~30,000 building footprints (towers, slabs, courtyard blocks with
holes, L/T/U shapes, malls, houses, a few MultiPolygons), flood points, sensors and
emergency resources. Geometry is built in metres in a local transverse Mercator frame
(:class:`twin.geo.frame.Frame`) and returned as EPSG:4326 GeoDataFrames.

>>> d = generate_district(seed=1, n_buildings=500)
>>> len(d.buildings), d.buildings.crs.to_epsg()
(500, 4326)
>>> sorted(d.roads["kind"].unique())
['pedestrian', 'primary', 'secondary']
>>> bool(d.buildings.geometry.is_valid.all()), float(d.buildings["height"].max()) <= 600
(True, True)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import LineString, Point, Polygon, box

from twin.geo.frame import Frame
from twin.paths import cache_dir

__all__ = [
    "BUILDING_KINDS",
    "CENTER_LAT",
    "CENTER_LON",
    "GENERATOR_VERSION",
    "MAX_BUILDINGS",
    "DemoDistrict",
    "cached_district",
    "default_cache_dir",
    "generate_district",
]

GENERATOR_VERSION = 1
"""Bump whenever the output of :func:`generate_district` changes (it names cache folders)."""
CENTER_LON = 121.48
CENTER_LAT = 31.23
BUILDING_KINDS = ("tower", "slab", "courtyard", "house", "mall", "podium_tower")
MAX_BUILDINGS = 60_000

_HALF_W, _HALF_H = 3000.0, 2500.0  # district half extent (m)
_SETBACK = 3.0  # clearance between a road's edge and any block (m)
_PROMENADE = 20.0  # riverside strip between the water and the bank road (m)
_CRS = "EPSG:4326"
_LAYERS = ("boundary", "river", "roads", "buildings", "flood_points", "sensor_sites", "resources")
_TEXT_COLUMNS = ("name", "kind", "road", "id")

F64 = NDArray[np.float64]

# Zones (per block): what gets built there.
_PARK, _CBD, _COMMERCIAL, _OLDTOWN, _MIXED, _PUDONG = range(6)
_ZONE_LOT_AREA = np.array([np.inf, 5500.0, 1800.0, 320.0, 850.0, 1300.0])  # median lot area (m^2)
# Kind probabilities per zone, columns: house, slab, mall, tower, podium_tower.
_K_HOUSE, _K_SLAB, _K_MALL, _K_TOWER, _K_PODIUM, _K_COURT = range(6)
_KIND_NAMES = np.array(["house", "slab", "mall", "tower", "podium_tower", "courtyard"], dtype=object)
_ZONE_KIND_P = np.array(
    [
        [1.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.15, 0.10, 0.45, 0.30],
        [0.10, 0.35, 0.20, 0.15, 0.20],
        [0.62, 0.33, 0.02, 0.03, 0.0],
        [0.20, 0.50, 0.07, 0.14, 0.09],
        [0.12, 0.55, 0.08, 0.15, 0.10],
    ]
)
_COURT_WEIGHT = np.array([0.0, 0.3, 1.0, 3.0, 2.0, 1.0])

# Shape templates.
_T_RECT, _T_CHAMFER, _T_L, _T_T, _T_U, _T_GON, _T_COURT, _T_MULTI, _T_IRREG = range(9)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_NS_NAMES = _words(
    "西藏中路 云南中路 浙江中路 福建中路 山西南路 山东中路 河南中路 江西中路 四川中路 广西北路 "
    "贵州路 湖北路 湖南路 安徽路 江苏路 甘肃路 青海路 陕西南路 宁夏路 吉林路 "
    "辽宁路 黑龙江路 海南路 广东北路 河北路 山西北路 云南南路 福建南路 河南南路 四川南路"
)
_EW_NAMES = _words(
    "北京东路 九江路 汉口路 福州路 广东路 延安东路 金陵东路 宁波路 天津路 厦门路 "
    "苏州路 杭州路 青岛路 大连路 济南路 长沙路 武昌路 昆明路 桂林路 温州路 "
    "徐州路 常州路 扬州路 绍兴路 嘉兴路 湖州路 无锡路 泰州路 南通路 芜湖路 "
    "合肥路 太原路 郑州路 西安路 成都路 重庆路 贵阳路 兰州路 洛阳路 开封路"
)
_PD_NAMES = _words(
    "陆家嘴环路 银城中路 东园路 浦东南路 崂山路 源深路 张杨路 福山路 潍坊路 浦明路 "
    "商城路 丰和路 花园石桥路 银城路 东昌路 即墨路 峨山路 松林路 文登路 乳山路 "
    "栖霞路 荣成路 桃林路 海阳路 莱阳路 沂南路 蓬莱路"
)
_NAME_CHARS = "华申浦金汇新东宏恒盛嘉瑞信融海港江锦银星永丰福安康德和明光泰隆鸿富仁祥兴荣昌裕"
_TOWER_SUFFIX = ("大厦", "中心", "国际大厦", "金融中心", "大楼", "广场")
_MALL_SUFFIX = ("广场", "百货", "商厦", "购物中心", "商城")
_COURT_SUFFIX = ("里", "坊", "邨")
_LANDMARK_NAMES = ("申江之巅", "浦江环球金融港", "江畔之冠大厦", "陆汇中心大厦", "云帆大厦")
_CN_DIGITS = "零一二三四五六七八九"


@dataclass(frozen=True, eq=False)
class DemoDistrict:
    """The layers of a synthetic district, all GeoDataFrames in EPSG:4326."""

    boundary: gpd.GeoDataFrame
    river: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    flood_points: gpd.GeoDataFrame
    sensor_sites: gpd.GeoDataFrame
    resources: gpd.GeoDataFrame

    def layers(self) -> dict[str, gpd.GeoDataFrame]:
        """The layers by field name, in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# -- small helpers -----------------------------------------------------------------------


def _rotate_xy(xy: F64, theta: float) -> F64:
    """Rotate (n, 2) points by ``theta`` radians about the origin."""
    c, s = np.cos(theta), np.sin(theta)
    return np.column_stack([xy[:, 0] * c - xy[:, 1] * s, xy[:, 0] * s + xy[:, 1] * c])


def _rotate(geoms: NDArray[np.object_], theta: float) -> NDArray[np.object_]:
    """Rotate geometries by ``theta`` radians about the origin."""
    return shapely.transform(geoms, lambda xy: _rotate_xy(xy, theta))


def _polygons_of(geom: shapely.Geometry) -> list[Polygon]:
    """The non-empty Polygon parts of a geometry."""
    parts = shapely.get_parts(np.asarray([geom], dtype=object))
    return [p for p in parts if isinstance(p, Polygon) and not p.is_empty]


def _lines_of(geom: shapely.Geometry) -> list[LineString]:
    """The non-empty LineString parts of a geometry."""
    parts = shapely.get_parts(np.asarray([geom], dtype=object))
    return [p for p in parts if isinstance(p, LineString) and not p.is_empty]


def _chaikin(pts: F64, iterations: int) -> F64:
    """Chaikin corner cutting: a smooth polyline that follows the control polygon."""
    for _ in range(iterations):
        a, b = pts[:-1], pts[1:]
        mid = np.empty((2 * len(a), 2))
        mid[0::2] = 0.75 * a + 0.25 * b
        mid[1::2] = 0.25 * a + 0.75 * b
        pts = np.vstack([pts[:1], mid, pts[-1:]])
    return pts


def _cn_number(n: int) -> str:
    """1..99 in Chinese numerals."""
    if n < 10:
        return _CN_DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _CN_DIGITS[tens]) + "十" + (_CN_DIGITS[ones] if ones else "")


def _unique_names(names: Sequence[str], suffix: str) -> list[str]:
    """``name + suffix``, with 二号/三号... inserted for repeats."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        k = seen[name]
        out.append(f"{name}{suffix}" if k == 1 else f"{name}{_cn_number(k)}号{suffix}")
    return out


def _gdf(data: dict[str, object], geoms: Sequence[shapely.Geometry] | NDArray[np.object_]) -> gpd.GeoDataFrame:
    return _normalise(gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(list(geoms), crs=_CRS), crs=_CRS))


def _normalise(df: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Text columns as object dtype holding ``str`` or ``None`` (identical after a parquet round trip)."""
    df = df.reset_index(drop=True)
    for col in _TEXT_COLUMNS:
        if col in df.columns:
            values = df[col].astype(object)
            df[col] = values.where(values.notna(), None).astype(object)
    return df


# -- the land: boundary, river, banks --------------------------------------------------------


@dataclass(frozen=True)
class _Land:
    """The district outline, the river and the land on each bank (world metres)."""

    boundary: Polygon
    river: Polygon
    centreline: LineString
    river_width: float
    bend: F64
    puxi: Polygon
    pudong: Polygon


def _make_land(rng: np.random.Generator) -> _Land:
    """A jittered 6 km x 5 km outline and a ~350 m river that runs north then bends east."""
    # Boundary: the district rectangle with jittered corners and edge midpoints.
    sx = np.array([-1.0, -1 / 3, 1 / 3, 1.0, 1.0, 1.0, 1.0, 1 / 3, -1 / 3, -1.0, -1.0, -1.0])
    sy = np.array([-1.0, -1.0, -1.0, -1.0, -1 / 3, 1 / 3, 1.0, 1.0, 1.0, 1.0, 1 / 3, -1 / 3])
    ring = np.column_stack([sx * _HALF_W, sy * _HALF_H]) + rng.uniform(-70, 70, size=(12, 2))
    boundary = Polygon(ring)
    # River: flows north on the east side, bends east (the Bund and Lujiazui's bend).
    ctrl = np.array(
        [
            [1500, -3200],
            [1300, -1500],
            [1050, -200],
            [1000, 700],
            [1250, 1350],
            [1900, 1700],
            [2600, 1750],
            [3500, 1650],
        ],
        dtype=np.float64,
    )
    ctrl[1:-1] += rng.uniform(-70, 70, size=(len(ctrl) - 2, 2))
    centreline = LineString(_chaikin(ctrl, 4))
    width = float(rng.uniform(320, 380))
    water = centreline.buffer(width / 2, cap_style="flat")
    river_poly = max(_polygons_of(shapely.intersection(water, boundary)), key=lambda p: p.area)
    pieces = sorted(_polygons_of(shapely.difference(boundary, water)), key=lambda p: -p.area)
    west = Point(-_HALF_W + 400, 0.0)
    puxi = next(p for p in pieces if p.contains(west))
    pudong = next(p for p in pieces if p is not puxi)
    return _Land(boundary, river_poly, centreline, width, ctrl[4], puxi, pudong)


# -- roads ----------------------------------------------------------------------------------


@dataclass
class _Road:
    """One named road before it becomes rows of the roads layer."""

    name: str
    kind: str
    width: float
    geom: shapely.Geometry  # LineString / MultiLineString, world metres


def _grid_lines(
    rng: np.random.Generator, lo: float, hi: float, spacing: tuple[float, float], anchor: float | None
) -> F64:
    """Irregularly spaced positions covering [lo, hi] (one exactly at ``anchor`` when given)."""
    start = anchor if anchor is not None else lo + rng.uniform(0.3, 1.0) * spacing[0]
    up = start + np.cumsum(rng.uniform(*spacing, size=64))
    down = start - np.cumsum(rng.uniform(*spacing, size=64))
    pos = np.concatenate([down[::-1], [start], up])
    return pos[(pos > lo + 40) & (pos < hi - 40)]


def _grid(
    rng: np.random.Generator,
    clip: shapely.Geometry,
    theta: float,
    spacing_u: tuple[float, float],
    spacing_v: tuple[float, float],
    ns_names: list[str],
    ew_names: list[str],
    nanjing: tuple[float, float] | None = None,
) -> list[_Road]:
    """A slightly perturbed street grid rotated by ``theta``, clipped to ``clip``.

    N-S lines take ``ns_names``, E-W lines ``ew_names`` (consumed in order). With
    ``nanjing=(v, u_start)`` (rotated frame) the E-W line at v becomes the pedestrian street
    east of u_start and a primary road west of it.
    """
    clip_rot = _rotate(np.asarray([clip], dtype=object), -theta)[0]
    umin, vmin, umax, vmax = clip_rot.bounds
    us = _grid_lines(rng, umin, umax, spacing_u, None)
    vs = _grid_lines(rng, vmin, vmax, spacing_v, None if nanjing is None else nanjing[0])
    roads: list[_Road] = []
    shapely.prepare(clip_rot)

    def add_line(fixed: float, along: F64, ns: bool, name_pool: list[str], special: bool) -> None:
        n = len(along)
        offs = np.clip(rng.normal(0, 1.5, n), -3, 3)
        offs[[0, -1]] = 0
        coord = np.column_stack([fixed + offs, along] if ns else [along, fixed + offs])
        primary = rng.random() < 0.22
        width = rng.uniform(28, 40) if primary else rng.uniform(14, 22)
        keep = np.ones(n - 1, dtype=bool) if (primary or special) else rng.random(n - 1) > 0.12
        if special and nanjing is not None:
            split = int(np.searchsorted(along, nanjing[1]))
            split = min(max(split, 1), n - 2)
            parts = [
                ("南京西路", "primary", 32.0, coord[: split + 1]),
                ("南京路步行街", "pedestrian", 22.0, coord[split:]),
            ]
        else:
            runs, cur = [], [0]
            for i, k in enumerate(keep):
                if k:
                    cur.append(i + 1)
                else:
                    if len(cur) > 1:
                        runs.append(cur)
                    cur = [i + 1]
            if len(cur) > 1:
                runs.append(cur)
            geom = shapely.multilinestrings([LineString(coord[r]) for r in runs]) if runs else None
            if geom is None or not clip_rot.intersects(geom):
                return
            parts = [("", "primary" if primary else "secondary", float(width), geom)]
        for name, kind, w, g in parts:
            g = shapely.intersection(g if not isinstance(g, np.ndarray) else LineString(g), clip_rot)
            if g.is_empty or g.length < 30:
                continue
            if not name:
                if not name_pool:
                    return
                name = name_pool.pop(0)
            roads.append(_Road(name, kind, round(float(w), 1), _rotate(np.asarray([g], dtype=object), theta)[0]))

    v_ext = np.concatenate([[vmin - 60], vs, [vmax + 60]])
    u_ext = np.concatenate([[umin - 60], us, [umax + 60]])
    for u in us:
        add_line(u, v_ext, True, ns_names, False)
    for v in vs:
        special = nanjing is not None and abs(v - nanjing[0]) < 1e-9
        add_line(v, u_ext, False, ew_names, special)
    return roads


def _make_roads(rng: np.random.Generator, land: _Land) -> tuple[list[_Road], float, float, float]:
    """All roads (world metres), the Puxi and Pudong grid angles and the bank road width."""
    bank_w = float(rng.uniform(32, 40))
    gap = land.river_width / 2 + _PROMENADE + bank_w / 2
    river_zone = land.centreline.buffer(gap, cap_style="flat")
    clip_w = shapely.difference(land.puxi, river_zone)
    clip_e = shapely.difference(land.pudong, river_zone)
    theta_w = np.radians(rng.uniform(-12, -4))
    theta_e = np.radians(rng.uniform(25, 40))
    ns = list(rng.permutation(np.array(_NS_NAMES, dtype=object)))
    ew = [n for n in rng.permutation(np.array(_EW_NAMES, dtype=object))]
    pd_names = list(rng.permutation(np.array(_PD_NAMES, dtype=object)))
    ns += [n[:-1] + "支路" for n in ns]
    ew += [n[:-1] + "支路" for n in ew]
    # Nanjing Road: an E-W line through roughly (-800, 480), pedestrian east of x ~ -900.
    nj = _rotate_xy(
        np.array([[-800.0 + rng.uniform(-80, 80), 480.0 + rng.uniform(-60, 60)], [-900.0, 480.0]]), -theta_w
    )
    roads = _grid(
        rng, clip_w, float(theta_w), (150, 320), (130, 280), ns, ew, nanjing=(float(nj[0, 1]), float(nj[1, 0]))
    )
    pd_ns = pd_names[: len(pd_names) // 2] + [n[:-1] + "支路" for n in pd_names]
    pd_ew = pd_names[len(pd_names) // 2 :]
    roads += _grid(rng, clip_e, float(theta_e), (170, 330), (150, 300), pd_ns, pd_ew)
    # Century-avenue-like diagonal through the Pudong CBD.
    cbd = land.bend + np.array([650.0, -450.0])
    d = np.array([np.cos(np.radians(-40)), np.sin(np.radians(-40))])
    diag = LineString([cbd - 600 * d, cbd + 5000 * d])
    roads.append(_Road("世纪大道", "primary", 50.0, shapely.intersection(diag, clip_e)))
    # Bank roads along the river (the Bund road on the west, a riverside avenue on the east).
    off = land.river_width / 2 + _PROMENADE + bank_w / 2
    west_bank = shapely.intersection(land.centreline.offset_curve(off), land.boundary)
    east_bank = shapely.intersection(land.centreline.offset_curve(-off), land.boundary)
    south = box(-1e5, -1e5, 1e5, float(land.bend[1]))
    north = box(-1e5, float(land.bend[1]), 1e5, 1e5)
    roads.append(_Road("中山东一路", "primary", round(bank_w, 1), shapely.intersection(west_bank, south)))
    roads.append(_Road("东大名路", "primary", round(bank_w, 1), shapely.intersection(west_bank, north)))
    roads.append(_Road("滨江大道", "primary", round(bank_w, 1), east_bank))
    return roads, float(theta_w), float(theta_e), bank_w


# -- blocks and lots -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Lots:
    """Candidate building lots: axis-aligned rectangles in their side's rotated frame."""

    side: NDArray[np.int64]  # 0 Puxi, 1 Pudong
    zone: NDArray[np.int64]
    rect: F64  # (n, 4) u0, v0, u1, v1 (rotated frame)
    contained: NDArray[np.bool_]  # rectangle lies inside its block
    irregular: NDArray[np.object_]  # footprint for a lot clipped by its block (rotated frame), else None
    centre: F64  # (n, 2) world metres


def _subdivide(
    rng: np.random.Generator, rects: F64, blk: NDArray[np.int64], target: F64, min_side: float
) -> tuple[F64, NDArray[np.int64]]:
    """Recursively split rectangles across their long axis until under their target area."""
    done_r, done_b = [], []
    tgt = target[blk] * rng.lognormal(0, 0.35, len(blk))
    for _ in range(40):
        w, h = rects[:, 2] - rects[:, 0], rects[:, 3] - rects[:, 1]
        long = np.maximum(w, h)
        split = (w * h > tgt) & (long >= 2 * min_side)
        done_r.append(rects[~split])
        done_b.append(blk[~split])
        if not split.any():
            break
        r, b, w, h, long = rects[split], blk[split], w[split], h[split], long[split]
        along_u = w >= h
        lo = np.maximum(0.35, min_side / long)
        frac = lo + rng.random(len(r)) * (np.minimum(0.65, 1 - min_side / long) - lo)
        cut_u = r[:, 0] + frac * w
        cut_v = r[:, 1] + frac * h
        a, c = r.copy(), r.copy()
        a[along_u, 2] = cut_u[along_u]
        c[along_u, 0] = cut_u[along_u]
        a[~along_u, 3] = cut_v[~along_u]
        c[~along_u, 1] = cut_v[~along_u]
        rects = np.vstack([a, c])
        blk = np.concatenate([b, b])
        tgt = target[blk] * rng.lognormal(0, 0.35, len(blk))
    return np.vstack(done_r), np.concatenate(done_b)


def _make_blocks(land: _Land, roads: list[_Road], bank_w: float) -> list[Polygon]:
    """Land minus road corridors and the riverside promenade, as block polygons (world metres)."""
    corridors = [shapely.buffer(r.geom, r.width / 2 + _SETBACK, cap_style="flat", join_style="mitre") for r in roads]
    river_zone = land.centreline.buffer(land.river_width / 2 + _PROMENADE + bank_w + _SETBACK, cap_style="flat")
    cut = shapely.union_all(np.asarray(corridors + [river_zone], dtype=object))
    land_all = shapely.difference(land.boundary, cut)
    return [p for p in _polygons_of(land_all) if p.area > 1500]


def _zone_of(
    points: F64, side: NDArray[np.int64], land: _Land, roads: list[_Road], rng: np.random.Generator
) -> NDArray[np.int64]:
    """The zone of each block (by a representative point in world metres)."""
    x, y = points[:, 0], points[:, 1]
    cbd = land.bend + np.array([650.0, -450.0])
    bund = np.array([700.0, 500.0]) + rng.uniform(-60, 60, 2)
    square = np.array([-1150.0, 250.0]) + rng.uniform(-60, 60, 2)
    nanjing = shapely.union_all([r.geom for r in roads if r.name in ("南京路步行街",)])
    near_nj = shapely.distance(shapely.points(points), nanjing) < 180
    zone = np.full(len(points), _MIXED, dtype=np.int64)
    oldtown = np.array([-250.0, -1150.0]) + rng.uniform(-100, 100, 2)
    zone[np.hypot(x - oldtown[0], (y - oldtown[1]) * 1.3) < 1100] = _OLDTOWN
    zone[(np.hypot(x - bund[0], y - bund[1]) < 1000) | near_nj] = _COMMERCIAL
    zone[np.hypot(x - square[0], y - square[1]) < 230] = _PARK
    zone[side == 1] = _PUDONG
    zone[(side == 1) & (np.hypot(x - cbd[0], y - cbd[1]) < 1100)] = _CBD
    return zone


def _make_lots(
    rng: np.random.Generator,
    land: _Land,
    roads: list[_Road],
    blocks: list[Polygon],
    thetas: tuple[float, float],
    n: int,
) -> _Lots:
    """Subdivide blocks into lots, refining until there are comfortably more than ``n``."""
    blocks_arr = np.asarray(blocks, dtype=object)
    rep = shapely.get_coordinates(shapely.point_on_surface(blocks_arr))
    side = (~shapely.contains_xy(land.puxi, rep[:, 0], rep[:, 1])).astype(np.int64)
    zone = _zone_of(rep, side, land, roads, rng)
    rot = blocks_arr.copy()
    for s, theta in enumerate(thetas):
        rot[side == s] = _rotate(blocks_arr[side == s], -theta)
    shapely.prepare(rot)
    bounds = shapely.bounds(rot) + np.array([2.5, 2.5, -2.5, -2.5])  # absorbs the roads' wiggle
    scale = 1.0
    for _attempt in range(4):
        target = _ZONE_LOT_AREA[zone] * scale
        target[zone == _CBD] = _ZONE_LOT_AREA[_CBD] * np.sqrt(scale)
        ok = np.isfinite(target) & (np.minimum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1]) >= 10.0)
        idx = np.flatnonzero(ok)
        rects, blk = _subdivide(rng, bounds[idx], np.arange(len(idx)), target[idx], 10.0)
        blk = idx[blk]
        lot_boxes = shapely.box(rects[:, 0], rects[:, 1], rects[:, 2], rects[:, 3])
        contained = shapely.contains(rot[blk], lot_boxes)
        irregular = np.full(len(rects), None, dtype=object)
        other = np.flatnonzero(~contained)
        clipped = shapely.intersection(rot[blk[other]], lot_boxes[other])
        good = (shapely.get_type_id(clipped) == 3) & (shapely.area(clipped) > 0.5 * shapely.area(lot_boxes[other]))
        other, clipped = other[good], clipped[good]
        margin = rng.uniform(1.5, 3.0, len(other))
        foot = shapely.simplify(shapely.buffer(clipped, -margin, join_style="mitre"), 0.8)
        good = (shapely.get_type_id(foot) == 3) & shapely.is_valid(foot) & (shapely.area(foot) > 40)
        good &= shapely.get_num_coordinates(foot) <= 20
        irregular[other[good]] = foot[good]
        keep = contained | (irregular != None)  # elementwise on an object array
        count = int(keep.sum())
        if count >= 1.05 * n:
            break
        scale *= max(0.3, count / (1.15 * n))
    else:
        if count < n:
            raise ValueError(f"n_buildings={n} is more than this district can hold (about {count})")
    rects, blk, contained, irregular = rects[keep], blk[keep], contained[keep], irregular[keep]
    centre_rot = np.column_stack([(rects[:, 0] + rects[:, 2]) / 2, (rects[:, 1] + rects[:, 3]) / 2])
    centre = np.empty_like(centre_rot)
    for s, theta in enumerate(thetas):
        m = side[blk] == s
        centre[m] = _rotate_xy(centre_rot[m], theta)
    return _Lots(side[blk], zone[blk], rects, contained, irregular, centre)


# -- buildings -----------------------------------------------------------------------------


def _unit_template(t: int, k: int, rng: np.random.Generator, corner: tuple[F64, F64] | None = None) -> F64:
    """``k`` rings of template ``t`` in the unit square, shape (k, nv, 2).

    ``corner`` caps the chamfer fractions (along s, along t) of :data:`_T_CHAMFER`.
    """
    u = rng.random
    if t == _T_RECT:
        base = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
        return np.broadcast_to(base, (k, 4, 2)).copy()
    if t == _T_CHAMFER:
        cs, ct = 0.12 + 0.13 * u(k), 0.12 + 0.13 * u(k)
        if corner is not None:
            cs, ct = np.minimum(cs, corner[0]), np.minimum(ct, corner[1])
        z, o = np.zeros(k), np.ones(k)
        s = [cs, 1 - cs, o, o, 1 - cs, cs, z, z]
        tt = [z, z, ct, 1 - ct, o, o, 1 - ct, ct]
        return np.stack([np.stack(s, 1), np.stack(tt, 1)], 2)
    if t == _T_L:
        a, b = 0.35 + 0.25 * u(k), 0.35 + 0.25 * u(k)
        z, o = np.zeros(k), np.ones(k)
        return np.stack([np.stack([z, o, o, b, b, z], 1), np.stack([z, z, a, a, o, o], 1)], 2)
    if t == _T_T:
        a = 0.3 + 0.2 * u(k)
        sw = 0.3 + 0.2 * u(k)
        c = np.clip(0.35 + 0.3 * u(k), 0.05 + sw / 2, 0.95 - sw / 2)
        b0, b1 = c - sw / 2, c + sw / 2
        z, o = np.zeros(k), np.ones(k)
        return np.stack(
            [np.stack([b0, b1, b1, o, o, z, z, b0], 1), np.stack([z, z, 1 - a, 1 - a, o, o, 1 - a, 1 - a], 1)], 2
        )
    if t == _T_U:
        a, b = 0.25 + 0.13 * u(k), 0.3 + 0.2 * u(k)
        z, o = np.zeros(k), np.ones(k)
        return np.stack([np.stack([z, o, o, 1 - a, 1 - a, a, a, z], 1), np.stack([z, z, o, o, b, b, o, o], 1)], 2)
    if t == _T_GON:
        ang = u(k)[:, None] * (np.pi / 6) + np.arange(12)[None, :] * (np.pi / 6)
        return np.stack([0.5 + 0.5 * np.cos(ang), 0.5 + 0.5 * np.sin(ang)], 2)
    raise ValueError(t)


def _place(unit: F64, box4: F64) -> F64:
    """Map unit-square rings (k, nv, 2) onto boxes (k, 4) = u0, v0, u1, v1."""
    out = np.empty_like(unit)
    out[..., 0] = box4[:, None, 0] + unit[..., 0] * (box4[:, None, 2] - box4[:, None, 0])
    out[..., 1] = box4[:, None, 1] + unit[..., 1] * (box4[:, None, 3] - box4[:, None, 1])
    return out


def _random_flips(unit: F64, rng: np.random.Generator, transpose: bool) -> F64:
    """Mirror rings in s and/or t (and optionally swap the axes) at random, per ring."""
    k = len(unit)
    unit = unit.copy()
    fs, ft = rng.random(k) < 0.5, rng.random(k) < 0.5
    unit[fs, :, 0] = 1 - unit[fs, :, 0]
    unit[ft, :, 1] = 1 - unit[ft, :, 1]
    if transpose:
        tr = rng.random(k) < 0.5
        unit[tr] = unit[tr][:, :, ::-1]
    return unit


def _choose(rng: np.random.Generator, p: F64) -> NDArray[np.int64]:
    """One category per row of the probability matrix ``p``."""
    cum = np.cumsum(p, axis=1)
    return (rng.random(len(p))[:, None] * cum[:, -1:] > cum).sum(axis=1)


def _make_buildings(
    rng: np.random.Generator, lots: _Lots, n: int, thetas: tuple[float, float], frame: Frame
) -> gpd.GeoDataFrame:
    """Pick ``n`` lots, give each a kind, a footprint (lon/lat), floors, height and maybe a name."""
    total = len(lots.zone)
    inner_w = lots.rect[:, 2] - lots.rect[:, 0]
    inner_h = lots.rect[:, 3] - lots.rect[:, 1]
    # Landmarks: the biggest contained CBD lots close to the CBD centre.
    cbd_centre = np.average(lots.centre[lots.zone == _CBD], axis=0) if (lots.zone == _CBD).any() else np.zeros(2)
    cand = np.flatnonzero(lots.contained & (lots.zone == _CBD) & (np.minimum(inner_w, inner_h) >= 45))
    if len(cand) == 0:
        cand = np.flatnonzero(lots.contained & (lots.zone == _CBD) & (np.minimum(inner_w, inner_h) >= 30))
    near = cand[np.argsort(np.hypot(*(lots.centre[cand] - cbd_centre).T), kind="stable")[:8]]
    landmarks = (
        np.sort(rng.choice(near, size=min(3, len(near)), replace=False))
        if n >= 50 and len(near)
        else np.array([], dtype=np.int64)
    )
    # Pick n lots (landmarks always); the rest stay empty as plazas and gardens.
    pool = np.setdiff1d(np.arange(total), landmarks)
    chosen = np.sort(np.concatenate([landmarks, rng.choice(pool, size=n - len(landmarks), replace=False)]))
    is_landmark = np.isin(chosen, landmarks)
    zone, side = lots.zone[chosen], lots.side[chosen]
    contained, irregular = lots.contained[chosen], lots.irregular[chosen]
    margin = rng.uniform(1.2, 2.5, n)
    inner = lots.rect[chosen] + np.column_stack([margin, margin, -margin, -margin])
    W, H = inner[:, 2] - inner[:, 0], inner[:, 3] - inner[:, 1]
    smin, slong = np.minimum(W, H), np.maximum(W, H)

    # Kinds.
    kind = _choose(rng, _ZONE_KIND_P[zone])
    area = W * H
    kind[(kind == _K_TOWER) & (smin < 18)] = _K_SLAB
    kind[(kind == _K_PODIUM) & ((smin < 25) | (area < 900))] = _K_SLAB
    kind[(kind == _K_MALL) & (area < 1200)] = _K_SLAB
    kind[(kind == _K_SLAB) & (area < 120)] = _K_HOUSE
    template = np.full(n, _T_RECT)
    special = is_landmark | ~contained
    # ~10% courtyard blocks (with holes) and ~2% MultiPolygons, drawn from eligible lots.
    elig = np.flatnonzero(~special & (smin >= 16))
    k_court = min(len(elig), round(0.10 * n))
    w = _COURT_WEIGHT[zone[elig]]
    court = rng.choice(elig, size=k_court, replace=False, p=w / w.sum()) if k_court else np.array([], dtype=np.int64)
    kind[court] = _K_COURT
    template[court] = _T_COURT
    elig = np.flatnonzero(~special & (template == _T_RECT) & (slong >= 20) & (smin >= 8))
    multi = rng.choice(elig, size=min(len(elig), round(0.02 * n)), replace=False)
    template[multi] = _T_MULTI
    kind[multi] = np.where(area[multi] >= 300, _K_SLAB, _K_HOUSE)
    kind[is_landmark] = _K_TOWER
    template[is_landmark] = _T_GON
    template[~contained] = _T_IRREG
    irr = ~contained
    ia = shapely.area(irregular[irr]) if irr.any() else np.zeros(0)
    kind[irr] = np.where(
        ia < 250, _K_HOUSE, np.where(ia < 1500, _K_SLAB, np.where(zone[irr] == _CBD, _K_PODIUM, _K_MALL))
    )

    # Footprint boxes inside the inner lot (rotated frame).
    fw, fh = W.copy(), H.copy()
    r = rng.random((n, 4))
    hs = kind == _K_HOUSE
    fw[hs], fh[hs] = np.minimum(W[hs], 9 + 9 * r[hs, 0]), np.minimum(H[hs], 10 + 12 * r[hs, 1])
    sl = (kind == _K_SLAB) & (template == _T_RECT)
    long_len, short_len = np.minimum(slong, 30 + 60 * r[:, 0]), np.minimum(smin, 12 + 8 * r[:, 1])
    fw[sl] = np.where(W[sl] >= H[sl], long_len[sl], short_len[sl])
    fh[sl] = np.where(W[sl] >= H[sl], short_len[sl], long_len[sl])
    for k, lo in ((_K_MALL, 0.8), (_K_PODIUM, 0.75)):
        m = kind == k
        fw[m], fh[m] = W[m] * (lo + (1 - lo) * r[m, 0]), H[m] * (lo + (1 - lo) * r[m, 1])
    tw = (kind == _K_TOWER) & ~is_landmark & contained
    side_len = np.minimum(smin, 22 + 28 * r[:, 0])
    fw[tw], fh[tw] = side_len[tw], np.minimum(H[tw], side_len[tw] * (0.8 + 0.45 * r[tw, 1]))
    lm_side = np.minimum(smin, 50 + 15 * r[:, 0])
    fw[is_landmark] = fh[is_landmark] = lm_side[is_landmark]
    off_u, off_v = (W - fw) * r[:, 2], (H - fh) * r[:, 3]
    fbox = np.column_stack(
        [inner[:, 0] + off_u, inner[:, 1] + off_v, inner[:, 0] + off_u + fw, inner[:, 1] + off_v + fh]
    )

    # Shape templates for plain lots.
    plain = template == _T_RECT
    big = np.minimum(fw, fh) >= 14
    shape_p = {
        _K_HOUSE: [0.7, 0.0, 0.3, 0.0, 0.0, 0.0],
        _K_SLAB: [0.62, 0.0, 0.2, 0.06, 0.12, 0.0],
        _K_MALL: [0.4, 0.0, 0.2, 0.2, 0.2, 0.0],
        _K_PODIUM: [0.5, 0.0, 0.3, 0.0, 0.2, 0.0],
        _K_TOWER: [0.4, 0.4, 0.0, 0.0, 0.0, 0.2],
    }
    for k, p in shape_p.items():
        m = np.flatnonzero(plain & (kind == k))
        t = _choose(rng, np.broadcast_to(np.asarray(p), (len(m), 6)))
        t[~big[m] & np.isin(t, [_T_L, _T_T, _T_U])] = _T_RECT
        template[m] = t

    geoms = np.empty(n, dtype=object)
    for t in (_T_RECT, _T_CHAMFER, _T_L, _T_T, _T_U, _T_GON):
        m = np.flatnonzero(template == t)
        if len(m):
            unit = _random_flips(_unit_template(t, len(m), rng), rng, t in (_T_L, _T_T, _T_U))
            geoms[m] = shapely.polygons(_place(unit, fbox[m]))
    m = np.flatnonzero(template == _T_COURT)
    if len(m):
        thick = np.minimum(5 + 5 * rng.random(len(m)), 0.3 * np.minimum(fw[m], fh[m]))
        hole_box = fbox[m] + np.column_stack([thick, thick, -thick, -thick])
        chamfer = rng.random(len(m)) < 0.3
        for sub, t in ((m[~chamfer], _T_RECT), (m[chamfer], _T_CHAMFER)):
            if len(sub):
                j = np.searchsorted(m, sub)
                # Chamfers stay within 80% of the wall thickness so the hole never pokes out.
                cap = (0.8 * thick[j] / fw[sub], 0.8 * thick[j] / fh[sub])
                shells = shapely.linearrings(_place(_unit_template(t, len(sub), rng, cap), fbox[sub]))
                holes = shapely.linearrings(_place(_unit_template(_T_RECT, len(sub), rng), hole_box[j]))
                geoms[sub] = shapely.polygons(shells, holes[:, None])
    m = np.flatnonzero(template == _T_MULTI)
    if len(m):
        b = fbox[m]
        along_u = (b[:, 2] - b[:, 0]) >= (b[:, 3] - b[:, 1])
        lo_, hi_ = np.where(along_u, b[:, 0], b[:, 1]), np.where(along_u, b[:, 2], b[:, 3])
        length = hi_ - lo_
        gap = np.maximum(3.0, 0.1 * length)
        cut = lo_ + (0.4 + 0.2 * rng.random(len(m))) * length
        cross = 0.6 + 0.4 * rng.random(len(m))
        b1, b2 = b.copy(), b.copy()
        b1[along_u, 2], b2[along_u, 0] = cut[along_u] - gap[along_u] / 2, cut[along_u] + gap[along_u] / 2
        b1[~along_u, 3], b2[~along_u, 1] = cut[~along_u] - gap[~along_u] / 2, cut[~along_u] + gap[~along_u] / 2
        b2[along_u, 3] = b2[along_u, 1] + cross[along_u] * (b2[along_u, 3] - b2[along_u, 1])
        b2[~along_u, 2] = b2[~along_u, 0] + cross[~along_u] * (b2[~along_u, 2] - b2[~along_u, 0])
        p1 = shapely.box(b1[:, 0], b1[:, 1], b1[:, 2], b1[:, 3])
        p2 = shapely.box(b2[:, 0], b2[:, 1], b2[:, 2], b2[:, 3])
        geoms[m] = shapely.multipolygons(np.stack([p1, p2], 1))
    geoms[irr] = irregular[irr]
    for s, theta in enumerate(thetas):
        ms = side == s
        geoms[ms] = _rotate(geoms[ms], theta)
    geoms = _to_lonlat(frame, geoms)

    # Heights: floors x floor height (3.05-3.95 m).
    floors_lo = np.array([2, 6, 3, 20, 20, 2])
    floors_hi = np.array([4, 33, 8, 80, 70, 6])
    fl = floors_lo[kind] + np.floor(rng.random(n) ** 1.6 * (floors_hi[kind] - floors_lo[kind] + 1)).astype(np.int64)
    fh_m = 3.05 + 0.9 * rng.random(n)
    fh_m[np.isin(kind, [_K_TOWER, _K_PODIUM, _K_MALL])] = 3.5 + 0.45 * rng.random(
        int(np.isin(kind, [_K_TOWER, _K_PODIUM, _K_MALL]).sum())
    )
    lm = np.flatnonzero(is_landmark)
    fl[lm] = np.round((420 + 160 * rng.random(len(lm))) / fh_m[lm]).astype(np.int64)
    tower = kind == _K_TOWER
    fl[tower & ~is_landmark] = np.clip(fl[tower & ~is_landmark], 23, 85)
    height = np.minimum(np.round(fl * fh_m, 1), 600.0)
    tall = tower & ~is_landmark
    height[tall] = np.clip(height[tall], 80.0, 300.0)

    # Names for landmarks, some towers, malls and lilong courtyards.
    names: list[str | None] = [None] * n
    pick = rng.random(n)
    chars = rng.integers(0, len(_NAME_CHARS), size=(n, 2))
    suf = rng.integers(0, 5, size=n)
    for i in np.flatnonzero(((kind == _K_TOWER) | (kind == _K_PODIUM)) & (pick < 0.5)):
        names[i] = _NAME_CHARS[chars[i, 0]] + _NAME_CHARS[chars[i, 1]] + _TOWER_SUFFIX[suf[i] % len(_TOWER_SUFFIX)]
    for i in np.flatnonzero((kind == _K_MALL) & (pick < 0.6)):
        names[i] = _NAME_CHARS[chars[i, 0]] + _NAME_CHARS[chars[i, 1]] + _MALL_SUFFIX[suf[i] % len(_MALL_SUFFIX)]
    for i in np.flatnonzero((kind == _K_COURT) & (zone == _OLDTOWN) & (pick < 0.2)):
        names[i] = _NAME_CHARS[chars[i, 0]] + _NAME_CHARS[chars[i, 1]] + _COURT_SUFFIX[suf[i] % len(_COURT_SUFFIX)]
    for j, i in enumerate(lm):
        names[i] = _LANDMARK_NAMES[j % len(_LANDMARK_NAMES)]
    return _gdf(
        {
            "building_id": np.arange(n, dtype=np.int64),
            "kind": _KIND_NAMES[kind],
            "height": height.astype(np.float64),
            "floors": fl.astype(np.int64),
            "name": names,
        },
        geoms,
    )


# -- points: flood points, sensors, resources ---------------------------------------------------


def _to_lonlat(frame: Frame, geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    """Local frame metres to WGS84 lon/lat, vertex by vertex."""

    def fn(xy: F64) -> F64:
        lon, lat, _ = frame.local_to_lonlat(xy)
        return np.column_stack([lon, lat])

    return shapely.transform(np.asarray(geoms, dtype=object), fn)


def _on_lines(
    rng: np.random.Generator, lines: NDArray[np.object_], weight: F64, k: int
) -> tuple[NDArray[np.int64], NDArray[np.object_]]:
    """``k`` random points on ``lines`` (probability ∝ weight x length): line index, point."""
    p = weight * shapely.length(lines)
    idx = rng.choice(len(lines), size=k, p=p / p.sum())
    return idx, shapely.line_interpolate_point(lines[idx], rng.uniform(0.05, 0.95, k), normalized=True)


def _make_points(
    rng: np.random.Generator, land: _Land, roads_m: gpd.GeoDataFrame, frame: Frame
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Flood points, sensor sites and emergency resources (lon/lat) from roads in metres."""
    lines = np.asarray(roads_m.geometry.values, dtype=object)
    names = roads_m["name"].to_numpy(dtype=object)
    kinds = roads_m["kind"].to_numpy(dtype=object)
    length = shapely.length(lines)
    # Flood points: 40 on distinct roads where possible (longest piece of each), 25% hidden dangers.
    by_name: dict[str, int] = {}
    for i, name in enumerate(names):
        if kinds[i] != "pedestrian" and (name not in by_name or length[i] > length[by_name[name]]):
            by_name[name] = i
    uniq = np.array(sorted(by_name.values()), dtype=np.int64)
    puxi = shapely.contains_xy(land.puxi, *shapely.get_coordinates(shapely.point_on_surface(lines[uniq])).T)
    w = np.where(puxi, 3.0, 1.0)
    n_fp = 40
    pick = rng.choice(uniq, size=min(n_fp, len(uniq)), replace=False, p=w / w.sum())
    if len(pick) < n_fp:
        pick = np.concatenate([pick, rng.choice(uniq, size=n_fp - len(pick))])
    pos = rng.uniform(0.15, 0.85, n_fp)
    fp_pts = shapely.line_interpolate_point(lines[pick], pos, normalized=True)
    hidden = np.zeros(n_fp, dtype=bool)
    hidden[rng.choice(n_fp, size=n_fp // 4, replace=False)] = True
    flood = _gdf(
        {
            "id": [f"FP{i + 1:03d}" for i in range(n_fp)],
            "name": _unique_names(list(names[pick]), "积水点"),
            "road": list(names[pick]),
            "hidden_danger": hidden,
        },
        _to_lonlat(frame, fp_pts),
    )

    # Sensors: 500 in all.
    is_ped = (kinds == "pedestrian").astype(np.float64)
    is_bank = np.isin(names, ["中山东一路", "东大名路", "滨江大道"]).astype(np.float64)
    _, cams = _on_lines(rng, lines, 1.0 + 7.0 * is_ped + 2.0 * is_bank, 200)
    _, noise = _on_lines(rng, lines, np.where(kinds == "primary", 2.0, 1.0), 150)
    banks = shapely.intersection(shapely.boundary(land.river), land.boundary.buffer(-60))
    bank_lines = np.asarray(_lines_of(banks), dtype=object)
    _, wl_river = _on_lines(rng, bank_lines, np.ones(len(bank_lines)), 25)
    wl_road = shapely.line_interpolate_point(lines[pick[:25]], pos[:25] * length[pick[:25]] + 4.0)
    land_all = shapely.union(land.puxi, land.pudong)
    shapely.prepare(land_all)
    xy = rng.uniform([-_HALF_W, -_HALF_H], [_HALF_W, _HALF_H], size=(600, 2))
    xy = xy[shapely.contains_xy(land_all, xy[:, 0], xy[:, 1])][:100]
    air = shapely.points(xy)
    groups = [
        ("crowd_camera", "CAM", cams),
        ("water_level", "WL", np.concatenate([wl_river, wl_road])),
        ("air_quality", "AQ", air),
        ("noise", "NS", noise),
    ]
    sensors = _gdf(
        {
            "id": [f"{pre}{i + 1:04d}" for _, pre, g in groups for i in range(len(g))],
            "kind": [k for k, _, g in groups for _ in range(len(g))],
        },
        _to_lonlat(frame, np.concatenate([g for _, _, g in groups])),
    )

    # Resources: 24 pumps (river banks and flood points), 16 rescue teams, 20 material depots.
    bank_idx = np.flatnonzero(is_bank > 0)
    pi_bank, p_bank = _on_lines(rng, lines[bank_idx], np.ones(len(bank_idx)), 12)
    p_flood = shapely.line_interpolate_point(lines[pick[:12]], pos[:12] * length[pick[:12]] + 25.0)
    pi_rescue, p_rescue = _on_lines(rng, lines, (kinds == "primary").astype(np.float64), 16)
    pi_mat, p_mat = _on_lines(rng, lines, (kinds == "secondary").astype(np.float64), 20)
    pump_roads = list(names[bank_idx[pi_bank]]) + list(names[pick[:12]])
    res_names = (
        _unique_names(pump_roads, "泵站")
        + _unique_names(list(names[pi_rescue]), "抢险队")
        + _unique_names(list(names[pi_mat]), "防汛物资点")
    )
    res_kind = ["pump"] * 24 + ["rescue_team"] * 16 + ["materials"] * 20
    prefix = {"pump": "PS", "rescue_team": "RT", "materials": "MS"}
    counters: dict[str, int] = {}
    ids = []
    for k in res_kind:
        counters[k] = counters.get(k, 0) + 1
        ids.append(f"{prefix[k]}{counters[k]:02d}")
    resources = _gdf(
        {"id": ids, "kind": res_kind, "name": res_names},
        _to_lonlat(frame, np.concatenate([p_bank, p_flood, p_rescue, p_mat])),
    )
    return flood, sensors, resources


# -- public API ----------------------------------------------------------------------------------


def generate_district(seed: int = 0, n_buildings: int = 30_000) -> DemoDistrict:
    """Generate the synthetic district for ``seed`` with exactly ``n_buildings`` buildings.

    Deterministic: the same arguments give identical geometry and attributes.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if (
        isinstance(n_buildings, bool)
        or not isinstance(n_buildings, (int, np.integer))
        or not 1 <= n_buildings <= MAX_BUILDINGS
    ):
        raise ValueError(f"n_buildings must be an int in 1..{MAX_BUILDINGS}, got {n_buildings!r}")
    rng = np.random.default_rng([GENERATOR_VERSION, int(seed)])
    frame = Frame.auto(CENTER_LON, CENTER_LAT)
    land = _make_land(rng)
    roads, theta_w, theta_e, bank_w = _make_roads(rng, land)
    blocks = _make_blocks(land, roads, bank_w)
    lots = _make_lots(rng, land, roads, blocks, (theta_w, theta_e), int(n_buildings))
    buildings = _make_buildings(rng, lots, int(n_buildings), (theta_w, theta_e), frame)

    rows = [(r.name, r.kind, r.width, part) for r in roads for part in _lines_of(r.geom) if part.length >= 30]
    roads_m = _normalise(
        gpd.GeoDataFrame(
            {
                "name": [r[0] for r in rows],
                "kind": [r[1] for r in rows],
                "width_m": np.array([r[2] for r in rows], dtype=np.float64),
            },
            geometry=[r[3] for r in rows],
        )
    )
    flood, sensors, resources = _make_points(rng, land, roads_m, frame)
    roads_gdf = _gdf(
        {
            "name": roads_m["name"].to_list(),
            "kind": roads_m["kind"].to_list(),
            "width_m": roads_m["width_m"].to_numpy(),
        },
        _to_lonlat(frame, np.asarray(roads_m.geometry.values, dtype=object)),
    )
    boundary = _gdf({"name": ["示范区"]}, _to_lonlat(frame, np.asarray([land.boundary], dtype=object)))
    river = _gdf(
        {"name": ["黄浦江"], "width_m": [round(land.river_width, 1)]},
        _to_lonlat(frame, np.asarray([land.river], dtype=object)),
    )
    return DemoDistrict(boundary, river, roads_gdf, buildings, flood, sensors, resources)


def default_cache_dir() -> Path:
    """``$TWIN_CACHE_DIR`` if set, else ``~/.cache/twin`` (see :func:`twin.paths.cache_dir`)."""
    return cache_dir()


def _cache_name(seed: int, n_buildings: int) -> str:
    """The cache folder name for these arguments."""
    return f"demo-v{GENERATOR_VERSION}-s{int(seed)}-n{int(n_buildings)}"


_read_lock = threading.Lock()
_read_memo: dict[tuple[Path, float], DemoDistrict] = {}
_READ_MEMO_SIZE = 2
"""Districts kept in memory (the last ones read): a process shows one demo district."""


def _read(folder: Path) -> DemoDistrict:
    """The cached district in ``folder``, read once per process (keyed by the folder and its ``meta.json`` time).

    Every demo layer and simulator asks for the district at start-up; reading the seven GeoParquet
    files (and parsing their CRS) once instead of once per caller saves seconds. Callers get
    copies of the frames, so one caller's change never reaches another.
    """
    meta = folder / "meta.json"
    key = (folder.resolve(), meta.stat().st_mtime if meta.exists() else 0.0)
    with _read_lock:
        district = _read_memo.pop(key, None)
        if district is None:
            district = DemoDistrict(**{name: _normalise(_read_layer(folder / f"{name}.parquet")) for name in _LAYERS})
        _read_memo[key] = district  # most recent last
        while len(_read_memo) > _READ_MEMO_SIZE:
            del _read_memo[next(iter(_read_memo))]
    return DemoDistrict(**{name: getattr(district, name).copy() for name in _LAYERS})


def _read_layer(path: Path) -> gpd.GeoDataFrame:
    """One layer of the cache, written by :func:`cached_district` (GeoParquet, WKB geometry in :data:`_CRS`).

    The same frame as ``gpd.read_parquet`` gives, but the CRS is the district's own, not parsed again from the
    file's PROJJSON (~20 ms per file, most of a start-up's district read). Raises what pyarrow raises for a broken file.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    frame = table.drop_columns(["geometry"]).to_pandas()
    geometry = gpd.GeoSeries.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False), crs=_CRS)
    frame.insert(table.schema.get_field_index("geometry"), "geometry", geometry)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=_CRS)


def cached_district(seed: int = 0, n_buildings: int = 30_000, cache_dir: Path | str | None = None) -> DemoDistrict:
    """:func:`generate_district`, cached as GeoParquet under ``cache_dir/demo-v{V}-s{seed}-n{n}/``.

    The folder is written to a temporary sibling and renamed into place, so readers only ever
    see a complete cache. A cache that cannot be read is regenerated.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = root / _cache_name(seed, n_buildings)
    if folder.is_dir():
        try:
            return _read(folder)
        except Exception:  # noqa: BLE001 - a broken cache is rebuilt below
            shutil.rmtree(folder, ignore_errors=True)
    district = generate_district(seed, n_buildings)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=root))
    try:
        for name, layer in district.layers().items():
            layer.to_parquet(tmp / f"{name}.parquet", index=False)
        meta = {"generator_version": GENERATOR_VERSION, "seed": int(seed), "n_buildings": int(n_buildings)}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():  # not a concurrent writer winning the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return district
