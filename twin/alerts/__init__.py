"""Alerts: rules over live layers (threshold with hysteresis, stale data), events, history."""

from twin.alerts.engine import Alert, AlertEngine, AlertEvent, AlertState
from twin.alerts.rules import StaleRule, ThresholdRule, parse_duration, parse_rule

__all__ = ["Alert", "AlertEngine", "AlertEvent", "AlertState", "StaleRule", "ThresholdRule", "parse_duration", "parse_rule"]
