// Loaded before the page mounts its template (a trame module script, see twin/app/kiosk_overlays.py): on every connection,
// once the server's state has arrived and before the template renders, a wall page sets its twin_kiosk_page (client only),
// so what the wall hides (kiosk_overlays.OFF_WALL: the app bar, the drawers, the time bar) is never built on it. static/kiosk.js
// set it only once the page was built: the chrome was built, removed at once, and Vue's render cache kept it (~1,500 DOM
// nodes), on the first connection and again on each reconnection (the server's state brings the key back as false).
// A page is a wall with ?kiosk=1, or on a --kiosk server (twin_kiosk_default) unless it says ?kiosk=0.
(function () {
  "use strict";
  if (window.twinKioskFlag || !window.trame || !window.trame.addConnectListener) return;
  const asked = new URLSearchParams(window.location.search).get("kiosk");
  window.twinKioskFlag = function () {
    const state = window.trame.state;
    const kiosk = asked === null ? state.get("twin_kiosk_default") === true : /^(1|true|yes|on)$/i.test(asked);
    if (kiosk && state.get("twin_kiosk_page") !== true) state.set("twin_kiosk_page", true);
  };
  window.trame.addConnectListener(window.twinKioskFlag);
})();
