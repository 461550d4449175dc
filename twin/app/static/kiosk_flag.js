// Loaded before the page mounts its template (a trame module script, see twin/app/kiosk_overlays.py): on every connection,
// once the server's state has arrived and before the template renders, a wall page sets its twin_kiosk_page (client only),
// so what the wall hides (kiosk_overlays.OFF_WALL: the app bar, the drawers, the time bar) is never built on it. static/kiosk.js
// set it only once the page was built: the chrome was built, removed at once, and Vue's render cache kept it (~1,500 DOM
// nodes), on the first connection and again on each reconnection (the server's state brings the key back as false).
// On a reconnection the page's state listeners are already there when the server's state arrives: they remount the
// template in the same turn, before the connect listeners run, so the key is also kept true by a state listener (trame's
// states share one listener list across connections) the moment an update from the server brings it back as false; Vue
// renders later (its scheduler runs after the listeners), so it never reads false (before: each reconnected wall page
// kept a built copy of the chrome, ~1,800 DOM nodes and ~150 listeners, +3 MiB of JS heap).
// A page is a wall with ?kiosk=1, or on a --kiosk server (twin_kiosk_default) unless it says ?kiosk=0.
(function () {
  "use strict";
  if (window.twinKioskFlag || !window.trame || !window.trame.addConnectListener) return;
  const asked = new URLSearchParams(window.location.search).get("kiosk");

  function wall(state) {
    return asked === null ? state.get("twin_kiosk_default") === true : /^(1|true|yes|on)$/i.test(asked);
  }

  function keep(event) {
    const state = window.trame.state;
    if (event.type !== "dirty-state" || !event.keys.includes("twin_kiosk_page") || !state || state.get("twin_kiosk_page") === true) return;
    if (wall(state)) state.state.twin_kiosk_page = true;  // local: the key is client only, and the listeners notified now read it
  }

  window.twinKioskFlag = function () {
    const state = window.trame.state;
    if (!state.listeners.includes(keep)) state.addListener(keep);
    if (wall(state) && state.get("twin_kiosk_page") !== true) state.set("twin_kiosk_page", true);
  };
  window.trame.addConnectListener(window.twinKioskFlag);
})();
