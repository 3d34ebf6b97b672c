// Comparison page: the table with change tracking and the parallel-coordinates plot.
// Data comes from the page (a JSON block rendered by the server); every string is set
// with textContent, never parsed as HTML. The selection lives in the URL.

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#4263eb", "#e8590c", "#2f9e44", "#c2255c", "#1098ad", "#f08c00", "#7048e8",
  "#d6336c", "#37b24d", "#1c7ed6", "#f76707", "#ae3ec9", "#0ca678", "#fab005", "#495057",
  "#a61e4d", "#5c940d", "#3bc9db", "#862e9c", "#e67700"];

const params = new URLSearchParams(location.search);
const state = {
  baseline: params.get("baseline"),
  onlyDiff: params.get("only_diff") === "1",
  filter: params.get("q") || "",
  sortKey: params.get("sort") || "",
  axes: params.get("axes") ? params.get("axes").split(",").filter(Boolean) : null,
  color: params.get("color") || "",
  log: new Set((params.get("log") || "").split(",").filter(Boolean)),
  flip: new Set((params.get("flip") || "").split(",").filter(Boolean)),
  brushes: new Map(),  // key -> [lo, hi] in data units
};
let data = null;

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function saveUrl() {
  const p = new URLSearchParams();
  for (const run of data.runs) p.append("runs", run.id);
  if (state.baseline && state.baseline !== data.runs[0].id) p.set("baseline", state.baseline);
  if (state.onlyDiff) p.set("only_diff", "1");
  if (state.filter) p.set("q", state.filter);
  if (state.sortKey) p.set("sort", state.sortKey);
  if (state.axes) p.set("axes", state.axes.join(","));
  if (state.color) p.set("color", state.color);
  if (state.log.size) p.set("log", [...state.log].join(","));
  if (state.flip.size) p.set("flip", [...state.flip].join(","));
  history.replaceState(null, "", "?" + p.toString());
}

// ---- values in the JSON form --------------------------------------------------------
function asNumber(v) {
  if (typeof v === "number") return v;
  if (v && typeof v === "object" && v.$type === "int") return Number(v.value);
  if (v && typeof v === "object" && v.$type === "storage_size") return Number(v.value);
  return NaN;
}
function formatNumber(n) {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n)) return n.toLocaleString("en-US");
  const abs = Math.abs(n);
  return abs !== 0 && (abs < 1e-4 || abs >= 1e6) ? n.toExponential(4) : String(Number(n.toPrecision(6)));
}
function formatValue(v) {
  if (v === null) return "None";
  if (typeof v === "number") return formatNumber(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return "[" + v.map(formatValue).join(", ") + "]";
  if (v && typeof v === "object" && "$type" in v) {
    const t = v.$type, x = v.value;
    if (t === "storage_size") return humanSize(Number(x));
    if (t === "tuple") return "(" + x.map(formatValue).join(", ") + ")";
    if (t === "set" || t === "frozenset") return "{" + x.map(formatValue).join(", ") + "}";
    if (t === "dict") return formatValue(x);
    return String(x);
  }
  return "{" + Object.entries(v).map(([k, x]) => k + ": " + formatValue(x)).join(", ") + "}";
}
function humanSize(n) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0, x = n;
  while (Math.abs(x) >= 1024 && i < units.length - 1) { x /= 1024; i++; }
  return i === 0 ? `${n} bytes` : `${x.toFixed(1)} ${units[i]}`;
}
function typeTag(v) {
  return v && typeof v === "object" && !Array.isArray(v) && "$type" in v ? v.$type : "";
}

// ---- the table ----------------------------------------------------------------------
function baselineIndex() {
  const i = data.runs.findIndex((r) => r.id === state.baseline);
  return i < 0 ? 0 : i;
}

function rowDiffers(row, b) {
  const base = row.present[b] ? JSON.stringify(row.values[b]) : undefined;
  return row.values.map((v, i) => (row.present[i] ? JSON.stringify(v) : undefined) !== base);
}

