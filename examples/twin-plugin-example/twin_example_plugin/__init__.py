"""An example third-party twin plugin package (see docs/plugins.md)."""
