// The kiosk flag of this page (the command-hall wall): ?kiosk=1 (or the server's --kiosk default, unless ?kiosk=0).
//
// It is the page's own: trame's state is shared by every page of a server, so the flag lives in the
// page, as the class twin-kiosk on <html> (static/kiosk.css hides the chrome and shows the wall's
// overlays). A kiosk page tells the server every 5 s that it is open, so the wall's tour runs.
// Any other page is an operator console while the wall runs (twin_hall.active; all pages share one camera):
// <html> gets twin-follows-wall (kiosk.css hides the camera presets, shows a note), and presses, the wheel and
// touches on the 3D view are kept from it, so the operator never steers the wall (the server holds the camera too).
(function () {
  "use strict";
  const asked = new URLSearchParams(window.location.search).get("kiosk");
  const kiosk = asked === null ? __KIOSK_DEFAULT__ : /^(1|true|yes|on)$/i.test(asked);
  document.documentElement.classList.toggle("twin-kiosk", kiosk);
  if (!kiosk) {
    if (window.twinFollowsWall) return;
    const follows = () => document.documentElement.classList.contains("twin-follows-wall");
    window.twinFollowsWall = window.setInterval(function () {
      const hall = window.trame && window.trame.state && window.trame.state.get("twin_hall");
      document.documentElement.classList.toggle("twin-follows-wall", !!(hall && hall.active));
    }, 250);
    const keepOff = function (event) {  // on the view's picture (an image or a canvas), not on its overlays
      const target = event.target;
      if (follows() && target && target.closest && target.closest("#twin-view") && /^(CANVAS|IMG)$/.test(target.tagName)) {
        event.stopPropagation();
        event.preventDefault();
      }
    };
    for (const type of ["pointerdown", "mousedown", "touchstart", "wheel", "dblclick", "contextmenu"]) {
      document.addEventListener(type, keepOff, { capture: true, passive: false });
    }
    return;
  }
  if (window.twinKioskAlive) return;
  // this page only (client-only state): what the wall hides is not built at all; static/kiosk_flag.js sets it before the
  // template renders, this says it again should a state update have reset it
  function flag() {
    const state = window.trame && window.trame.state;
    if (!state || !document.getElementById("twin-main")) return false;
    if (state.get("twin_kiosk_page") !== true) state.set("twin_kiosk_page", true);
    return true;
  }
  const early = window.setInterval(function () { if (flag()) window.clearInterval(early); }, 50);
  function alive() {
    flag();
    const trame = window.trame;
    if (trame && trame.client && trame.client.isConnected && trame.client.isConnected()) {
      trame.trigger("twin_kiosk_alive").catch(function () {});
    }
  }
  alive();
  window.twinKioskAlive = window.setInterval(alive, 5000);
})();