function visibleRuns() {
  const order = data.runs.map((_, i) => i).filter((i) => passesBrush(i));
  if (state.sortKey) {
    const desc = state.sortKey.startsWith("-");
    const key = desc ? state.sortKey.slice(1) : state.sortKey;
    const row = data.rows.find((k) => k.key === key);
    if (row) {
      const val = (i) => (row.present[i] ? row.values[i] : undefined);
      order.sort((a, b) => {
        const x = val(a), y = val(b);
        if (x === undefined) return 1;
        if (y === undefined) return -1;
        const nx = asNumber(x), ny = asNumber(y);
        const c = !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : formatValue(x).localeCompare(formatValue(y));
        return desc ? -c : c;
      });
    }
  }
  return order;
}

function drawTable() {
  const table = document.getElementById("compare-table");
  table.replaceChildren();
  const b = baselineIndex();
  const runs = visibleRuns();
  const head = el("thead");
  const hr = el("tr");
  hr.append(el("th", {}, "key"));
  for (const i of runs) {
    const run = data.runs[i];
    const th = el("th", { class: i === b ? "baseline" : "", title: run.id });
    const a = el("a", { href: "/runs/" + encodeURIComponent(run.id) }, run.name);
    th.append(a);
    if (i === b) th.append(el("span", { class: "badge" }, "baseline"));
    hr.append(th);
  }
  head.append(hr);
  const body = el("tbody");
  const filter = state.filter.toLowerCase();
  let shown = 0;
  for (const row of data.rows) {
    if (filter && !row.key.toLowerCase().includes(filter)) continue;
    const differs = rowDiffers(row, b);
    const anyDiff = runs.some((i) => differs[i]);
    if (state.onlyDiff && !anyDiff) continue;
    shown++;
    const tr = el("tr", { "data-key": row.key });
    const sortState = state.sortKey === row.key ? "sorted-asc" : state.sortKey === "-" + row.key ? "sorted-desc" : "";
    const keyCell = el("td", { class: "key sortable " + sortState, title: "sort runs by " + row.key }, row.key);
    keyCell.addEventListener("click", () => {
      state.sortKey = state.sortKey === row.key ? "-" + row.key : state.sortKey === "-" + row.key ? "" : row.key;
      saveUrl(); drawTable();
    });
    tr.append(keyCell);
    const base = row.present[b] ? asNumber(row.values[b]) : NaN;
    for (const i of runs) {
      const classes = [];
      if (i === b) classes.push("baseline");
      if (differs[i]) classes.push("changed");
      const td = el("td", {});
      if (!row.present[i]) {
        classes.push("absent");
        td.textContent = "—";
        td.title = "not logged in this run";
      } else {
        const v = row.values[i];
        td.append(el("span", { class: "value" }, formatValue(v)));
        const tag = typeTag(v);
        if (tag && !["int", "float", "dict"].includes(tag)) td.append(el("span", { class: "badge" }, tag));
        const n = asNumber(v);
        if (i !== b && differs[i] && !Number.isNaN(n) && !Number.isNaN(base)) {
          const d = n - base;
          const span = el("span", { class: "delta " + (d > 0 ? "up" : d < 0 ? "down" : "") },
            (d > 0 ? "+" : "") + formatNumber(d));
          td.append(span);
        }
      }
      td.className = classes.join(" ");
      tr.append(td);
    }
    body.append(tr);
  }
  if (!shown) {
    const tr = el("tr");
    tr.append(el("td", { colspan: String(runs.length + 1), class: "muted" },
      state.onlyDiff ? "No differences from the baseline." : "No keys match."));
    body.append(tr);
  }
  table.append(head, body);
}

// ---- the parallel-coordinates plot --------------------------------------------------
function numericKeys() { return data.rows.filter((k) => k.numeric); }

function defaultAxes() {
  const numeric = numericKeys();
  const varying = numeric.filter((k) => k.differs.some(Boolean));
  return (varying.length >= 2 ? varying : numeric).slice(0, 8).map((k) => k.key);
}

function axisKeys() {
  const known = new Set(numericKeys().map((k) => k.key));
  return (state.axes || defaultAxes()).filter((k) => known.has(k));
}

