// metastream dashboard: theme switch, live updates, run selection. No inline script (CSP).

const root = document.documentElement;
const saved = localStorage.getItem("metastream-theme");
if (saved) root.dataset.theme = saved;

function currentTheme() {
  if (root.dataset.theme) return root.dataset.theme;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

// Live: the server pushes the position the views committed; the page fetches itself again
// and swaps the parts marked data-live (one renderer for first view and updates).
let refreshing = false;
let pending = false;
let lastRefresh = 0;
const MIN_GAP_MS = 250;

async function refresh() {
  if (refreshing) { pending = true; return; }
  refreshing = true;
  try {
    const wait = lastRefresh + MIN_GAP_MS - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    lastRefresh = Date.now();
    const response = await fetch(location.href, { headers: { "x-metastream-live": "1" } });
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    let changed = false;
    for (const fresh of doc.querySelectorAll("[data-live]")) {
      const old = document.getElementById(fresh.id);
      if (!old || old.innerHTML === fresh.innerHTML) continue;
      keepState(old, fresh);
      old.replaceWith(document.importNode(fresh, true));
      changed = true;
    }
    if (changed) document.dispatchEvent(new CustomEvent("metastream:updated"));
  } catch (err) {
    console.warn("live refresh failed", err);
  } finally {
    refreshing = false;
    if (pending) { pending = false; refresh(); }
  }
}

// Keep what the user did on the old content: open steps, checked runs.
function keepState(old, fresh) {
  const open = new Set([...old.querySelectorAll("details[open] .step-name")].map((e) => e.textContent));
  const closed = new Set([...old.querySelectorAll("details:not([open]) .step-name")].map((e) => e.textContent));
  for (const d of fresh.querySelectorAll("details")) {
    const name = d.querySelector(".step-name")?.textContent;
    if (open.has(name)) d.open = true;
    if (closed.has(name)) d.open = false;
  }
  const checked = new Set([...old.querySelectorAll("input[type=checkbox]:checked")].map((e) => e.value));
  for (const box of fresh.querySelectorAll("input[type=checkbox]")) {
    if (checked.has(box.value)) box.checked = true;
  }
}

// Runs with many steps: a step's cards load when it is opened (from the step's own page).
async function loadStep(details) {
  if (!details.open || details.dataset.loaded || !details.dataset.src) return;
  details.dataset.loaded = "1";
  try {
    const response = await fetch(details.dataset.src);
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const body = doc.getElementById("step-body");
    const target = details.querySelector(".step-cards");
    if (body && target) {
      body.querySelector("h2")?.remove();
      target.replaceChildren(...[...body.childNodes].map((n) => document.importNode(n, true)));
    }
  } catch (err) {
    delete details.dataset.loaded;
    console.warn("could not load the step", err);
  }
}
function loadOpenSteps() {
  for (const d of document.querySelectorAll("details[data-src][open]")) loadStep(d);
}

function setLive(state, text) {
  const el = document.getElementById("live");
  if (!el) return;
  el.dataset.state = state;
  el.querySelector(".live-text").textContent = text;
}

function follow() {
  if (!document.body.dataset.position) {  // a page not drawn from the views (login, errors)
    document.getElementById("live")?.remove();
    return;
  }
  const historical = new URLSearchParams(location.search).get("as_of");
  if (historical) { setLive("paused", "as of " + historical); return; }
  const source = new EventSource("/api/v1/stream");
  let first = true;
  const rendered = document.body.dataset.position;
  source.addEventListener("open", () => setLive("live", "live"));
  source.addEventListener("error", () => setLive("offline", "reconnecting"));
  source.addEventListener("commit", (event) => {
    setLive("live", "live");
    const position = String(JSON.parse(event.data).position);
    const wasFirst = first;
    first = false;
    if (wasFirst && position === rendered) return;  // the state the page was rendered from
    document.body.dataset.position = position;
    refresh();
  });
}

function selection() {
  const button = document.getElementById("compare-button");
  if (!button) return;
  const count = document.getElementById("selected-count");
  const update = () => {
    const n = document.querySelectorAll("input[name=runs][form=compare-form]:checked").length;
    button.disabled = n === 0 || n > 20;
    count.textContent = n === 0 ? "select up to 20 runs" : n > 20 ? `${n} selected: at most 20` : `${n} selected`;
  };
  document.addEventListener("change", (e) => { if (e.target.name === "runs") update(); });
  document.addEventListener("metastream:updated", update);
  update();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("theme")?.addEventListener("click", () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    root.dataset.theme = next;
    localStorage.setItem("metastream-theme", next);
    document.dispatchEvent(new CustomEvent("metastream:theme"));
  });
  selection();
  document.addEventListener("toggle", (e) => { if (e.target.matches?.("details[data-src]")) loadStep(e.target); }, true);
  document.addEventListener("metastream:updated", loadOpenSteps);
  follow();
});
