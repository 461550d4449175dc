"""How times are shown to people: Shanghai time (+08:00), the zone of the district's operations centre.

The browser app, the burnt-in clock of recordings and HTML exports all format times here.

>>> import datetime as dt
>>> t = dt.datetime(2026, 7, 1, 12, 15, tzinfo=dt.timezone.utc)
>>> fmt_datetime(t), fmt_clock(t), fmt_clock(None)
('2026-07-01 20:15:00 +08:00', '20:15:00 +08:00', '')
"""

from __future__ import annotations

import datetime as dt

__all__ = ["SHANGHAI", "fmt_clock", "fmt_datetime"]

SHANGHAI = dt.timezone(dt.timedelta(hours=8), "+08:00")
"""China Standard Time (UTC+8, no daylight saving)."""


def fmt_datetime(when: dt.datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SS +08:00`` for a tz-aware time (empty for None)."""
    return "" if when is None else when.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S +08:00")


def fmt_clock(when: dt.datetime | None) -> str:
    """``HH:MM:SS +08:00`` for a tz-aware time (empty for None)."""
    return "" if when is None else when.astimezone(SHANGHAI).strftime("%H:%M:%S +08:00")