function scaleFor(key, height) {
  const row = data.rows.find((k) => k.key === key);
  const log = state.log.has(key);
  const vals = row.values.map((v, i) => (row.present[i] ? asNumber(v) : NaN))
    .filter((n) => Number.isFinite(n) && (!log || n > 0));
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (!vals.length) { lo = 0; hi = 1; }
  const f = (x) => (log ? Math.log10(x) : x);
  let a = f(lo), z = f(hi);
  if (a === z) { a -= 1; z += 1; }
  const flip = state.flip.has(key);
  const top = 44, bottom = height - 34;
  const toY = (x) => {
    const n = asNumber(x);
    if (!Number.isFinite(n) || (log && n <= 0)) return null;
    const t = (f(n) - a) / (z - a);
    return flip ? top + t * (bottom - top) : bottom - t * (bottom - top);
  };
  const fromY = (y) => {
    let t = flip ? (y - top) / (bottom - top) : (bottom - y) / (bottom - top);
    const v = a + t * (z - a);
    return log ? 10 ** v : v;
  };
  return { row, toY, fromY, lo, hi, top, bottom, log, flip };
}

function passesBrush(i) {
  for (const [key, [lo, hi]] of state.brushes) {
    const row = data.rows.find((k) => k.key === key);
    if (!row || !row.present[i]) return false;
    const n = asNumber(row.values[i]);
    if (!(n >= lo && n <= hi)) return false;
  }
  return true;
}

function colorOf(i) {
  const key = state.color;
  const row = key && data.rows.find((k) => k.key === key);
  if (!row) return PALETTE[i % PALETTE.length];
  if (!row.present[i]) return "#adb5bd";
  if (row.numeric) {
    const nums = row.values.map((v, j) => (row.present[j] ? asNumber(v) : NaN)).filter(Number.isFinite);
    const lo = Math.min(...nums), hi = Math.max(...nums);
    const t = hi === lo ? 0.5 : (asNumber(row.values[i]) - lo) / (hi - lo);
    return `hsl(${Math.round(230 - 200 * t)}, 75%, 50%)`;
  }
  const distinct = [...new Set(row.values.map((v) => JSON.stringify(v)))];
  return PALETTE[distinct.indexOf(JSON.stringify(row.values[i])) % PALETTE.length];
}

let tooltip = null;
function showTip(event, text) {
  if (!tooltip) { tooltip = el("div", { class: "tooltip", id: "plot-tooltip" }); document.body.append(tooltip); }
  tooltip.textContent = text;
  tooltip.style.left = event.clientX + 12 + "px";
  tooltip.style.top = event.clientY + 12 + "px";
  tooltip.hidden = false;
}
function hideTip() { if (tooltip) tooltip.hidden = true; }

