// Live ticks of block layers (H3 cells) in the local (vtk.js) view, applied in the browser.
//
// The server sends the mesh once (trame-vtk); each tick then arrives in the trame state as one
// height (uint16 steps), one hidden bit and one colour index per cell (twin_block_ticks), with
// the mesh's layout per cell (twin_block_layouts): each cell owns `counts[i]` consecutive points,
// those from `top_from[i]` on rise to base_z + height, the last one is the cell's centre.
// Both are keyed by dataset: a layer whose new cells came after those sent has one dataset per
// part (the new cells' own small mesh), each with its own layout and tick; a tick for a dataset
// the page does not hold yet waits for the scene update that brings it (after_scene_loaded).
//
// GPU path (WebGL2, a mesh of triangles only): a tick is one small texture, one RG32UI texel per
// cell (top z as float bits, all ones when hidden; RGBA packed); the vertex shader finds its cell
// through a texture written once per layout (per triangle: cell * 8 + a bit per corner that rises)
// and raises, hides (moves out of the clip volume) and colours its vertex. Nothing of vtk.js's mesh
// is touched, so a tick costs no vertex buffer rebuild, only 8 bytes a cell of texture upload.
// CPU path (no WebGL2, a driver that does not compile the tick code, vtk.js templates the tick code
// does not fit, or `?twin_ticks=cpu`: the path before the GPU one, the benchmark's baseline):
// the dataset's points and point colours are rewritten in place and vtk.js rebuilds its buffers.
//
// A tick that arrives while the previous one is still being drawn waits, and only the newest
// waiting tick is drawn (ticks carry absolute values), so a slow renderer shows the latest tick
// late but never falls further behind. Drawn = the first animation frame after a WebGL fence
// placed after the render has signalled (the GPU has finished the frame).
// window.twinBlockStats records, per drawn tick (epoch ms): the server's stamp, arrived (state
// received), updated (arrays or textures written), rendered (vtk.js render returned), drawn,
// and how many newer ticks superseded older waiting ones (skipped), with the path taken.
(function () {
  "use strict";
  const stats = (window.twinBlockStats = []);
  const cpuOnly = new URLSearchParams(window.location.search).get("twin_ticks") === "cpu";
  const outlines = new WeakMap(); // CPU path: vtk.js points array -> x/y of every point as first received (full outlines)
  const gpuLayers = new Map(); // dataset id -> {dataset, mapper, layout, gl, textures, ...}
  const unitsOf = new WeakMap(); // vtk.js OpenGL render window -> the two texture units the GPU path holds
  const builds = new WeakMap(); // WebGL2 context -> whether it compiles the tick shader code
  let gpuFailed = false; // the GPU path threw or vtk.js left the tick code out once: the CPU path from then on
  const WIDTH = 2048; // texels per texture row
  let waiting = null, inFlight = false, skipped = 0;

  function now() { return performance.timeOrigin + performance.now(); }

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

  function typed(value, Type) { // little-endian bytes -> an aligned typed array
    const b = bytes(value);
    return new Type(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }

  function decode(layout, tick) { // per cell: top z (m), hidden flag, RGBA
    const heights = typed(tick.heights, Uint16Array), hidden = bytes(tick.hidden);
    const index = tick.index_bytes === 2 ? typed(tick.color_index, Uint16Array) : bytes(tick.color_index);
    return { heights: heights, hidden: hidden, index: index, palette: tick.palette, step: tick.height_step, base: layout.base_z };
  }

  // -- CPU path -----------------------------------------------------------------------------------
  function applyCpu(dataset, layout, tick) {
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
    const counts = bytes(layout.counts), topFrom = bytes(layout.top_from), d = decode(layout, tick), colors = colorArray.getData();
    let p = 0;
    for (let c = 0; c < nCells; c++) {
      const n = counts[c], top = topFrom[c], end = p + n, z = d.base + d.heights[c] * d.step;
      const isHidden = (d.hidden[c >> 3] >> (c & 7)) & 1;
      const rgba = d.palette[d.index[c]];
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

  // -- GPU path -----------------------------------------------------------------------------------
  const DECLARE = [ // WIDTH = 2048 = 1 << 11 texels a row
    "uniform highp usampler2D twinTris;", "uniform highp usampler2D twinCells;", "uniform vec2 twinZMap;",
    "bool twinHidden = false;", "vec4 twinColor = vec4(1.0);",
    "vec4 twinPosition(vec4 p) {",
    "  int tri = gl_VertexID / 3;",
    "  uint v = texelFetch(twinTris, ivec2(tri & 2047, tri >> 11), 0).r;",
    "  int cell = int(v >> 3u);",
    "  uvec2 zc = texelFetch(twinCells, ivec2(cell & 2047, cell >> 11), 0).rg;",
    "  twinHidden = zc.x == 0xFFFFFFFFu;  // (its z is then NaN too; the clip below does not rely on that)",
    "  twinColor = vec4(uvec4(zc.y, zc.y >> 8u, zc.y >> 16u, zc.y >> 24u) & 255u) / 255.0;",
    "  if (((v >> uint(gl_VertexID % 3)) & 1u) == 1u) p.z = (uintBitsToFloat(zc.x) - twinZMap.x) * twinZMap.y;",
    "  return p;",
    "}",
  ].join("\n");
  const REPLACEMENTS = [ // applied after vtk.js's own (replaceFirst false); replaceAll true: the search is a RegExp
    ["void main\\(\\)\\s*\\{", DECLARE + "\nvoid main()\n{\n  vec4 twinVertexMC = twinPosition(vertexMC);", true],
    ["\\* vertexMC\\b", "* twinVertexMC", true],
    ["vertexColorVSOutput =  scalarColor;", "vertexColorVSOutput = twinColor;", false],
    ["\\}\\s*$", "  if (twinHidden) gl_Position = vec4(2.0, 2.0, 2.0, 1.0);\n}\n", true],
  ].map(([from, to, all]) => ({ shaderType: "Vertex", originalValue: from, replacementValue: to, replaceFirst: false, replaceAll: all, twin: true }));

  function actorOf(view, dataset) {
    for (const renderer of view.renderWindow.getRenderers()) {
      for (const actor of renderer.getActors()) {
        const mapper = actor.getMapper && actor.getMapper();
        if (mapper && mapper.getInputData && mapper.getInputData() === dataset) return actor;
      }
    }
    return null;
  }

  function onlyTriangles(dataset) {
    const polys = dataset.getPolys().getData();
    if (dataset.getVerts().getNumberOfValues() || dataset.getLines().getNumberOfValues() || dataset.getStrips().getNumberOfValues()) return null;
    if (polys.length % 4) return null;
    for (let i = 0; i < polys.length; i += 4) if (polys[i] !== 3) return null;
    return polys;
  }

  function texture(gl, unit, internal, format, type, data, rows) { // a WIDTH x rows texture read with texelFetch, filled from data
    const tex = gl.createTexture();
    bind(gl, unit, tex);
    for (const [key, value] of [[gl.TEXTURE_MIN_FILTER, gl.NEAREST], [gl.TEXTURE_MAG_FILTER, gl.NEAREST], [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE], [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]]) {
      gl.texParameteri(gl.TEXTURE_2D, key, value);
    }
    gl.texImage2D(gl.TEXTURE_2D, 0, internal, WIDTH, rows, 0, format, type, data);
    return tex;
  }

  function bind(gl, unit, tex) { // on one of our units, with plain unpacking
    gl.activeTexture(gl.TEXTURE0 + unit);
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
    gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
  }

  function shaderBuilds(gl) { // the tick code alone, compiled by this browser's driver once (a failed shader would stall vtk.js)
    if (!builds.has(gl)) {
      const shader = gl.createShader(gl.VERTEX_SHADER);
      gl.shaderSource(shader, `#version 300 es\nin vec4 vertexMC;\n${DECLARE}\nout vec4 c;\nvoid main() { gl_Position = twinPosition(vertexMC); c = twinColor; }\n`);
      gl.compileShader(shader);
      builds.set(gl, gl.getShaderParameter(shader, gl.COMPILE_STATUS) === true);
      gl.deleteShader(shader);
      if (!builds.get(gl)) console.warn("twin: live ticks drawn on the CPU, this browser does not build the tick shader");
    }
    return builds.get(gl);
  }

  function installGpu(view, id, dataset, layout) {
    const glrw = view.renderWindow.getViews()[0];
    const actor = actorOf(view, dataset), polys = onlyTriangles(dataset);
    if (!glrw || !glrw.getWebgl2 || !glrw.getWebgl2() || !actor || !polys || dataset.getNumberOfPoints() !== layout.n_points) return null;
    const gl = glrw.getContext(), mapper = actor.getMapper();
    if (!shaderBuilds(gl)) return null;
    const counts = bytes(layout.counts), topFrom = bytes(layout.top_from);
    const cell = new Int32Array(layout.n_points), top = new Uint8Array(layout.n_points);
    for (let c = 0, p = 0; c < layout.n_cells; c++) {
      for (let k = 0; k < counts[c]; k++, p++) { cell[p] = c; top[p] = k >= topFrom[c] ? 1 : 0; }
    }
    const nTris = polys.length / 4, triRows = Math.max(1, Math.ceil(nTris / WIDTH)), tris = new Uint32Array(triRows * WIDTH);
    for (let t = 0; t < nTris; t++) {
      const a = polys[4 * t + 1], b = polys[4 * t + 2], c = polys[4 * t + 3];
      tris[t] = cell[a] * 8 + top[a] + 2 * top[b] + 4 * top[c];
    }
    const rows = Math.max(1, Math.ceil(layout.n_cells / WIDTH));
    if (!unitsOf.has(glrw)) unitsOf.set(glrw, [0, 1].map(() => glrw.getTextureUnitManager().allocate()));
    const units = unitsOf.get(glrw);
    if (units.some((u) => u < 0)) return null;
    const cells = new ArrayBuffer(8 * rows * WIDTH);
    const layer = {
      dataset: dataset, mapper: mapper, layout: layout, gl: gl, units: units, rows: rows, invoked: false, used: false,
      cells: new Uint32Array(cells), z: new Float32Array(cells),
    };
    layer.tris = texture(gl, units[0], gl.R32UI, gl.RED_INTEGER, gl.UNSIGNED_INT, tris, triRows);
    layer.cellTex = texture(gl, units[1], gl.RG32UI, gl.RG_INTEGER, gl.UNSIGNED_INT, layer.cells, rows);
    layer.callback = {
      twin: true,
      userData: layer,
      callback: (data, cellBO) => {
        const program = cellBO.getProgram();
        data.invoked = true; // vtk.js draws the layer ...
        if (!program || !program.isUniformUsed("twinTris")) return;
        const cabo = cellBO.getCABO(), shift = cabo.getCoordShiftAndScaleEnabled();
        [data.tris, data.cellTex].forEach((tex, i) => { gl.activeTexture(gl.TEXTURE0 + units[i]); gl.bindTexture(gl.TEXTURE_2D, tex); });
        program.setUniformi("twinTris", units[0]);
        program.setUniformi("twinCells", units[1]);
        program.setUniform2f("twinZMap", shift ? cabo.getCoordShift()[2] : 0.0, shift ? cabo.getCoordScale()[2] : 1.0);
        data.used = true; // ... with our code in its shader
      },
    };
    const props = mapper.getViewSpecificProperties();
    props.OpenGL = props.OpenGL || {};
    props.OpenGL.ShaderReplacements = (props.OpenGL.ShaderReplacements || []).filter((r) => !r.twin).concat(REPLACEMENTS);
    props.ShadersCallbacks = (props.ShadersCallbacks || []).filter((c) => !c.twin).concat([layer.callback]);
    mapper.modified(); // new shaders (and one buffer rebuild)
    gpuLayers.set(id, layer);
    return layer;
  }

  function dropGpu(id) {
    const layer = gpuLayers.get(id);
    if (!layer) return;
    const props = layer.mapper.getViewSpecificProperties();
    if (props.OpenGL && props.OpenGL.ShaderReplacements) props.OpenGL.ShaderReplacements = props.OpenGL.ShaderReplacements.filter((r) => !r.twin);
    if (props.ShadersCallbacks) props.ShadersCallbacks = props.ShadersCallbacks.filter((c) => c !== layer.callback);
    layer.mapper.modified();
    [layer.tris, layer.cellTex].forEach((tex) => layer.gl.deleteTexture(tex));
    gpuLayers.delete(id);
  }

  function applyGpu(view, id, dataset, layout, tick) {
    let layer = gpuLayers.get(id);
    if (layer && (layer.dataset !== dataset || layer.layout !== layout)) { dropGpu(id); layer = null; }
    if (!layer) layer = installGpu(view, id, dataset, layout);
    if (!layer || tick.n_cells !== layout.n_cells) return false;
    const d = decode(layout, tick), z = layer.z, gl = layer.gl;
    const packed = new Uint32Array(d.palette.map((c) => (c[0] | (c[1] << 8) | (c[2] << 16) | (c[3] << 24)) >>> 0));
    for (let c = 0; c < layout.n_cells; c++) {
      z[2 * c] = d.base + d.heights[c] * d.step;
      if ((d.hidden[c >> 3] >> (c & 7)) & 1) layer.cells[2 * c] = 0xffffffff;
      layer.cells[2 * c + 1] = packed[d.index[c]];
    }
    bind(gl, layer.units[1], layer.cellTex);
    gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, WIDTH, layer.rows, gl.RG_INTEGER, gl.UNSIGNED_INT, layer.cells);
    return true;
  }

  function tryGpu(view, id, dataset, layout, tick) {
    try {
      return applyGpu(view, id, dataset, layout, tick);
    } catch (error) {
      console.warn("twin: live ticks drawn on the CPU from now on, the GPU path failed:", error);
      gpuFailed = true;
      return false;
    }
  }

  // -- ticks: apply the newest, draw, wait for the GPU ---------------------------------------------
  function whenDrawn(view, done) {
    const glrw = view.renderWindow.getViews()[0], gl = glrw.getContext();
    const fence = gl.fenceSync ? gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0) : null;
    if (fence) gl.flush();
    let frames = 0;
    const poll = () => {
      frames += 1;
      const signalled = fence ? gl.getSyncParameter(fence, gl.SYNC_STATUS) === gl.SIGNALED : frames >= 2;
      if (!signalled && !gl.isContextLost()) { requestAnimationFrame(poll); return; }
      if (fence) gl.deleteSync(fence);
      done(now());
    };
    requestAnimationFrame(poll);
  }

  function update(view, pending) { // the newest tick into every block layer; its stamp (null: nothing to draw)
    const ticks = pending.ticks, layouts = pending.layouts;
    for (const id of gpuLayers.keys()) if (!layouts[id]) dropGpu(id);
    let stamp = null;
    for (const [id, tick] of Object.entries(ticks)) {
      const dataset = view.ctx.getInstance(id), layout = layouts[id];
      if (!dataset || !layout) continue;
      const gpu = !cpuOnly && !gpuFailed && tryGpu(view, id, dataset, layout, tick);
      if (!gpu) dropGpu(id);
      if (gpu || applyCpu(dataset, layout, tick)) stamp = tick.stamp;
    }
    return stamp;
  }

  function render(view, pending) { // vtk.js drew the layer without the tick shader (other templates): then the CPU path
    gpuLayers.forEach((layer) => { layer.invoked = false; });
    view.renderWindow.render();
    if (![...gpuLayers.values()].some((layer) => layer.invoked && !layer.used)) return;
    console.warn("twin: live ticks drawn on the CPU from now on, vtk.js built the layer's shader without the tick code");
    gpuFailed = true;
    update(view, pending);
    view.renderWindow.render();
  }

  function draw(view, pending) {
    const stamp = update(view, pending);
    if (stamp === null) return;
    const entry = { stamp: stamp, arrived: pending.arrived, updated: now(), skipped: skipped };
    skipped = 0;
    render(view, pending);
    entry.rendered = now();
    entry.path = gpuLayers.size ? "gpu" : "cpu";
    inFlight = !cpuOnly; // the CPU path draws every tick at once, as before the GPU path
    whenDrawn(view, (drawn) => {
      entry.drawn = drawn;
      stats.push(entry);
      if (cpuOnly) return;
      inFlight = false;
      next();
    });
  }

  function next() {
    const view = syncView();
    if (!waiting || inFlight || !view || !view.ctx) return;
    const pending = waiting;
    waiting = null;
    draw(view, pending);
  }

  function apply() {
    const state = window.trame && window.trame.state;
    if (!state) return;
    const ticks = state.get("twin_block_ticks") || {};
    if (waiting && waiting.ticks !== ticks) skipped += 1;
    waiting = { ticks: ticks, layouts: state.get("twin_block_layouts") || {}, arrived: now() };
    next();
  }

  window.twinBlockTicks = { apply: apply };
  function watch() {
    if (window.trame && window.trame.state) window.trame.state.watch(["twin_block_ticks", "twin_block_layouts"], apply);
  }
  if (window.trame && window.trame.addConnectListener) window.trame.addConnectListener(watch);
})();
