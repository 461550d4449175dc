"""A SuperMap iServer REST data service for tests, built from recorded response shapes (no open iServer exists).

Every shape below is copied from recordings in SuperMap's own client, SuperMap/iClient-JavaScript
(commit 50ac25fae1ae2af962df9b47bba66988b7fe2dcd), not invented:

- ``POST {service}/rest/data/featureResults.json?returnContent=true&fromIndex=0&toIndex=19`` with a JSON
  body ``{"datasetNames": [...], "getFeatureMode": "BOUNDS"|"BOUNDS_ATTRIBUTEFILTER"|"SQL"|"ID", "bounds":
  {"leftBottom": {x, y}, "rightTop": {x, y}}, "spatialQueryMode", "attributeFilter", "queryParameter":
  {"name", "attributeFilter", "fields"}, "ids", "targetEpsgCode"}``: src/common/iServer/GetFeaturesBy{Bounds,SQL,IDs}Parameters.js
  (``toJsonParameters``) and GetFeaturesServiceBase.js (``fromIndex=0``, ``toIndex=19`` defaults, ``returnContent``,
  ``returnDatasetInfoOnly``).
- The answer ``{"features": [{"fieldNames": [...], "fieldValues": ["127", "利伯维尔"], "geometry": {"center",
  "parts": [4, 4], "style": null, "prjCoordSys": null, "id", "type": "REGION", "partTopo": [1, 1], "points":
  [{"x", "y"}, ...]}, "ID": 127}], "featureUriList": [], "totalCount": 1, "featureCount": 1}`` (all values
  strings; ring points not always closed): test/resources/FeatureService.js (getFeaturesByGeometry,
  getFeaturesBySQL, getFeaturesByIDs).
- Without ``returnContent`` the POST answers ``{"postResultType": "CreateChild", "newResourceID": ..., "succeed":
  true, "newResourceLocation": ".../featureResults/<id>.json"}``: test/common/iServer/GetFeaturesBySQLServiceSpec.js.
- ``returnDatasetInfoOnly=true`` answers ``[{"fieldInfos": [{"name", "caption", "type": "INT32"|"DOUBLE"|"WTEXT"...}],
  "featureRange": {"start", "end"}, "datasetName": "World:Countries"}]``: test/resources/FeatureService.js
  (getReturnDatasetInfoOnlyResult).
- ``GET {service}/rest/data/datasources/{ds}/datasets/{dt}.json`` answers ``{"childUriList": [...], "datasetInfo":
  {"type", "dataSourceName", "tableName", "name", "bounds", "prjCoordSys": {"epsgCode": 4326, ...}}}``:
  test/common/iServer/GetGridCellInfosServiceSpec.js.
- Errors: ``{"succeed": false, "error": {"code": 404, "errorMsg": "数据源World1不存在，获取相应的数据服务组件失败"}}``:
  test/common/iServer/GetFeaturesBySQLServiceSpec.js.

What is this server's own and was NOT checked against a real iServer: the HTTP status codes (201 for a created
result, 400/404 for errors), the SQL it understands (``FIELD op value`` joined by AND, op one of = <> > < >= <=),
BOUNDS as "bounding boxes intersect the geometry", ``targetEpsgCode`` accepted only when equal to the dataset's
code, and that ``totalCount`` counts every match while ``featureCount`` counts the page.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import shapely
from servers import ThreadServer, start_thread_server

_CONDITION = re.compile(r"^\s*(\w+)\s*(=|<>|>=|<=|>|<)\s*('(?:[^']*)'|-?\d+(?:\.\d+)?)\s*$")


@dataclass
class Dataset:
    """One dataset: field names and types (iServer type names), rows of values, shapely geometries in ``epsg`` (or raw ServerGeometry dicts)."""

    fields: dict[str, str]
    rows: list[dict[str, Any]]
    geometries: list[Any]
    epsg: int = 4326


@dataclass
class IServer:
    """The running server: ``url`` is the data service (``…/iserver/services/data-test/rest/data``)."""

    datasets: dict[str, Dataset]
    thread: ThreadServer | None = None
    posts: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.thread is not None
        return f"{self.thread.url}iserver/services/data-test/rest/data"


def server_geometry(geom: shapely.Geometry, ident: int) -> dict[str, Any]:
    """A shapely geometry as iServer's ServerGeometry (parts count points; REGION with partTopo 1/-1, rings unclosed);
    a dict is sent as it is (a broken geometry for tests)."""
    if isinstance(geom, dict):
        return geom
    parts: list[list[tuple[float, float]]] = []
    topo: list[int] | None = None
    if geom.geom_type in ("Point", "MultiPoint"):
        kind, parts = "POINT", [[(p.x, p.y)] for p in getattr(geom, "geoms", [geom])]
    elif geom.geom_type in ("LineString", "MultiLineString"):
        kind, parts = "LINE", [[(c[0], c[1]) for c in line.coords] for line in getattr(geom, "geoms", [geom])]
    else:
        kind, topo = "REGION", []
        for poly in getattr(geom, "geoms", [geom]):
            for n, ring in enumerate([poly.exterior, *poly.interiors]):
                parts.append([(c[0], c[1]) for c in ring.coords][:-1])  # recorded REGION parts are not always closed
                topo.append(1 if n == 0 else -1)
    centre = geom.centroid
    return {
        "center": {"x": centre.x, "y": centre.y},
        "parts": [len(p) for p in parts],
        "style": None,
        "prjCoordSys": None,
        "id": ident,
        "type": kind,
        "partTopo": topo,
        "points": [{"x": x, "y": y} for part in parts for x, y in part],
    }


def _text(value: Any) -> str:
    """fieldValues are strings in iServer's JSON (doubles as Java prints them: 53300.0)."""
    return "" if value is None else str(float(value)) if isinstance(value, float) else str(value)


