// The chutes list: every chute of the signed-in user, refreshed every two seconds.
import { ago, call, el, percent, phaseBadge, poll, sparkline } from "./common.js";

const list = document.getElementById("chutes");
const updated = document.getElementById("updated");
const SPARK_MINUTES = 30;

function reasonOf(chute) {
  if (chute.phase === "failed") return `failed while ${chute.failed_phase || "starting"}: ${chute.error || "see its logs"}`;
  if (chute.phase === "pending") {
    const waiting = chute.instances.find((i) => i.waiting_for);
    return waiting ? waiting.waiting_for : "waiting for GPUs";
  }
  return "";
}

function card(chute) {
  const badge = el("span");
  const reason = reasonOf(chute);
  phaseBadge(badge, chute.phase, reason);
  const stats = chute.stats;
  const gpus = chute.gpus_per_instance ?? "–";
  return el("article", { class: "card chute", "data-slug": chute.slug },
    el("div", { class: "chute-head" },
      el("h2", {}, el("a", { href: `/dashboard/chutes/${encodeURIComponent(chute.slug)}`, text: chute.slug })),
      badge),
    reason ? el("p", { class: "reason", text: reason }) : null,
    el("dl", { class: "facts compact" },
      el("dt", { text: "Instances" }), el("dd", { class: "instances", text: `${chute.ready_instances} ready of ${chute.instances.length}` }),
      el("dt", { text: "GPUs / instance" }), el("dd", { class: "gpus", text: String(gpus) }),
      el("dt", { text: "Last deploy" }), el("dd", { text: `v${chute.version}, ${ago(chute.updated_at)}` }),
      el("dt", { text: "Requests / min" }), el("dd", { class: "rpm", text: String(stats.requests_per_minute) }),
      el("dt", { text: "Error rate" }), el("dd", { class: "error-rate", text: percent(stats.error_rate) })),
    el("div", { class: "chute-foot" },
      el("a", { class: "url", href: chute.url, text: chute.url }),
      sparkline(stats.requests.slice(-SPARK_MINUTES), stats.errors.slice(-SPARK_MINUTES))));
}

async function refresh() {
  const chutes = await call("/dashboard/api/chutes");
  if (chutes.length === 0) {
    list.replaceChildren(document.getElementById("empty").content.cloneNode(true));
  } else {
    // replace only cards that changed, and keep the keyboard focus where it was
    const focused = document.activeElement?.getAttribute("href");
    const cards = chutes.map((chute) => {
      const old = list.querySelector(`article[data-slug="${CSS.escape(chute.slug)}"]`);
      const fresh = card(chute);
      return old && old.isEqualNode(fresh) ? old : fresh;
    });
    list.replaceChildren(...cards);
    if (focused && !list.contains(document.activeElement)) {
      [...list.querySelectorAll("a")].find((a) => a.getAttribute("href") === focused)?.focus();
    }
  }
  updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

poll(refresh, 2000);
