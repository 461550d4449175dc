// Loaded before the page's views are made (a trame module script, see twin/app/reconnect.py): WebGL contexts of this
// page keep their drawing buffer (preserveDrawingBuffer), so the local (vtk.js) view's last picture can be read back
// and kept when the connection drops (static/reconnect.js); without it a WebGL canvas reads back blank once shown.
(function () {
  "use strict";
  if (window.twinKeepsBuffers) return;
  window.twinKeepsBuffers = true;
  const getContext = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (kind, attributes) {
    if (/webgl/i.test(String(kind))) attributes = Object.assign({}, attributes, { preserveDrawingBuffer: true });
    return getContext.call(this, kind, attributes);
  };
})();