def _matches(row: Mapping[str, Any], sql: str | None) -> bool:
    if not sql or sql.strip() == "1=1":
        return True
    for condition in re.split(r"\s+AND\s+", sql, flags=re.IGNORECASE):
        match = _CONDITION.match(condition)
        if match is None:
            raise ValueError(f"SQL 语句错误: {condition}")
        name, op, literal = match.groups()
        if name not in row:
            raise ValueError(f"字段 {name} 不存在")
        value: Any = literal[1:-1] if literal.startswith("'") else float(literal)
        have = row[name] if isinstance(value, str) else float(row[name])
        ok = {"=": have == value, "<>": have != value, ">": have > value, "<": have < value, ">=": have >= value, "<=": have <= value}[op]
        if not ok:
            return False
    return True


def _select(server: IServer, body: Mapping[str, Any]) -> tuple[Dataset, list[int]]:
    names = body.get("datasetNames") or []
    if len(names) != 1 or names[0] not in server.datasets:
        source = str(names[0]).split(":")[0] if names else ""
        raise LookupError(f"数据源{source}不存在，获取相应的数据服务组件失败")
    data = server.datasets[names[0]]
    if body.get("targetEpsgCode") not in (None, data.epsg):
        raise ValueError(f"targetEpsgCode {body.get('targetEpsgCode')} is not supported by this test server")
    mode = body.get("getFeatureMode")
    picked = list(range(len(data.rows)))
    if mode in ("BOUNDS", "BOUNDS_ATTRIBUTEFILTER"):
        b = body["bounds"]
        box = shapely.box(b["leftBottom"]["x"], b["leftBottom"]["y"], b["rightTop"]["x"], b["rightTop"]["y"])
        picked = [i for i in picked if not isinstance(data.geometries[i], dict) and data.geometries[i].intersects(box)]
        if mode == "BOUNDS_ATTRIBUTEFILTER":
            picked = [i for i in picked if _matches(data.rows[i], body.get("attributeFilter"))]
    elif mode == "SQL":
        picked = [i for i in picked if _matches(data.rows[i], (body.get("queryParameter") or {}).get("attributeFilter"))]
    elif mode == "ID":
        wanted = set(body.get("ids") or [])
        picked = [i for i in picked if i + 1 in wanted]
    else:
        raise ValueError(f"getFeatureMode {mode} is not supported")
    return data, picked


def _features(data: Dataset, picked: list[int], query: Mapping[str, str], fields: list[str] | None) -> dict[str, Any]:
    start, end = int(query.get("fromIndex", 0)), int(query.get("toIndex", 19))  # the service's defaults: 20 features
    names = ["SMID", *(fields or list(data.fields))]
    page = picked[start : end + 1]
    features = [
        {"fieldNames": names, "geometry": server_geometry(data.geometries[i], i + 1), "fieldValues": [_text(i + 1 if n == "SMID" else data.rows[i].get(n)) for n in names], "ID": i + 1}
        for i in page
    ]
    return {"features": features, "featureUriList": [], "totalCount": len(picked), "featureCount": len(features)}


def _handler(server: IServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"succeed": False, "error": {"code": status, "errorMsg": message}})

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            found = re.search(r"/rest/data/datasources/([^/]+)/datasets/([^/]+)\.json$", parts.path)
            if found:
                name = f"{unquote(found[1])}:{unquote(found[2])}"
                if name not in server.datasets:
                    return self._error(404, f"数据集{unquote(found[2])}不存在")
                data = server.datasets[name]
                return self._send(200, {"childUriList": [], "datasetInfo": {"type": "REGION", "dataSourceName": found[1], "tableName": found[2], "name": found[2], "prjCoordSys": {"epsgCode": data.epsg}}})
            result = re.search(r"/featureResults/([^/]+)\.json$", parts.path)
            if result and result[1] in server.results:
                body = server.results[result[1]]
                data, picked = _select(server, body)
                return self._send(200, _features(data, picked, query, (body.get("queryParameter") or {}).get("fields")))
            return self._error(404, f"resource {parts.path} not found")

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with server.lock:
                server.posts.append({"query": query, "body": body})
            if not parts.path.endswith("/rest/data/featureResults.json"):
                return self._error(404, f"resource {parts.path} not found")
            try:
                data, picked = _select(server, body)
            except LookupError as exc:
                return self._error(404, str(exc))
            except (ValueError, KeyError, TypeError) as exc:
                return self._error(400, str(exc))
            if query.get("returnContent") != "true":
                ident = uuid.uuid4().hex
                server.results[ident] = body
                location = f"http://{self.headers['Host']}{parts.path[: -len('.json')]}/{ident}.json"
                return self._send(201, {"postResultType": "CreateChild", "newResourceID": ident, "succeed": True, "newResourceLocation": location})
            if query.get("returnDatasetInfoOnly") == "true":
                infos = [{"name": "SmID", "caption": "SmID", "type": "INT32"}] + [{"name": n, "caption": n, "type": t} for n, t in data.fields.items()]
                return self._send(200, [{"fieldInfos": infos, "featureRange": {"start": 0, "end": 19}, "datasetName": body["datasetNames"][0]}])
            try:
                return self._send(200, _features(data, picked, query, (body.get("queryParameter") or {}).get("fields")))
            except ValueError as exc:
                return self._error(400, str(exc))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def iserver(datasets: Mapping[str, Dataset]) -> Iterator[IServer]:
    """``with iserver({"shanghai:districts": Dataset(...)}) as server:`` — the data service at ``server.url``."""
    server = IServer(dict(datasets))
    server.thread = start_thread_server(_handler(server))
    try:
        yield server
    finally:
        server.thread.stop()
