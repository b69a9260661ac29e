// Shared by the dashboard's pages: calls to the host with the page's CSRF token, formatting, sparklines.

export const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class HostError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

// Calls a dashboard route; changes carry the CSRF token. Throws HostError with the host's message.
export async function call(path, { method = "GET", json, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method, headers, signal, credentials: "same-origin",
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  if (resp.status === 401) {
    window.location.assign("/");
    throw new HostError(401, "your session ended; sign in again");
  }
  const body = await resp.json().catch(() => null);
  if (!resp.ok) throw new HostError(resp.status, describeDetail(body) || `${resp.status} ${resp.statusText}`);
  return body;
}

export function describeDetail(body) {
  if (!body || body.detail === undefined) return "";
  if (typeof body.detail === "string") return body.detail;
  return JSON.stringify(body.detail);
}

// Runs `task` now and every `ms`, one at a time; shows failures in #feed-error and keeps trying.
export function poll(task, ms) {
  const banner = document.getElementById("feed-error");
  const run = async () => {
    try {
      await task();
      if (banner) banner.hidden = true;
    } catch (err) {
      if (banner && err.status !== 401) {
        banner.textContent = `Could not refresh: ${err.message}`;
        banner.hidden = false;
      }
    }
    setTimeout(run, ms);
  };
  run();
}

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("data-") || name.startsWith("aria-") || name === "role" || name === "for") node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function ago(iso) {
  const when = new Date(iso.endsWith("Z") ? iso : iso + "Z");
  const seconds = Math.max(0, (Date.now() - when.getTime()) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return when.toLocaleDateString();
}

export function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600), m = Math.floor((seconds % 3600) / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  return `${m} min ${Math.floor(seconds % 60)} s`;
}

export const percent = (rate) => `${(rate * 100).toFixed(rate && rate < 0.01 ? 2 : 0)} %`;

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const gib = n / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${(n / 2 ** 20).toFixed(0)} MiB`;
}

// A phase badge; a failed or pending chute says why.
export function phaseBadge(node, phase, reason) {
  node.textContent = phase;
  node.dataset.phase = phase;
  node.className = "phase";
  node.title = reason || "";
}

const SVG = "http://www.w3.org/2000/svg";

// An SVG sparkline of `values` (requests per minute), with `errors` drawn over it in red.
export function sparkline(values, errors, { width = 120, height = 28 } = {}) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  const total = values.reduce((a, b) => a + b, 0);
  svg.setAttribute("aria-label", `${total} requests in the last ${values.length} minutes`);
  const top = Math.max(1, ...values);
  const line = (series, cls) => {
    const step = width / Math.max(1, series.length - 1);
    const points = series.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`);
    const path = document.createElementNS(SVG, "polyline");
    path.setAttribute("points", points.join(" "));
    path.setAttribute("class", cls);
    svg.append(path);
  };
  line(values, "spark-line");
  if (errors.some((e) => e > 0)) line(errors, "spark-errors");
  return svg;
}

// A uPlot chart that follows its box's width; update(data) replaces its data.
export function timeChart(box, series, { height = 180 } = {}) {
  const opts = {
    width: Math.max(200, box.clientWidth),
    height,
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [{ stroke: "#667085", grid: { stroke: "#eef0f3" } }, { stroke: "#667085", grid: { stroke: "#eef0f3" }, size: 50 }],
    series: [{}, ...series.map((s) => ({ width: 2, points: { show: false }, ...s }))],
  };
  let plot = null;
  const resize = () => plot && plot.setSize({ width: Math.max(200, box.clientWidth), height });
  new ResizeObserver(resize).observe(box);
  return {
    update(data) {
      if (plot === null) plot = new window.uPlot(opts, data, box);
      else plot.setData(data);
    },
  };
}
