// Loaded before the page's template is mounted (a trame module script, see twin/app/reconnect.py): a "beforeunload"
// listener that a Vue component adds to `window` while it is being set up is removed when that component unmounts.
//
// trame-client's <trame-client-triggers> (client.ClientTriggers) adds a "beforeunload" listener in its setup and never
// removes it; the listener holds the component, and the component its whole DOM tree. Every reconnection remounts the
// page's template (static/reconnect.js), so each one kept a detached copy of the page alive (~600 DOM nodes and ~60
// listeners on the test page, ~2,300 nodes on the demo wall). The same kind upstream: Kitware/trame-client#65.
// Only "beforeunload", and only during a component's setup: the page's own scripts (client.Script runs them while its
// component is created) add other window listeners that must outlive it.
// trame's root component adds one more "beforeunload" listener (outside any setup) on every connection; each does the
// same (tells trame's current client the page exits) but keeps its own, dropped, connection alive (client, websocket
// and its listeners). Such a listener, the same code as an earlier one added outside a setup, replaces that one. The
// first connection's is added in the root's beforeMount hook (a component, not yet mounted, but past its setup: its
// render function is set; Vue sets it right after setup): it counts as outside a setup too, else it was never replaced
// and kept the first connection (client, closed websocket, listeners) alive for the page's life.
(function () {
  "use strict";
  if (window.twinComponentListeners) return;
  const Vue = window.Vue;
  if (!Vue || !Vue.getCurrentInstance || !Vue.onBeforeUnmount) return;
  const counts = (window.twinComponentListeners = { removed: 0, replaced: 0 });
  const add = window.addEventListener;
  const outside = new Map(); // source -> the listener added outside a setup with that code, and its options

  function drop(listener, options) {
    window.removeEventListener("beforeunload", listener, options);
  }

  window.addEventListener = function (type, listener, options) {
    add.call(this, type, listener, options);
    if (this !== window || type !== "beforeunload" || typeof listener !== "function") return;
    const instance = Vue.getCurrentInstance();
    if (instance && !instance.isMounted && !instance.render) {  // in its setup
      Vue.onBeforeUnmount(() => { drop(listener, options); counts.removed += 1; }, instance);
      return;
    }
    const source = String(listener), earlier = outside.get(source);
    if (earlier && earlier.listener !== listener) {
      drop(earlier.listener, earlier.options);
      counts.replaced += 1;
    }
    outside.set(source, { listener: listener, options: options });
  };
})();
