"""Network sources hold a fixed set of resources for their life: after 500 SensorThings polls the
process holds no more HTTP sessions, threads or file descriptors than after 5, and ``close()``
(or ``with source:``) releases them.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from servers import Gauge, Reply, Seen, scripted, sta_route
from twin_layers.ogcapi import OgcApiFeaturesSource
from twin_layers.sensorthings import SensorThingsSource
from twin_layers.wfs import WfsSource

FAST: dict[str, Any] = {"timeout": 2.0, "retries": 0}
T0 = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
GAUGES = [
    Gauge(1, "east", 121.50, 31.24, [(10 + k, f"2024-06-01T00:{k:02d}:30Z", float(k)) for k in range(60)]),
    Gauge(2, "west", 121.40, 31.22, [(100 + k, f"2024-06-01T00:{k:02d}:30Z", 30.0 + k) for k in range(60)]),
    Gauge(3, "north", 121.45, 31.30, [(200 + k, f"2024-06-01T00:{k:02d}:30Z", 60.0 + k) for k in range(60)]),
]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def client_threads() -> int:
    """Threads of this process, less the test server's short-lived request handlers."""
    return sum("process_request_thread" not in t.name for t in threading.enumerate())


def settled(measure: Callable[[], int], at_most: int, wait: float = 3.0) -> int:
    """``measure()`` once it is at most ``at_most`` (the test server may still be closing a socket), or its last value."""
    ends = time.monotonic() + wait
    value = measure()
    while value > at_most and time.monotonic() < ends:
        time.sleep(0.05)
        value = measure()
    return value


def poll(source: SensorThingsSource, minute: int) -> int:
    start = T0 + dt.timedelta(minutes=minute % 59)
    return len(source.readings(start, start + dt.timedelta(minutes=1)))


def test_500_sensorthings_polls_hold_no_more_than_5() -> None:
    with scripted(sta_route(GAUGES, lambda *a: None), keep_alive=True) as server:  # open connections, as real services keep them
        source = SensorThingsSource(url=server.url + "v1.1", sensor_id="thing_name", max_concurrent=4, **FAST)
        assert [poll(source, m) for m in range(5)] == [3] * 5  # one observation per gauge and minute, in parallel
        time.sleep(0.2)
        fds, threads, sessions = open_fds(), client_threads(), source.client.open_sessions
        for minute in range(5, 500):
            assert poll(source, minute) == 3
        assert settled(open_fds, fds) <= fds
        assert settled(client_threads, threads) <= threads
        assert source.client.open_sessions <= sessions <= 4  # one per request in flight at once, reused
        source.close()
        assert source.client.open_sessions == 0
        assert not [t for t in threading.enumerate() if t.name.startswith("sensorthings")]
        assert poll(source, 7) == 3  # a closed source reads again, opening what it needs
        source.close()


def test_feature_sources_close_their_sessions() -> None:
    def route(seen: Seen) -> Reply:
        if "GetCapabilities" in seen.path:
            caps = b'<wfs:WFS_Capabilities xmlns:wfs="http://www.opengis.net/wfs/2.0"><FeatureTypeList><FeatureType><Name>c</Name></FeatureType></FeatureTypeList></wfs:WFS_Capabilities>'
            return Reply(body=caps)
        if seen.path.rstrip("/") == "/collections/c":
            return Reply(body={"id": "c", "links": []})
        return Reply(body={"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [121.4, 31.2]}, "properties": {}}]})

    with scripted(route) as server:
        for source in (OgcApiFeaturesSource(url=server.url, collection="c", **FAST), WfsSource(url=server.url, type_name="c", output_format="geojson", **FAST)):
            with source:
                for _ in range(20):
                    assert len(source.read()) == 1
                assert source.client.open_sessions == 1  # one session, reused for every request
            assert source.client.open_sessions == 0
