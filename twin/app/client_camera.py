"""The browser's camera of the local (vtk.js) view: there the camera lives in the browser, and the server's VTK camera
only moves when the server pushes one. A saved view and a screenshot read the browser's camera first.

:data:`CAMERA_SCRIPT` defines ``window.twinClientCamera()`` in the page; :data:`CLIENT_CAMERA` is the template
expression passing it to a trigger (null in the remote view, where the server's camera is the one shown).
:func:`follow_client` puts the server's VTK camera where the browser's is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from twin.render.view import SceneView
from twin.session import CameraPose

__all__ = ["CAMERA_SCRIPT", "CLIENT_CAMERA", "client_pose", "follow_client"]

CAMERA_SCRIPT = """
window.twinClientCamera = function () { // the vtk.js view's camera (local frame metres), null without one
  const ref = window.trame && window.trame.refs && window.trame.refs.twin_view;
  const view = ref && ref.$ && ref.$.provides ? ref.$.provides.view : null;
  const renderers = view && view.renderWindow ? view.renderWindow.getRenderers() : [];
  if (!renderers.length) return null;
  const camera = renderers[0].getActiveCamera();
  return {position: Array.from(camera.getPosition()), focal_point: Array.from(camera.getFocalPoint()),
          up: Array.from(camera.getViewUp()), view_angle: camera.getViewAngle()};
};
"""
CLIENT_CAMERA = "(twin_view_mode === 'local' && window.twinClientCamera ? window.twinClientCamera() : null)"
"""A template expression: the browser's camera in the local view, null in the remote view."""


def _vec3(value: Any) -> tuple[float, float, float] | None:
    try:
        x, y, z = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return (x, y, z) if all(math.isfinite(v) for v in (x, y, z)) else None


def client_pose(camera: Mapping[str, Any] | None) -> tuple[CameraPose, float] | None:
    """The pose and view angle (degrees) of a camera the page sent (``position``, ``focal_point``, ``up``: 3 finite numbers
    each, in the frame's local metres; ``view_angle`` in (0, 180)); None when it sent none or one that is no camera."""
    if not isinstance(camera, Mapping):
        return None
    position, focal, up = (_vec3(camera.get(key)) for key in ("position", "focal_point", "up"))
    try:
        angle = float(camera.get("view_angle", 30.0))
    except (TypeError, ValueError):
        return None
    if position is None or focal is None or up is None or position == focal or not 0.0 < angle < 180.0:
        return None
    return CameraPose(position, focal, up), angle


def follow_client(view: SceneView, camera: Mapping[str, Any] | None) -> CameraPose | None:
    """Put ``view``'s VTK camera where the browser's ``camera`` is (nothing for None or a bad one); the pose taken, or None."""
    found = client_pose(camera)
    if found is None:
        return None
    pose, angle = found
    vtk_camera = view.renderer.GetActiveCamera()
    vtk_camera.SetPosition(*pose.position)
    vtk_camera.SetFocalPoint(*pose.focal_point)
    vtk_camera.SetViewUp(*pose.up)
    vtk_camera.SetViewAngle(angle)
    vtk_camera.OrthogonalizeViewUp()
    view.renderer.ResetCameraClippingRange()
    return pose
