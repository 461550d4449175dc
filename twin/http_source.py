"""The base of feature sources that read one web service (OGC API Features, WFS, ArcGIS REST, SuperMap iServer).

It owns the source's :class:`~twin.httpclient.HttpClient` (timeouts, retries, size limits,
credentials from environment variables; closed by :meth:`HttpFeatureSource.close`) and the two
counters every such source reports: pages read and the features its last read skipped, by
reason. Subclasses give ``type_name``, ``Params`` (an :class:`~twin.httpclient.HttpParams`),
:meth:`~twin.source.Source.describe` (used as the client's name in every error line) and
:meth:`~twin.source.Source.read`.
"""

from __future__ import annotations

from typing import Any

from twin.httpclient import HttpClient
from twin.source import Source

__all__ = ["HttpFeatureSource"]


class HttpFeatureSource(Source):
    """A feature source reading one web service through its own :class:`~twin.httpclient.HttpClient`."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.check_params()
        self.client = HttpClient(self.params, name=self.describe())
        self.pages_read = 0
        """Pages (requests for features) read since the source was made."""
        self.last_skipped: dict[str, int] = {}
        """Features the last read skipped, by reason (no_geometry, bad_geometry_type, bad_geometry,
        non_finite_coordinates, out_of_range, nesting_too_deep)."""

    def check_params(self) -> None:
        """Checks beyond the parameter model's, before any connection is made (raise :class:`~twin.errors.SourceError`)."""

    def close(self) -> None:
        self.client.close()
