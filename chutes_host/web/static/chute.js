// One chute: its status (polled), plots, cords with Try it, live logs, scale and delete.
import { HostError, ago, call, csrf, describeDetail, el, percent, phaseBadge, poll, timeChart } from "./common.js";

const slug = document.getElementById("chute").dataset.slug;
const base = `/dashboard/api/chutes/${encodeURIComponent(slug)}`;
const tryBase = `/dashboard/try/${encodeURIComponent(slug)}`;
const $ = (id) => document.getElementById(id);
let cordsShown = false;

const requestsPlot = timeChart($("plot-requests"), [
  { label: "requests", stroke: "#4f46e5", fill: "rgba(79,70,229,0.08)" },
  { label: "errors", stroke: "#dc2626" },
]);
const latencyPlot = timeChart($("plot-latency"), [{ label: "ms", stroke: "#0d9488" }]);

async function refresh() {
  const chute = await call(base);
  const reason = chute.phase === "failed" ? `failed while ${chute.failed_phase}: ${chute.error}` : "";
  phaseBadge($("phase"), chute.phase, reason);
  const problem = $("chute-error");
  const waiting = chute.instances.find((i) => i.waiting_for);
  problem.hidden = !reason && !waiting;
  problem.textContent = reason || (waiting ? `Waiting: ${waiting.waiting_for}` : "");
  $("version").textContent = `v${chute.version}`;
  $("deployed").textContent = `${ago(chute.updated_at)} (${new Date(chute.updated_at + "Z").toLocaleString()})`;
  $("instances").textContent = `${chute.ready_instances} ready of ${chute.instances.length} (max ${chute.max_instances})`;
  $("gpus").textContent = chute.gpus_per_instance ?? "–";
  $("rpm").textContent = chute.stats.requests_per_minute;
  $("errors").textContent = percent(chute.stats.error_rate);
  $("versions").replaceChildren(...versionItems(chute));
  $("instance-list").replaceChildren(...chute.instances.map((i) => el("li", {},
    el("span", { class: "phase small", "data-phase": i.phase, text: i.phase }),
    ` #${i.index}`, i.gpus.length ? ` on ${i.gpus.map((g) => `GPU ${g.index}`).join(", ")}` : "",
    i.restarts ? `, ${i.restarts} restart(s)` : "")));
  const count = $("scale-count");
  if (document.activeElement !== count && !count.dataset.touched) count.value = chute.max_instances;
  const s = chute.stats;
  requestsPlot.update([s.minutes, s.requests, s.errors]);
  latencyPlot.update([s.minutes, s.latency_ms]);
  if (!cordsShown && chute.phase === "ready") {
    cordsShown = true;
    showCords().catch((err) => { cordsShown = false; $("cords-status").textContent = `Could not read the cords: ${err.message}`; });
  } else if (!cordsShown) {
    $("cords-status").textContent = `The cords appear once the chute is ready (now: ${chute.phase}).`;
  }
}

// The deploy history, newest first: the current version's status is its live phase.
function versionItems(chute) {
  const history = chute.history.length ? chute.history : [{ version: chute.version, deployed_at: chute.updated_at, outcome: null }];
  return history.map((v) => {
    let status = v.outcome;
    if (v.version === chute.version) status = chute.phase;
    else if (chute.previous && v.version === chute.previous.version) status = `${chute.previous.phase}, serving until v${chute.version} is ready`;
    const badge = el("span", { class: "phase small", "data-phase": status.split(/[ ,]/)[0], text: status });
    return el("li", { "data-version": v.version }, el("strong", { text: `v${v.version}` }), " ", badge, ` deployed ${ago(v.deployed_at)}`);
  });
}

// ---- cords, from the chute's own OpenAPI document ----

const HIDDEN_PATHS = new Set(["/_ping", "/_ready", "/_metrics", "/openapi.json", "/docs"]);

