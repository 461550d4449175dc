// Live ticks of block layers (H3 cells) in the local (vtk.js) view, applied in the browser.
//
// The server sends the mesh once (trame-vtk); each tick then arrives in the trame state as one
// height (uint16 steps), one hidden bit and one colour index per cell (twin_block_ticks), with
// the mesh's layout per cell (twin_block_layouts): each cell owns `counts[i]` consecutive points,
// those from `top_from[i]` on rise to base_z + height, the last one is the cell's centre.
// This script writes them into the vtk.js dataset's points and point colours, in place (the same
// arrays trame-vtk caches, so a later scene update keeps them), and redraws.
// window.twinBlockStats records, per applied tick: server stamp, arrival and drawn times (epoch ms).
(function () {
  "use strict";
  const outlines = new WeakMap(); // vtk.js points array -> x/y of every point as first received (full outlines)
  const stats = (window.twinBlockStats = []);
  let pending = null;

  function syncView() {
    const ref = window.trame && window.trame.refs && window.trame.refs.twin_view;
    return ref && ref.$ && ref.$.provides ? ref.$.provides.view : null;
  }

  function bytes(value) {
    if (value instanceof Uint8Array) return value;
    if (value instanceof ArrayBuffer) return new Uint8Array(value);
    if (value && value.buffer instanceof ArrayBuffer) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    return null;
  }

  function applyOne(dataset, layout, tick) {
    const points = dataset.getPoints().getData();
    const colorArray = dataset.getPointData().getArrayByName("twin_rgba");
    const nCells = layout.n_cells;
    if (!colorArray || tick.n_cells !== nCells || points.length !== 3 * layout.n_points) return false;
    let xy = outlines.get(points);
    if (!xy) {
      xy = new Float32Array(2 * layout.n_points);
      for (let p = 0; p < layout.n_points; p++) { xy[2 * p] = points[3 * p]; xy[2 * p + 1] = points[3 * p + 1]; }
      outlines.set(points, xy);
    }
    const counts = bytes(layout.counts), topFrom = bytes(layout.top_from), hidden = bytes(tick.hidden);
    const hb = bytes(tick.heights), heights = new Uint16Array(hb.buffer.slice(hb.byteOffset, hb.byteOffset + hb.byteLength));
    const ib = bytes(tick.color_index);
    const index = tick.index_bytes === 2 ? new Uint16Array(ib.buffer.slice(ib.byteOffset, ib.byteOffset + ib.byteLength)) : ib;
    const palette = tick.palette, colors = colorArray.getData(), step = tick.height_step, base = layout.base_z;
    let p = 0;
    for (let c = 0; c < nCells; c++) {
      const n = counts[c], top = topFrom[c], end = p + n, z = base + heights[c] * step;
      const isHidden = (hidden[c >> 3] >> (c & 7)) & 1;
      const rgba = palette[index[c]];
      const cx = xy[2 * (end - 1)], cy = xy[2 * (end - 1) + 1];
      for (let k = 0; k < n; k++, p++) {
        points[3 * p] = isHidden ? cx : xy[2 * p];
        points[3 * p + 1] = isHidden ? cy : xy[2 * p + 1];
        if (k >= top) points[3 * p + 2] = z;
        colors[4 * p] = rgba[0]; colors[4 * p + 1] = rgba[1]; colors[4 * p + 2] = rgba[2]; colors[4 * p + 3] = rgba[3];
      }
    }
    dataset.getPoints().modified();
    colorArray.modified();
    dataset.modified();
    return true;
  }

  function apply() {
    const view = syncView(), state = window.trame && window.trame.state;
    if (!view || !view.ctx || !state) return;
    const ticks = state.get("twin_block_ticks") || {}, layouts = state.get("twin_block_layouts") || {};
    const arrived = performance.timeOrigin + performance.now();
    let drawn = 0;
    for (const [id, tick] of Object.entries(ticks)) {
      const dataset = view.ctx.getInstance(id), layout = layouts[id];
      if (dataset && layout && applyOne(dataset, layout, tick)) { drawn += 1; pending = tick.stamp; }
    }
    if (!drawn) return;
    view.renderWindow.render();
    const stamp = pending;
    requestAnimationFrame(() => stats.push({ stamp: stamp, arrived: arrived, drawn: performance.timeOrigin + performance.now() }));
  }

  window.twinBlockTicks = { apply: apply };
  function watch() {
    if (window.trame && window.trame.state) window.trame.state.watch(["twin_block_ticks", "twin_block_layouts"], apply);
  }
  if (window.trame && window.trame.addConnectListener) window.trame.addConnectListener(watch);
})();
