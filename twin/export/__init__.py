"""Exports of a scene with no display: MP4 recordings of tours and replays, standalone HTML pages.

The scene model reaches these through the renderer registry (``Scene.record`` → renderer ``mp4``,
``Scene.to_html`` → renderer ``html``), so it never imports rendering code.
"""