function drawPlot() {
  const holder = document.getElementById("plot");
  holder.replaceChildren();
  const keys = axisKeys();
  if (keys.length < 2) {
    holder.append(el("p", { class: "empty" }, keys.length ? "Pick at least two numeric axes." : "These runs have fewer than two numeric keys to plot."));
    drawLegend();
    return;
  }
  const width = Math.max(holder.clientWidth || 900, keys.length * 120);
  const height = 380;
  const gap = (width - 160) / (keys.length - 1);
  const xs = keys.map((_, j) => 80 + j * gap);
  const scales = keys.map((k) => scaleFor(k, height));
  const plot = svg("svg", { width: String(width), height: String(height), role: "img", "aria-label": "parallel coordinates of the runs" });

  const lines = svg("g", { class: "pc-lines" });
  data.runs.forEach((run, i) => {
    const pts = [];
    scales.forEach((s, j) => {
      const y = s.row.present[i] ? s.toY(s.row.values[i]) : null;
      if (y !== null) pts.push(`${xs[j].toFixed(1)},${y.toFixed(1)}`);
    });
    if (pts.length < 2) return;
    const line = svg("polyline", { points: pts.join(" "), class: "pc-line" + (passesBrush(i) ? "" : " dimmed"), "data-run": run.id });
    line.style.stroke = colorOf(i);
    line.addEventListener("mousemove", (e) => {
      line.classList.add("hover");
      const parts = [run.name].concat(scales.map((s) => `${s.row.key}: ${s.row.present[i] ? formatValue(s.row.values[i]) : "—"}`));
      showTip(e, parts.join("\n"));
    });
    line.addEventListener("mouseleave", () => { line.classList.remove("hover"); hideTip(); });
    lines.append(line);
  });

  const axes = svg("g");
  scales.forEach((s, j) => {
    const g = svg("g", { class: "pc-axis", "data-key": s.row.key });
    g.append(svg("line", { x1: xs[j], x2: xs[j], y1: s.top, y2: s.bottom }));
    // Titles share the width between axes; when that is tight they alternate on two rows.
    const crowded = gap < 170;
    const last = j === keys.length - 1;
    // a centred title may use the width up to the next title of its row; an outer one
    // runs one way only, from 12 px outside its axis, up to where its neighbour's begins
    const room = (crowded ? 2 * gap : gap) / (j === 0 || last ? 2 : 1) + (j === 0 || last ? 12 : 0);
    const anchor = j === 0 ? "start" : last ? "end" : "middle";  // the outer titles stay inside
    const tx = j === 0 ? xs[j] - 12 : last ? xs[j] + 12 : xs[j];
    const title = svg("text", { x: tx, y: crowded && j % 2 ? 27 : 12, "text-anchor": anchor, class: "pc-title" }, shorten(s.row.key, Math.floor(room / 7.5)));
    title.append(svg("title", {}, s.row.key));
    g.append(title);
    const hiLabel = s.flip ? s.bottom + 14 : s.top - 8;
    const loLabel = s.flip ? s.top - 8 : s.bottom + 14;
    g.append(svg("text", { x: xs[j], y: hiLabel, "text-anchor": "middle", class: "pc-tick" }, formatNumber(s.hi)));
    g.append(svg("text", { x: xs[j], y: loLabel, "text-anchor": "middle", class: "pc-tick" }, formatNumber(s.lo)));
    const logBtn = svg("text", { x: xs[j] - 22, y: height - 2, class: "pc-control", "data-action": "log" }, s.log ? "[log]" : "log");
    logBtn.addEventListener("click", () => { toggle(state.log, s.row.key); state.brushes.delete(s.row.key); redraw(); });
    const flipBtn = svg("text", { x: xs[j] + 6, y: height - 2, class: "pc-control", "data-action": "flip" }, s.flip ? "[flip]" : "flip");
    flipBtn.addEventListener("click", () => { toggle(state.flip, s.row.key); state.brushes.delete(s.row.key); redraw(); });
    g.append(logBtn, flipBtn);
    const brush = state.brushes.get(s.row.key);
    if (brush) {
      const y1 = s.toY(brush[0]), y2 = s.toY(brush[1]);
      if (y1 !== null && y2 !== null) g.append(svg("rect", { class: "pc-brush", x: xs[j] - 8, width: 16, y: Math.min(y1, y2), height: Math.max(2, Math.abs(y2 - y1)) }));
    }
    const hit = svg("rect", { class: "pc-hit", x: xs[j] - 12, width: 24, y: s.top, height: s.bottom - s.top });
    brushable(hit, plot, s, xs[j]);
    g.append(hit);
    axes.append(g);
  });
  plot.append(lines, axes);
  holder.append(plot);
  drawLegend();
}

function shorten(key, max) {
  const limit = Math.max(8, Math.min(40, max));
  return key.length > limit ? "…" + key.slice(-(limit - 1)) : key;
}
function toggle(set, key) { if (set.has(key)) set.delete(key); else set.add(key); }

