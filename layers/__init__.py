"""Built-in layer and source plugins of twin.

They register through the ``twin.layers`` and ``twin.sources`` entry points, exactly like a
third-party plugin package; nothing in ``twin`` imports this package by name.
"""