function resolve(doc, schema) {
  let seen = 0;
  while (schema && schema.$ref && seen++ < 20) {
    schema = schema.$ref.replace(/^#\//, "").split("/").reduce((node, key) => node?.[key], doc);
  }
  if (schema && schema.allOf && schema.allOf.length === 1) return resolve(doc, schema.allOf[0]);
  return schema || {};
}

function isScalar(schema) {
  return ["string", "integer", "number", "boolean"].includes(schema.type) && schema.format !== "binary";
}

async function showCords() {
  const resp = await fetch(`${tryBase}/openapi.json`, { headers: { Accept: "application/json", "X-CSRF-Token": csrf() } });
  if (!resp.ok) throw new HostError(resp.status, describeDetail(await resp.json().catch(() => null)) || resp.statusText);
  const doc = await resp.json();
  const forms = [];
  for (const [path, operations] of Object.entries(doc.paths || {})) {
    if (HIDDEN_PATHS.has(path)) continue;
    for (const [method, op] of Object.entries(operations)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      forms.push(cordForm(doc, path, method.toUpperCase(), op));
    }
  }
  $("cords-status").textContent = forms.length ? "" : "This chute's OpenAPI document lists no cords.";
  $("cords").replaceChildren(...forms);
}

function fieldFor(doc, name, schema, required, id) {
  schema = resolve(doc, schema);
  const label = el("label", { for: id }, el("code", { text: name }), required ? " *" : "",
    schema.description ? el("span", { class: "muted small", text: ` ${schema.description}` }) : null);
  let input;
  if (schema.format === "binary" || (schema.type === "string" && schema.contentMediaType)) {
    input = el("input", { type: "file", id, name, "data-kind": "file" });
  } else if (schema.type === "boolean") {
    input = el("input", { type: "checkbox", id, name, "data-kind": "boolean", checked: schema.default === true });
  } else if (schema.enum) {
    input = el("select", { id, name, "data-kind": "enum" }, ...schema.enum.map((v) => el("option", { value: JSON.stringify(v), text: String(v), selected: v === schema.default })));
  } else if (isScalar(schema)) {
    const numeric = schema.type === "integer" || schema.type === "number";
    input = el("input", {
      id, name, type: numeric ? "number" : "text", "data-kind": schema.type,
      step: schema.type === "number" ? "any" : undefined,
      placeholder: schema.default !== undefined ? String(schema.default) : "",
    });
  } else {
    input = el("textarea", { id, name, rows: 3, class: "code", "data-kind": "json", placeholder: "JSON", spellcheck: false });
    if (schema.default !== undefined) input.value = JSON.stringify(schema.default, null, 2);
  }
  input.required = Boolean(required) && input.type !== "checkbox";
  return el("div", { class: "field" }, label, input);
}

function valueOf(input) {
  const kind = input.dataset.kind;
  if (kind === "boolean") return input.checked;
  if (kind === "enum") return JSON.parse(input.value);
  if (input.value === "") return undefined;
  if (kind === "integer" || kind === "number") return Number(input.value);
  if (kind === "json") {
    try {
      return JSON.parse(input.value);
    } catch (err) {
      throw new Error(`${input.name}: not valid JSON (${err.message})`);
    }
  }
  return input.value;
}

let formCount = 0;

function cordForm(doc, path, method, op) {
  const n = formCount++;
  const content = op.requestBody?.content || {};
  const multipart = content["multipart/form-data"];
  const jsonBody = content["application/json"];
  const fields = [];
  const query = (op.parameters || []).filter((p) => p.in === "query");
  for (const p of query) fields.push(fieldFor(doc, p.name, p.schema || {}, p.required, `cord${n}-q-${p.name}`));
  const bodySchema = resolve(doc, (multipart || jsonBody)?.schema);
  const props = bodySchema.properties || {};
  const required = new Set(bodySchema.required || []);
  const simple = Object.keys(props).length > 0;
  for (const [name, schema] of Object.entries(props)) fields.push(fieldFor(doc, name, schema, required.has(name), `cord${n}-b-${name}`));
  let rawBody = null;
  if (jsonBody && !simple) {
    rawBody = el("textarea", { id: `cord${n}-body`, rows: 5, class: "code", spellcheck: false, placeholder: "{}" });
    fields.push(el("div", { class: "field" }, el("label", { for: rawBody.id, text: "JSON body" }), rawBody));
  }
  const streams = Object.keys(op.responses?.["200"]?.content || {}).some((t) => t.includes("event-stream") || t.includes("ndjson"));
  const output = el("div", { class: "output", "aria-live": "polite" });
  const button = el("button", { type: "submit", class: "primary", text: "Try it" });
  const form = el("form", { class: "cord-form stack", "data-path": path, "data-method": method }, ...fields, el("div", { class: "row" }, button));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await tryCord(form, { path, method, query, props, multipart: Boolean(multipart), rawBody, output });
    } catch (err) {
      output.replaceChildren(el("p", { class: "alert", role: "alert", text: err.message }));
    } finally {
      button.disabled = false;
    }
  });
  const title = el("summary", {}, el("span", { class: `method ${method.toLowerCase()}`, text: method }), " ",
    el("code", { text: path }), streams ? el("span", { class: "tag", text: "stream" }) : null,
    op.summary ? el("span", { class: "muted small", text: ` ${op.summary}` }) : null);
  return el("details", { class: "cord", "data-path": path, open: n === 0 }, title, form, output);
}

