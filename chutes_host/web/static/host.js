// The host: its version, executor, uptime, and each GPU with its memory, use and holder.
import { bytes, call, duration, el, poll, timeChart } from "./common.js";

const $ = (id) => document.getElementById(id);
const COLOURS = ["#4f46e5", "#0d9488", "#d97706", "#db2777", "#2563eb", "#65a30d", "#9333ea", "#dc2626"];
let gpuPlot = null;

async function refresh() {
  const host = await call("/dashboard/api/host");
  $("host-version").textContent = host.version;
  $("host-executor").textContent = host.executor;
  $("host-uptime").textContent = duration(host.uptime_seconds);
  $("host-gpu-source").textContent = host.gpu_source;
  $("gpu-note").textContent = host.gpus.length ? (host.gpu_note || "") : `No GPUs: ${host.gpu_note || "chutes here run on CPU only"}`;
  $("gpu-rows").replaceChildren(...host.gpus.map((g) => el("tr", {},
    el("td", { text: String(g.index) }),
    el("td", {}, g.name, el("div", { class: "muted small", text: g.uuid })),
    el("td", {}, g.memory_used_bytes === null ? `${g.memory_gb} GB` : `${bytes(g.memory_used_bytes)} of ${bytes(g.memory_total_bytes)}`,
      g.memory_used_bytes === null ? null : meter(g.memory_used_bytes / g.memory_total_bytes)),
    el("td", {}, g.utilization_percent === null ? "–" : `${g.utilization_percent} %`,
      g.utilization_percent === null ? null : meter(g.utilization_percent / 100)),
    el("td", { text: g.holder || "free" }))));
  if (host.gpu_history.length) {
    if (gpuPlot === null) {
      gpuPlot = timeChart($("plot-gpu"), host.gpus.map((g, i) => ({
        label: `GPU ${g.index} (GiB)`, stroke: COLOURS[i % COLOURS.length],
      })));
    }
    gpuPlot.update([host.gpu_history.map((s) => s.time), ...host.gpus.map((_, i) => host.gpu_history.map((s) => (s.used[i] ?? null) === null ? null : s.used[i] / 2 ** 30))]);
    $("gpu-history-note").textContent = "";
    $("plot-gpu").hidden = false;
  } else {
    $("plot-gpu").hidden = true;
    $("gpu-history-note").textContent = "No readings: the host samples GPU memory every 30 s from NVML, and has none here (no GPUs, GPUs declared with --gpus, or no driver).";
  }
}

function meter(fraction) {
  return el("meter", { min: 0, max: 1, value: fraction, class: "meter", "aria-label": `${Math.round(fraction * 100)} %` });
}

poll(refresh, 5000);
