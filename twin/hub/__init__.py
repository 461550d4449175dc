"""``twin hub``: many planners, each in an independent session (its own app process), behind one front door.

The front page lists the ``.yaml`` scenes of a folder; opening one starts ``twin serve`` for that browser
alone on a free 127.0.0.1 port, proxied under ``/s/<session-id>/``. See docs/serving.md.

Modules: :mod:`twin.hub.scenes` (the scene list), :mod:`twin.hub.child` (one app process),
:mod:`twin.hub.sessions` (the cap, owners, idle reaping), :mod:`twin.hub.proxy` (HTTP and websocket
forwarding), :mod:`twin.hub.pages` (the HTML the hub itself writes), :mod:`twin.hub.front` (the routes).
"""
