// Unattended pages: when the server goes away (restart, network loss) the page keeps the last picture under a
// "reconnecting" badge and reconnects by itself, with back-off; nobody has to click or reload.
//
// trame's client, on a closed websocket, swaps the page's template for an error/loading template (a blank page
// with a message). This script gives it the page's own template as that error template, so the page stays as it
// was; it covers the 3D view with the last picture of it (kept in memory, and in sessionStorage for a reload),
// shows the badge, and retries: an HTTP probe of the page's address (given up after PROBE_TIMEOUT_MS) after 1, 2,
// 4, 8, 15, 15 ... s, then `trame.connect()` in place (a fresh websocket; trame re-reads the state and remounts the
// template). The cover stays until the new view has drawn a picture. If connecting in place does not bring a
// picture within RELOAD_AFTER_MS of the server answering, the page reloads (the cover is shown again from
// sessionStorage as soon as this script runs).
// Heartbeat: a silent loss (the socket stays open but nothing comes back: the server process stopped, a proxy that
// stopped forwarding) never closes the websocket, so the page asks the server every 1/MISSED_BEATS of the loss time
// (the trigger twin_heartbeat, one at a time); a beat unanswered while nothing at all came from the server for the loss
// time (the state key twin_heartbeat_loss, in s: $TWIN_HEARTBEAT_LOSS on the server, 10 s unless it says) counts as a
// lost connection: the page drops that websocket (without asking the server to exit) and goes on
// as above. Anything the server sends (a state update: the clock, every tick) counts as alive: a busy server answers
// a beat late but its updates keep coming, and reconnecting that page was a false outage.
// Across a reconnection the page stays as it was: trame's new connection starts from an empty state until the
// server's arrives, so the new state starts with the last one's values (a render in between read undefined keys:
// "Cannot read properties of undefined (reading 'Reconnecting…')"); calls left pending on the dropped connection
// reject with wslink's "connection not open" (trame-vtk's view unregistering as it unmounts): expected, not a page
// error; and the remounted template leaves nothing of the old one behind (static/component_listeners.js).
// The local (vtk.js) view's WebGL canvas keeps its drawing buffer (static/keep_buffers.js, loaded before the views),
// so its last picture is kept like the remote view's image.
// Badge texts come from hidden elements the server renders from the message catalogue (#twin-reconnect-text,
// #twin-reconnect-since); window.twinReconnect.status() reports {lost, attempts, reconnects, silent, dropped, awaiting} (for
// tests; silent: outages found by the heartbeat; dropped: calls of dropped connections whose rejection was expected; awaiting:
// connected again, waiting for the new view's first picture).
(function () {
  "use strict";
  if (window.twinReconnect) {  // the template was remounted (a reconnect): the script runs again
    window.twinReconnect.hook();
    return;
  }
  const DELAYS_MS = [1000, 2000, 4000, 8000, 15000];  // back-off between tries; the last one repeats
  const DEFAULT_LOSS_MS = 10000, MISSED_BEATS = 4, PROBE_TIMEOUT_MS = 5000;
  const SNAPSHOT_EVERY_MS = 2000;
  const STORE_EVERY_MS = 30000;
  const RELOAD_AFTER_MS = 30000;
  const STORE_KEY = "twin-last-picture:" + location.pathname;
  const status = { lost: false, attempts: 0, reconnects: 0, silent: 0, dropped: 0, since: 0, answeredAt: 0 };
  const RELOADING_KEY = "twin-reloading:" + location.pathname;
  const shot = document.createElement("canvas"), probe = document.createElement("canvas");
  probe.width = 32;
  probe.height = 18;
  let hooked = null, timer = null, picture = null, cover = null, badge = null, awaiting = false, before = new WeakSet(), beatSince = 0, heardAt = 0;

  const style = document.createElement("style");
  style.textContent = `
    #twin-reconnect-cover { position: fixed; z-index: 2000; pointer-events: none; background: #0a1020; }
    #twin-reconnecting { position: fixed; z-index: 2001; top: 2vmin; left: 50%; transform: translateX(-50%);
      padding: 0.5em 1.2em; border-radius: 0.5em; background: rgba(120, 53, 15, 0.92); color: #fff7ed;
      border: 2px solid #f59e0b; font-size: max(24px, 2.2vmin); font-weight: 700; white-space: nowrap;
      font-family: "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", sans-serif; }
    #twin-reconnecting .twin-reconnect-since { font-weight: 400; opacity: 0.85; margin-left: 0.8em; }`;
  document.head.appendChild(style);

  function templateKey() {
    return "trame__template_" + (new URLSearchParams(location.search).get("ui") || "main");
  }

  function viewBox() {
    return document.querySelector("#twin-view") || document.querySelector("#app");
  }

  // What shows the view's picture: the remote view's image (an <img> under a transparent canvas), canvases (vtk.js).
  function viewLayers() {
    const box = viewBox();
    if (!box) return [];
    const images = Array.from(box.querySelectorAll("img")).filter((i) => i.complete && i.naturalWidth > 1);
    const canvases = Array.from(box.querySelectorAll("canvas")).filter((c) => c.width > 1 && c.height > 1);
    return images.concat(canvases);
  }

  // The view drawn into the `shot` canvas (its images and canvases over its background), or null when it shows nothing yet.
  function capture() {
    const box = viewBox(), layers = viewLayers();
    if (!box || !layers.length || !viewDrawn()) return null;
    const rect = box.getBoundingClientRect();
    if (rect.width < 2 || rect.height < 2) return null;
    const out = shot;  // one canvas, redrawn: a wall runs for months
    out.width = Math.round(rect.width);
    out.height = Math.round(rect.height);
    const ctx = out.getContext("2d");
    ctx.fillStyle = "#0a1020";
    ctx.fillRect(0, 0, out.width, out.height);
    try {
      for (const layer of layers) {
        const r = layer.getBoundingClientRect();
        ctx.drawImage(layer, r.left - rect.left, r.top - rect.top, r.width, r.height);
      }
    } catch (err) {
      return null;
    }
    return out;
  }

  // True once the view shows something other than its empty background (elements in `skip` do not count).
  function viewDrawn(skip) {
    for (const layer of viewLayers()) {
      if (skip && skip.has(layer)) continue;
      const ctx = probe.getContext("2d", { willReadFrequently: true });
      ctx.clearRect(0, 0, probe.width, probe.height);
      try {
        ctx.drawImage(layer, 0, 0, probe.width, probe.height);
        const px = ctx.getImageData(0, 0, probe.width, probe.height).data;
        for (let i = 4; i < px.length; i += 4) {
          if (Math.abs(px[i] - px[0]) + Math.abs(px[i + 1] - px[1]) + Math.abs(px[i + 2] - px[2]) > 30) return true;
        }
      } catch (err) { /* an element we may not read: go on */ }
    }
    return false;
  }

  // Keep the last picture: in memory every SNAPSHOT_EVERY_MS, in sessionStorage (for a reload) every STORE_EVERY_MS.
  let stored = 0;
  function remember() {
    if (status.lost) return;
    const last = capture();
    if (!last) return;
    picture = last;
    if (Date.now() - stored < STORE_EVERY_MS) return;
    stored = Date.now();
    try { sessionStorage.setItem(STORE_KEY, last.toDataURL("image/jpeg", 0.85)); } catch (err) { /* full: the in-memory picture serves */ }
  }

  function text(id, fallback) {
    const el = document.getElementById(id);
    const value = el && el.textContent.trim();
    return value || fallback;
  }

  // Cover the view with `source` (a canvas, or a data URL from sessionStorage), sized to the view box.
  function showCover(source) {
    const box = viewBox();
    if (!source || !box) return;
    const rect = box.getBoundingClientRect();
    if (!cover) {
      cover = document.createElement("canvas");
      cover.id = "twin-reconnect-cover";
      document.body.appendChild(cover);
    }
    Object.assign(cover.style, { left: rect.left + "px", top: rect.top + "px", width: rect.width + "px", height: rect.height + "px" });
    const draw = (image, w, h) => {
      cover.width = w;
      cover.height = h;
      cover.getContext("2d").drawImage(image, 0, 0);
    };
    if (typeof source !== "string") {
      draw(source, source.width, source.height);
      return;
    }
    const image = new Image();
    image.onload = () => draw(image, image.naturalWidth, image.naturalHeight);
    image.src = source;
  }

  function showBadge() {
    if (!badge) {
      badge = document.createElement("div");
      badge.id = "twin-reconnecting";
      badge.setAttribute("role", "status");
      document.body.appendChild(badge);
    }
    const at = new Date(status.since).toLocaleTimeString("zh-CN", { hour12: false, timeZone: "Asia/Shanghai" });  // the app shows +08:00
    badge.textContent = text("twin-reconnect-text", "Reconnecting…");
    const since = document.createElement("span");
    since.className = "twin-reconnect-since";
    since.textContent = text("twin-reconnect-since", "since {time}").replace("{time}", at);
    badge.appendChild(since);
  }

  function clearLost() {
    if (cover) cover.remove();
    if (badge) badge.remove();
    cover = badge = null;
    status.lost = false;
    status.attempts = 0;
    status.answeredAt = 0;
  }

  function lost() {
    if (status.lost && !awaiting) return;  // already retrying
    if (!status.lost) {
      status.lost = true;
      status.since = Date.now();
      before = new WeakSet(viewLayers());  // weak: the old view must not outlive its page (a Set kept its whole detached tree)
      showCover(capture() || picture || sessionStorage.getItem(STORE_KEY));  // the view may still hold its last frame
      showBadge();
    }
    awaiting = false;  // lost again while waiting for the first picture: retry
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    const delay = DELAYS_MS[Math.min(status.attempts, DELAYS_MS.length - 1)];
    status.attempts += 1;
    timer = setTimeout(attempt, delay);
  }

  async function attempt() {
    let answers = false;
    try {
      const signal = AbortSignal.timeout(PROBE_TIMEOUT_MS);  // a stopped server accepts the connection and never answers
      answers = (await fetch(location.href, { cache: "no-store", credentials: "same-origin", signal: signal })).ok;
    } catch (err) {
      answers = false;
    }
    if (!answers) {
      status.answeredAt = 0;
      schedule();
      return;
    }
    status.answeredAt = status.answeredAt || Date.now();
    if (Date.now() - status.answeredAt > RELOAD_AFTER_MS) {
      try { sessionStorage.setItem(RELOADING_KEY, String(status.since)); } catch (err) { /* reload without the cover */ }
      location.reload();
      return;
    }
    try {
      await Promise.race([window.trame.connect(), new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), 10000))]);
    } catch (err) {
      console.log("twin: reconnect attempt failed", err);
    }
    // connected: hook() ran (awaiting the first picture, the cover stays until then); another try now would open a second
    // connection while this one works, and trame drops its client without closing it (an open socket and a server session
    // left per reconnection whose picture took longer than the next back-off delay)
    if (status.lost && !awaiting) schedule();
  }

  // Once a picture is drawn after a reconnect (or RELOAD_AFTER_MS passed), take the cover and badge away. The view's
  // canvases from before the outage count only after 5 s (the page normally mounts new ones).
  function awaitPicture(started) {
    if (!status.lost || !awaiting) return;
    const waited = Date.now() - started;
    if (viewDrawn(waited < 5000 ? before : null) || waited > RELOAD_AFTER_MS) {
      clearTimeout(timer);
      clearLost();
      awaiting = false;
      status.reconnects += 1;
      return;
    }
    setTimeout(() => awaitPicture(started), 250);
  }

  function endOutage() {
    if (awaiting) return;
    awaiting = true;
    clearTimeout(timer);
    awaitPicture(Date.now());
  }

  // The loss time (ms) the server set (the state carries it across a reconnection), else the default.
  function lossMs() {
    const seconds = Number(window.trame && window.trame.state && window.trame.state.get("twin_heartbeat_loss"));
    return seconds > 0 ? seconds * 1000 : DEFAULT_LOSS_MS;
  }

  // One heartbeat at a time: a beat unanswered while nothing came from the server for the loss time is a silent loss of
  // the connection; an answer, however late, or any update from the server meanwhile, says it is alive.
  function beat() {
    const trame = window.trame, client = hooked;
    if (status.lost || !client || !trame || trame.client !== client || !client.isConnected()) return;
    if (beatSince) {
      if (Date.now() - Math.max(beatSince, heardAt) > lossMs()) silent(client);
      return;
    }
    const sent = beatSince = Date.now();
    trame.trigger("twin_heartbeat").then(() => { if (beatSince === sent) beatSince = 0; heard(client); }, () => {});
  }

  function heard(client) {
    if (client === hooked) heardAt = Date.now();
  }

  // The server stopped answering on an open socket: drop it (0: without asking the server to exit) and reconnect.
  function silent(client) {
    status.silent += 1;
    beatSince = 0;
    lost();
    try { client.disconnect(0); } catch (err) { /* already closed */ }
  }

  // On every (re)connection: keep the page as it is if this connection closes, and end an outage.
  function hook() {
    const trame = window.trame;
    if (!trame || !trame.client || !trame.state || hooked === trame.client) return;
    hooked = trame.client;
    const own = trame.state.get(templateKey());
    if (own) {  // local only: trame reads these when the connection closes, and the page then keeps its own template
      trame.state.state.trame__template_error = own;
      trame.state.state.trame__template_error_reconnect = own;
    }
    const client = trame.client, ended = () => { if (client === hooked) lost(); };  // a dropped earlier connection closing late is no new outage
    client.onConnectionClose(ended);
    client.onConnectionError(ended);
    client.getRemote().Trame.subscribeToStateUpdate(() => heard(client));  // local: one more callback on the state topic
    beatSince = 0;
    heardAt = Date.now();
    // reconnected in place: the server's state, just read, remounted the page (its template key among the keys), so its
    // view streams from the new connection; remounting it once more here mounted a copy that a few components leaked
    if (status.lost && !awaiting) endOutage();
  }

  // Reloaded to end an outage: cover the view with the stored picture, under the badge, until the new one is drawn.
  const reloading = sessionStorage.getItem(RELOADING_KEY);
  if (reloading) {
    sessionStorage.removeItem(RELOADING_KEY);
    status.lost = true;
    status.since = Number(reloading) || Date.now();
    showCover(sessionStorage.getItem(STORE_KEY));
    showBadge();
    awaiting = true;
    awaitPicture(Date.now());
  }

  // trame.state is replaced on every connection, empty until the server's state arrives: the new one starts with the last
  // one's values, so a render in between (any state change) shows the page as it was, not undefined keys.
  function carryState(trame) {
    const own = Object.getOwnPropertyDescriptor(trame, "state");
    if (!own || own.get) return;
    let current = own.value;
    Object.defineProperty(trame, "state", {
      configurable: true, enumerable: true, get: () => current,
      set: (next) => {
        if (next && current && next !== current && next.state && current.state) Object.assign(next.state, current.state);
        current = next;
      },
    });
  }

  // A call left pending on a dropped connection rejects with wslink's {code, message: "... connection not open"} and no
  // one awaits it: expected during an outage, not a page error (Error objects and other reasons are left as they are).
  function expectedRejection(event) {
    const reason = event.reason;
    if (!reason || typeof reason !== "object" || reason instanceof Error || !/connection not open|connection closed/i.test(String(reason.message))) return;
    event.preventDefault();
    status.dropped += 1;
  }

  window.twinReconnect = { hook: hook, status: () => ({
    lost: status.lost, attempts: status.attempts, reconnects: status.reconnects, silent: status.silent, dropped: status.dropped, awaiting: awaiting,
  }) };
  window.addEventListener("unhandledrejection", expectedRejection);
  if (window.trame) carryState(window.trame);
  if (window.trame && window.trame.addConnectListener) window.trame.addConnectListener(hook);
  setInterval(remember, SNAPSHOT_EVERY_MS);
  (function beats() {  // a beat every 1/MISSED_BEATS of the loss time, as the server sets it now
    beat();
    setTimeout(beats, lossMs() / MISSED_BEATS);
  })();
})();