function brushable(hit, plot, s, x) {
  hit.addEventListener("pointerdown", (down) => {
    down.preventDefault();
    hit.setPointerCapture(down.pointerId);
    const box = plot.getBoundingClientRect();
    const start = down.clientY - box.top;
    const rect = svg("rect", { class: "pc-brush", x: x - 8, width: 16, y: start, height: 1 });
    hit.parentNode.insertBefore(rect, hit);
    const move = (e) => {
      const y = Math.min(Math.max(e.clientY - box.top, s.top), s.bottom);
      rect.setAttribute("y", String(Math.min(start, y)));
      rect.setAttribute("height", String(Math.max(1, Math.abs(y - start))));
    };
    const up = (e) => {
      hit.removeEventListener("pointermove", move);
      hit.removeEventListener("pointerup", up);
      const end = Math.min(Math.max(e.clientY - box.top, s.top), s.bottom);
      if (Math.abs(end - start) < 3) state.brushes.delete(s.row.key);
      else {
        const a = s.fromY(start), b = s.fromY(end);
        state.brushes.set(s.row.key, [Math.min(a, b), Math.max(a, b)]);
      }
      redraw();
    };
    hit.addEventListener("pointermove", move);
    hit.addEventListener("pointerup", up);
  });
}

function drawLegend() {
  const legend = document.getElementById("plot-legend");
  legend.replaceChildren();
  data.runs.forEach((run, i) => {
    const item = el("span", { class: passesBrush(i) ? "" : "dimmed", "data-run": run.id });
    const sw = el("span", { class: "swatch" });
    sw.style.background = colorOf(i);
    item.append(sw, document.createTextNode(run.name));
    legend.append(item);
  });
  const n = data.runs.filter((_, i) => passesBrush(i)).length;
  document.getElementById("brush-state").textContent = state.brushes.size
    ? `${n} of ${data.runs.length} runs within the brushed ranges`
    : "drag along an axis to filter runs";
}

function drawControls() {
  const baseline = document.getElementById("baseline");
  baseline.replaceChildren(...data.runs.map((r) => el("option", { value: r.id }, r.name)));
  baseline.value = data.runs[baselineIndex()].id;
  const color = document.getElementById("color-by");
  const options = [el("option", { value: "" }, "run")].concat(data.rows.map((k) => el("option", { value: k.key }, k.key)));
  color.replaceChildren(...options);
  color.value = state.color;
  document.getElementById("only-diff").checked = state.onlyDiff;
  document.getElementById("key-filter").value = state.filter;
  const picker = document.getElementById("axes-picker");
  picker.replaceChildren();
  const chosen = new Set(axisKeys());
  for (const k of numericKeys()) {
    const label = el("label", {});
    const box = el("input", { type: "checkbox", value: k.key });
    box.checked = chosen.has(k.key);
    box.addEventListener("change", () => {
      const now = axisKeys().filter((x) => x !== k.key);
      if (box.checked) now.push(k.key);
      state.axes = numericKeys().map((n) => n.key).filter((n) => now.includes(n));
      if (!box.checked) state.brushes.delete(k.key);
      redraw();
    });
    label.append(box, document.createTextNode(" " + k.key));
    picker.append(label);
  }
}

function redraw() { saveUrl(); drawTable(); drawPlot(); }

function load() {
  const block = document.getElementById("compare-data");
  if (!block) return false;
  data = JSON.parse(block.textContent);
  if (!state.baseline) state.baseline = data.baseline;
  return true;
}

document.addEventListener("DOMContentLoaded", () => {
  if (!load()) return;
  document.getElementById("baseline").addEventListener("change", (e) => { state.baseline = e.target.value; redraw(); });
  document.getElementById("only-diff").addEventListener("change", (e) => { state.onlyDiff = e.target.checked; redraw(); });
  document.getElementById("key-filter").addEventListener("input", (e) => { state.filter = e.target.value; saveUrl(); drawTable(); });
  document.getElementById("color-by").addEventListener("change", (e) => { state.color = e.target.value; redraw(); });
  document.getElementById("clear-brush").addEventListener("click", () => { state.brushes.clear(); redraw(); });
  document.addEventListener("metastream:updated", () => { load(); drawControls(); redraw(); });
  document.addEventListener("metastream:theme", () => drawPlot());
  window.addEventListener("resize", () => drawPlot());
  drawControls();
  redraw();
});
