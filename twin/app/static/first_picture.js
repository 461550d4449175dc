// The first picture (twin/app/first_picture.py): a server render shown where the view box will be,
// before trame's JavaScript bundle, websocket and 3D view exist. Until the page's layout is mounted
// it is a fixed box at the view box's expected place (toolbar 48 px, time bar 60 px, drawers of 320 px
// on the left and data-right px on the right on screens 1280 px wide or more; the whole page in kiosk mode); then it moves into #twin-view,
// over the 3D view and under the overlays (loading card, legends). It goes once the 3D view shows
// a frame drawn after it (the remote view's next image; the browser view once the scene is in),
// or when there is no picture (204: the scene could not be drawn in time).
(function () {
  "use strict";
  var box = document.getElementById("twin-first-picture");
  var img = box && box.querySelector("img");
  if (!img) return;
  var asked = new URLSearchParams(location.search).get("kiosk");
  var kiosk = asked === null ? box.dataset.kiosk === "1" : asked === "1";
  var drawers = !kiosk && innerWidth >= 1280; // narrower: Vuetify's drawers float over the page
  var left = drawers ? 320 : 0;
  var top = kiosk ? 0 : 48;
  var width = Math.max(16, innerWidth - left - (drawers ? Number(box.dataset.right) || 0 : 0));
  var height = Math.max(16, innerHeight - top - (kiosk ? 0 : 60));
  var shownOver = null; // the remote view's image when the picture was shown (null: not shown yet)
  box.style.cssText = "position:fixed;left:" + left + "px;top:" + top + "px;width:" + width + "px;height:" + height +
    "px;z-index:1;pointer-events:none;visibility:hidden;";
  img.style.cssText = "display:block;width:100%;height:100%;object-fit:cover;";
  var timer = 0;
  function gone() {
    clearInterval(timer);
    box.remove();
  }
  function viewFrame(view) {
    var frames = view.querySelectorAll('img[src^="blob:"]'); // the remote view's image (vtk.js CanvasView background)
    for (var i = 0; i < frames.length; i++) {
      if (frames[i] !== img && frames[i].complete && frames[i].naturalWidth > 0) return frames[i].src;
    }
    return "";
  }
  function viewDrewSince(view) {
    var state = window.trame && window.trame.state;
    if (state && state.get("twin_view_mode") === "local") return !!state.get("twin_loading_done");
    var frame = viewFrame(view);
    return frame !== "" && frame !== shownOver;
  }
  img.onload = function () {
    var view = document.getElementById("twin-view");
    shownOver = view ? viewFrame(view) : "";
    box.style.visibility = "visible";
    box.dataset.shown = String(performance.now());
  };
  // fetched, not the img's own src: a long wait for the scene must not hold the page's load event
  fetch("twin/first-picture.jpg?w=" + Math.min(width, 4096) + "&h=" + Math.min(height, 4096), { cache: "no-store", credentials: "same-origin" })
    .then(function (response) {
      if (response.status !== 200) throw new Error("no first picture (" + response.status + ")");
      return response.blob();
    })
    .then(function (blob) {
      if (box.isConnected) img.src = URL.createObjectURL(blob);
    })
    .catch(gone);
  timer = setInterval(function () {
    var view = document.getElementById("twin-view");
    if (!view) return;
    if (box.parentNode !== view) {
      box.style.position = "absolute";
      box.style.left = box.style.top = "0";
      box.style.width = box.style.height = "100%";
      view.insertBefore(box, view.firstChild);
    }
    if (shownOver !== null && viewDrewSince(view)) gone();
  }, 50);
})();