async function tryCord(form, { path, method, query, props, multipart, rawBody, output }) {
  const params = new URLSearchParams();
  for (const p of query) {
    const value = valueOf(form.elements[p.name]);
    if (value !== undefined) params.set(p.name, typeof value === "string" ? value : JSON.stringify(value));
  }
  const headers = { "X-CSRF-Token": csrf() };
  let body;
  if (multipart) {
    body = new FormData();
    for (const name of Object.keys(props)) {
      const input = form.elements[name];
      if (input.type === "file") { if (input.files[0]) body.append(name, input.files[0]); }
      else { const v = valueOf(input); if (v !== undefined) body.append(name, typeof v === "string" ? v : JSON.stringify(v)); }
    }
  } else if (rawBody) {
    try {
      body = JSON.stringify(rawBody.value.trim() ? JSON.parse(rawBody.value) : {});
    } catch (err) {
      throw new Error(`JSON body: not valid JSON (${err.message})`);
    }
    headers["Content-Type"] = "application/json";
  } else if (Object.keys(props).length) {
    const data = {};
    for (const name of Object.keys(props)) {
      const value = valueOf(form.elements[name]);
      if (value !== undefined) data[name] = value;
    }
    body = JSON.stringify(data);
    headers["Content-Type"] = "application/json";
  } else if (method !== "GET" && method !== "DELETE") {
    body = "{}";
    headers["Content-Type"] = "application/json";
  }
  const qs = params.toString() ? `?${params}` : "";
  const status = el("p", { class: "status-line", text: `${method} ${path}${qs} …` });
  output.replaceChildren(status);
  const resp = await fetch(`${tryBase}${path}${qs}`, { method, headers, body, credentials: "same-origin" });
  const type = resp.headers.get("content-type") || "";
  status.textContent = `${resp.status} ${resp.statusText} · ${type || "no content type"}`;
  status.dataset.status = resp.status;
  if (type.startsWith("image/") || type.startsWith("audio/") || type.startsWith("video/")) {
    const url = URL.createObjectURL(await resp.blob());
    const tag = type.startsWith("image/") ? "img" : type.startsWith("audio/") ? "audio" : "video";
    output.append(el(tag, { src: url, controls: tag !== "img", alt: tag === "img" ? `image answer of ${path}` : undefined, class: "media" }));
  } else if (type.includes("text/event-stream") || type.includes("ndjson")) {
    await showStream(resp, type.includes("ndjson"), output);
  } else {
    const text = await resp.text();
    let shown = text;
    if (type.includes("json")) {
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* shown as sent */ }
    }
    output.append(el("pre", { class: "answer", text: shown }));
  }
}

// Renders each event of a streamed answer as it arrives.
async function showStream(resp, ndjson, output) {
  const events = el("ol", { class: "events" });
  output.append(events);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const separator = ndjson ? /\n/ : /\r?\n\r?\n/;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    const parts = buffer.split(separator);
    buffer = parts.pop();
    for (const part of parts) if (part.trim()) events.append(eventItem(part, ndjson));
  }
  if (buffer.trim()) events.append(eventItem(buffer, ndjson));
  output.append(el("p", { class: "muted small", text: `${events.children.length} event(s), stream ended` }));
}

function eventItem(frame, ndjson) {
  let name = "";
  let data = frame;
  if (!ndjson) {
    const lines = frame.split(/\r?\n/);
    name = lines.find((l) => l.startsWith("event:"))?.slice(6).trim() || "";
    data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n") || frame;
  }
  return el("li", { class: name === "error" ? "event error" : "event" }, name ? el("span", { class: "tag", text: name }) : null, el("code", { text: data }));
}

// ---- logs ----

async function followLogs() {
  const pre = $("logs");
  for (;;) {
    try {
      const resp = await fetch(`${base}/logs?tail=200`, { credentials: "same-origin" });
      if (!resp.ok) throw new Error(`${resp.status}`);
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
        pre.textContent = (pre.textContent + value).split("\n").slice(-1000).join("\n");
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      }
    } catch {
      // the host restarted or the chute went away; the status poll says which
    }
    if (deleted) return;
    await new Promise((r) => setTimeout(r, 3000));
    pre.textContent = "";
  }
}

// ---- scale and delete ----

let deleted = false;

$("scale-count").addEventListener("input", (e) => { e.target.dataset.touched = "1"; });
$("scale").addEventListener("submit", async (event) => {
  event.preventDefault();
  const count = Number($("scale-count").value);
  $("scale-result").textContent = "Scaling…";
  try {
    const chute = await call(`${base}/scale`, { method: "POST", json: { max_instances: count } });
    $("scale-result").textContent = `Scaled to ${chute.max_instances} instance(s).`;
    delete $("scale-count").dataset.touched;
  } catch (err) {
    $("scale-result").textContent = `Not scaled: ${err.message}`;
  }
});

const dialog = $("confirm-delete");
$("delete").addEventListener("click", () => {
  $("confirm-name").value = "";
  dialog.showModal();
});
dialog.addEventListener("close", async () => {
  if (dialog.returnValue !== "delete") return;
  if ($("confirm-name").value.trim() !== slug) {
    $("scale-result").textContent = `Not deleted: type ${slug} to confirm.`;
    return;
  }
  try {
    await call(base, { method: "DELETE" });
    deleted = true;
    window.location.assign("/");
  } catch (err) {
    $("scale-result").textContent = `Not deleted: ${err.message}`;
  }
});

poll(refresh, 2000);
followLogs();
