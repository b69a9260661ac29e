// Loads a host's Swagger page in jsdom with the page's own Swagger UI files, authorizes with a key
// the way the Authorize dialog does, makes one "Try it out" call, and prints what happened as JSON.
//
//   node swagger_page.js PORT HOST_HEADER PAGE_PATH SCHEME KEY CALL_PATH CALL_METHOD CALL_BODY_JSON
//
// Every request (page, files, documents, calls) goes to 127.0.0.1:PORT with the given Host header.
const http = require("http");
const { JSDOM } = require("jsdom");

const [port, hostHeader, pagePath, scheme, key, callPath, callMethod, callBody] = process.argv.slice(2);
const requests = [];

function send(path, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port: Number(port), path, method, headers: { ...headers, Host: hostHeader } },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on("error", reject);
    if (body) req.write(body);
    req.end();
  });
}

function plainHeaders(headers) {
  if (!headers || typeof headers.forEach !== "function") return { ...(headers || {}) };
  const out = {};
  headers.forEach((value, name) => { out[name] = value; });
  return out;
}

async function until(test, what) {
  for (let i = 0; i < 200; i++) {
    if (test()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

(async () => {
  const page = (await send(pagePath)).body.toString();
  // jsdom does not load <script src>; inline each of the page's own files instead
  const scripts = [...page.matchAll(/<script src="([^"]+)"><\/script>/g)];
  let html = page;
  for (const [tag, src] of scripts) {
    const file = await send(src);
    if (file.status !== 200) throw new Error(`${src}: ${file.status}`);
    html = html.replace(tag, () => `<script>${file.body.toString()}</script>`);
  }
  const dom = new JSDOM(html, {
    url: `http://${hostHeader}${pagePath}`,
    runScripts: "dangerously",
    pretendToBeVisual: true,
    beforeParse(window) {
      window.fetch = async (input, init = {}) => {
        const url = new URL(typeof input === "string" ? input : input.url, window.location.href);
        const headers = plainHeaders(init.headers);
        requests.push({ url: url.href, headers: Object.keys(headers), keyInUrl: url.href.includes(key) });
        const res = await send(url.pathname + url.search, { method: init.method, headers, body: init.body });
        const kept = Object.entries(res.headers).filter(([name]) => name !== "transfer-encoding");
        return new Response(res.body, { status: res.status, headers: kept });
      };
    },
  });
  const ui = () => dom.window.ui;
  await until(() => ui() && ui().specSelectors.specJson().get("paths"), "the first document");
  const result = {
    schemes: Object.keys(ui().specSelectors.securityDefinitions()?.toJS() || {}),
    pathsBefore: Object.keys(ui().specSelectors.specJson().toJS().paths),
  };
  const schema = ui().specSelectors.securityDefinitions().get(scheme);
  ui().authActions.authorize({ [scheme]: { name: scheme, schema, value: key } });
  const refusal = () => (ui().specSelectors.specJson().getIn(["info", "description"]) || "").match(/^\*\*The host refused.*/);
  await until(() => ui().specSelectors.specJson().getIn(["paths", callPath]) || refusal(), `${callPath} or a refusal`);
  if (refusal()) {
    result.refused = refusal()[0];
    result.requests = requests;
    process.stdout.write(JSON.stringify(result));
    process.exit(0);
  }
  const spec = ui().specSelectors.specJson().toJS();
  result.pathsAfter = Object.keys(spec.paths);
  result.authorized = Object.keys(ui().authSelectors.authorized().toJS());
  // "Try it out" then "Execute", clicked as a user would
  const doc = dom.window.document;
  const click = (el) => el.dispatchEvent(new dom.window.MouseEvent("click", { bubbles: true }));
  const opblock = () => [...doc.querySelectorAll(".opblock")].find(
    (el) => el.querySelector(".opblock-summary-path")?.getAttribute("data-path") === callPath
      && el.classList.contains(`opblock-${callMethod}`),
  );
  await until(() => opblock(), `the ${callMethod} ${callPath} operation on the page`);
  click(opblock().querySelector(".opblock-summary-control") || opblock().querySelector(".opblock-summary"));
  await until(() => opblock().querySelector(".try-out__btn"), "the Try it out button");
  click(opblock().querySelector(".try-out__btn"));
  if (callBody) {
    await until(() => opblock().querySelector("textarea.body-param__text"), "the body editor");
    const area = opblock().querySelector("textarea.body-param__text");
    const setter = Object.getOwnPropertyDescriptor(dom.window.HTMLTextAreaElement.prototype, "value").set;
    setter.call(area, callBody);
    area.dispatchEvent(new dom.window.Event("input", { bubbles: true }));
    area.dispatchEvent(new dom.window.Event("change", { bubbles: true }));
  }
  await until(() => opblock().querySelector(".execute"), "the Execute button");
  click(opblock().querySelector(".execute"));
  await until(() => ui().specSelectors.responseFor(callPath, callMethod), "the call's answer");
  const answer = ui().specSelectors.responseFor(callPath, callMethod).toJS();
  result.call = { status: answer.status, body: answer.text ? JSON.parse(answer.text) : null };
  result.requests = requests;
  process.stdout.write(JSON.stringify(result));
  process.exit(0);
})().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
