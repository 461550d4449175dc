"""``TWIN_HEARTBEAT_LOSS``: how long a page hears nothing from its server before it counts a silent loss (twin.app.reconnect).

In-process: the value's forms, its bounds and the one-line errors; the page's own use of it is shown in Chromium by
tests/test_unattended.py (a silent loss found within the shorter loss time its server sets).
"""

from __future__ import annotations

import pytest

from twin.app.reconnect import DEFAULT_LOSS_S, HEARTBEAT_LOSS_ENV, heartbeat_loss
from twin.errors import TwinError


@pytest.mark.parametrize(("text", "seconds"), [("", DEFAULT_LOSS_S), ("  ", DEFAULT_LOSS_S), ("20", 20.0), ("20s", 20.0), ("1m30s", 90.0),
                                               ("PT2M", 120.0), ("5s", 5.0), ("10m", 600.0)])
def test_the_loss_time_is_a_duration_from_the_environment(text: str, seconds: float) -> None:
    assert heartbeat_loss({HEARTBEAT_LOSS_ENV: text}) == seconds
    assert heartbeat_loss({}) == DEFAULT_LOSS_S


@pytest.mark.parametrize(("text", "message"), [
    ("soon", "TWIN_HEARTBEAT_LOSS: 'soon' is not a duration: use e.g. 30s, 5m, 2h, 1h30m or ISO 8601 (PT5M)"),
    ("-10s", "TWIN_HEARTBEAT_LOSS: duration '-10s' is negative"),
    ("3s", "TWIN_HEARTBEAT_LOSS='3s': the heartbeat's loss time must be from 5 s to 10 min, e.g. 10s"),
    ("0", "TWIN_HEARTBEAT_LOSS='0': the heartbeat's loss time must be from 5 s to 10 min, e.g. 10s"),
    ("2h", "TWIN_HEARTBEAT_LOSS='2h': the heartbeat's loss time must be from 5 s to 10 min, e.g. 10s"),
])
def test_a_bad_loss_time_is_one_line_naming_the_variable(text: str, message: str) -> None:
    with pytest.raises(TwinError) as caught:
        heartbeat_loss({HEARTBEAT_LOSS_ENV: text})
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_the_app_gives_its_pages_the_loss_time_and_refuses_a_bad_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page reads the loss time from the state key ``twin_heartbeat_loss``; a bad value stops the app before it serves."""
    from twin.app.server import TwinApp
    from twin.scene.model import Scene

    monkeypatch.setenv(HEARTBEAT_LOSS_ENV, "30s")
    app = TwinApp(Scene("heartbeat", center=(121.48, 31.23)), view_mode="remote")
    try:
        assert app.state.twin_heartbeat_loss == 30.0
    finally:
        app.view.close()
    monkeypatch.setenv(HEARTBEAT_LOSS_ENV, "1s")
    with pytest.raises(TwinError, match=r"^TWIN_HEARTBEAT_LOSS='1s': the heartbeat's loss time must be from 5 s"):
        TwinApp(Scene("heartbeat", center=(121.48, 31.23)), view_mode="remote")
