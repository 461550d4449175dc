"""The app's colours: a dark Vuetify theme for control rooms (dark surroundings, bright data); styles are in static/*.css."""

from __future__ import annotations

from typing import Any

__all__ = ["VUETIFY_CONFIG"]

VUETIFY_CONFIG: dict[str, Any] = {
    "theme": {
        "defaultTheme": "twinDark",
        "themes": {
            "twinDark": {
                "dark": True,
                "colors": {"background": "#0a1020", "surface": "#111a2e", "surface-variant": "#1b2740", "primary": "#38bdf8",
                           "secondary": "#94a3b8", "error": "#ef4444", "warning": "#f59e0b", "success": "#22c55e"},
            }
        },
    }
}
