// The dashboard: namespaces, pods and services kept live through watches, each service's
// proxy URL, and a pod's logs as they come. Plain modules, no build step, no request to
// any origin but the page's and the API's.
//
// The API is this page's origin ("/", where `kproxy --www` serves it) unless the page's
// URL says otherwise: ?api=/prefix/ (kproxy --api-prefix) or ?api=http://127.0.0.1:8001/
// (a page served elsewhere; kproxy must list that page's origin in --cors-allowed-origins).
//
// Stable hooks for tests and scripts (see README.md): [data-pod="NS/NAME"][data-phase],
// [data-service="NS/NAME"] a[data-proxy-link], [data-namespace="NAME"][data-phase],
// [data-watch][data-state], [data-logs="NS/NAME"], [data-error="SOURCE"],
// body[data-connection].

import { ApiError, Collection, key, request } from "./api.js";

const PHASE_SYMBOLS = { Running: "●", Pending: "◐", Succeeded: "✓", Failed: "✕", Active: "●", Terminating: "◌" };
const LOG_LINES_KEPT = 5000;

const api = apiBase();
const state = { namespace: "", pods: new Map(), services: new Map(), namespaces: new Map(), watches: {} };
const dirty = new Set();
let renderQueued = false;

function apiBase() {
  const asked = new URLSearchParams(location.search).get("api");
  const base = new URL(asked || "/", location.href);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  return base;
}

function $(selector, root = document) {
  return root.querySelector(selector);
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
}

// -- errors ------------------------------------------------------------------------

function showError(source, error) {
  const area = $("[data-errors]");
  let line = area.querySelector(`[data-error="${CSS.escape(source)}"]`);
  if (!line) {
    line = element("p", { "data-error": source });
    area.append(line);
  }
  const text = error instanceof ApiError ? error.describe() : String(error && error.message ? error.message : error);
  line.textContent = `${label(source)}: ${text}`;
}

function clearError(source) {
  const line = $(`[data-errors] [data-error="${CSS.escape(source)}"]`);
  if (line) line.remove();
}

function label(source) {
  return source.charAt(0).toUpperCase() + source.slice(1);
}

// -- watches -------------------------------------------------------------------------

function watchState(name, status, detail) {
  state.watches[name] = status;
  const section = $(`[data-watch="${name}"]`);
  section.dataset.state = status;
  const texts = {
    listing: "(loading…)",
    live: "(live)",
    relisting: `(re-listing: ${detail || "the watch ended"})`,
    error: "(error: retrying)",
  };
  $("[data-state-text]", section).textContent = texts[status] || "";
  if (status === "relisting") section.dataset.relisted = detail || "";
  if (status === "error") showError(name, detail);
  else if (status === "live") clearError(name);
  updateConnection();
}

function updateConnection() {
  const states = Object.values(state.watches);
  let connection = "connecting";
  if (states.length === 3 && states.every((s) => s === "live")) connection = "live";
  else if (states.includes("error")) connection = "error";
  document.body.dataset.connection = connection;
  const words = {
    connecting: ["◌", "Connecting…"],
    live: ["●", "Live: changes appear as they happen"],
    error: ["✕", "Not connected: see the errors below; retrying"],
  }[connection];
  $("[data-connection-symbol]").textContent = words[0];
  $("[data-connection-text]").textContent = words[1];
}

function follow(name, path) {
  const collection = new Collection(api, path, {
    onChange: (items) => {
      state[name] = items;
      queueRender(name);
    },
    onState: (status, detail) => {
      if (status === "live") $(`[data-watch="${name}"]`).dataset.resourceVersion = collection.resourceVersion;
      watchState(name, status, detail);
    },
  });
  collection.run(new AbortController().signal);
}

function queueRender(name) {
  dirty.add(name);
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    const names = [...dirty];
    dirty.clear();
    if (names.includes("namespaces")) renderNamespaces();
    if (names.includes("pods") || names.includes("namespaces")) renderPods();
    if (names.includes("services") || names.includes("namespaces")) renderServices();
  }, 0);
}

// -- rendering ----------------------------------------------------------------------

function sorted(items) {
  return [...items.values()].sort((a, b) => key(a).localeCompare(key(b)));
}

function visible(items) {
  return sorted(items).filter((o) => !state.namespace || o.metadata.namespace === state.namespace);
}

function phaseOf(pod) {
  if (pod.metadata.deletionTimestamp) return "Terminating";
  return (pod.status && pod.status.phase) || "Unknown";
}

function phaseCell(phase) {
  return element("span", { class: `phase phase-${phase.toLowerCase()}` },
    element("span", { "aria-hidden": "true" }, PHASE_SYMBOLS[phase] || "?"), ` ${phase}`);
}

function age(timestamp) {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(timestamp)) / 1000));
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

function ageCell(timestamp) {
  return element("time", { datetime: timestamp || "", "data-age": timestamp || "" }, timestamp ? age(timestamp) : "");
}

// Rows are kept, keyed by their hook, while their object's resourceVersion stays the
// same; a changed one is rebuilt in place (its focused button keeps the focus).
function reconcile(tbody, attribute, objects, build) {
  const existing = new Map([...tbody.children].map((row) => [row.getAttribute(attribute), row]));
  let previous = null;
  for (const object of objects) {
    const id = key(object);
    const signature = object.metadata.resourceVersion || "";
    let row = existing.get(id);
    existing.delete(id);
    if (!row || !signature || row.dataset.signature !== signature) {
      const fresh = build(object);
      fresh.dataset.signature = signature;
      if (row) {
        const focused = row.contains(document.activeElement) && document.activeElement.dataset.action;
        row.replaceWith(fresh);
        if (focused) fresh.querySelector(`[data-action="${focused}"]`)?.focus();
      }
      row = fresh;
    }
    if (previous ? previous.nextElementSibling !== row : tbody.firstElementChild !== row) {
      if (previous) previous.after(row);
      else tbody.prepend(row);
    }
    previous = row;
  }
  for (const row of existing.values()) row.remove();
}

function setCount(section, shown, total) {
  $("[data-count]", section).textContent = shown === total ? `(${total})` : `(${shown} of ${total})`;
  $("[data-empty]", section).hidden = shown !== 0;
}

function renderNamespaces() {
  const list = $('[data-list="namespaces"]');
  const all = list.firstElementChild;
  const existing = new Map([...list.children].slice(1).map((li) => [li.dataset.namespace, li]));
  let previous = all;
  for (const ns of sorted(state.namespaces)) {
    const name = ns.metadata.name;
    const phase = (ns.status && ns.status.phase) || "Active";
    let li = existing.get(name);
    existing.delete(name);
    if (!li) {
      li = element("li", { "data-namespace": name },
        element("button", { type: "button", "data-filter": name, "aria-pressed": "false" }, name), " ",
        element("span", { class: "phase-text" }));
    }
    li.dataset.phase = phase;
    li.lastElementChild.replaceChildren(phaseCell(phase));
    if (previous.nextElementSibling !== li) previous.after(li);
    previous = li;
  }
  for (const li of existing.values()) {
    if (li.dataset.namespace === state.namespace) chooseNamespace("");
    li.remove();
  }
}

function chooseNamespace(name) {
  state.namespace = name;
  for (const button of document.querySelectorAll("[data-filter]")) {
    button.setAttribute("aria-pressed", String(button.dataset.filter === name));
  }
  renderPods();
  renderServices();
}

function podRow(pod) {
  const meta = pod.metadata;
  const id = key(pod);
  const phase = phaseOf(pod);
  const statuses = (pod.status && pod.status.containerStatuses) || [];
  const containers = (pod.spec && pod.spec.containers) || [];
  const ready = `${statuses.filter((s) => s.ready).length}/${containers.length}`;
  const restarts = statuses.reduce((sum, s) => sum + (s.restartCount || 0), 0);
  const row = element("tr", { "data-pod": id, "data-phase": (pod.status && pod.status.phase) || "Unknown",
                              "data-terminating": meta.deletionTimestamp ? "true" : null },
    element("td", {}, meta.namespace),
    element("th", { scope: "row" }, meta.name),
    element("td", {}, phaseCell(phase)),
    element("td", {}, ready),
    element("td", {}, String(restarts)),
    element("td", {}, (pod.spec && pod.spec.nodeName) || "—"),
    element("td", {}, (pod.status && pod.status.podIP) || "—"),
    element("td", {}, ageCell(meta.creationTimestamp)),
    element("td", {}, element("button", { type: "button", "data-action": "logs", "data-target": id,
                                           "aria-label": `Logs of pod ${id}` }, "Logs")));
  return row;
}

function renderPods() {
  const section = $('[data-watch="pods"]');
  const pods = visible(state.pods);
  reconcile($('[data-rows="pods"]'), "data-pod", pods, podRow);
  setCount(section, pods.length, state.pods.size);
  const open = $("[data-logs-panel]").dataset.logs;
  if (open && !state.pods.has(open) && state.watches.pods === "live") logState(`pod ${open} is gone`);
}

// The service proxy URL for one port, as `kubectl cluster-info` builds it: the port's
// name (or number), and https: when the port is https.
function proxyPath(service, port) {
  const meta = service.metadata;
  const https = port.name === "https" || port.port === 443 ? "https:" : "";
  const name = `${https}${meta.name}:${port.name || port.port}`;
  return `api/v1/namespaces/${encodeURIComponent(meta.namespace)}/services/${name}/proxy/`;
}

function serviceRow(service) {
  const meta = service.metadata;
  const spec = service.spec || {};
  const ports = spec.ports || [];
  const links = ports
    .filter((p) => (p.protocol || "TCP") === "TCP")
    .map((p) => element("li", {}, element("a", { href: new URL(proxyPath(service, p), api).href, "data-proxy-link": p.name || String(p.port) },
                                              `${meta.name}:${p.name || p.port}`)));
  const row = element("tr", { "data-service": key(service) },
    element("td", {}, meta.namespace),
    element("th", { scope: "row" }, meta.name),
    element("td", {}, spec.type || "ClusterIP"),
    element("td", {}, spec.clusterIP || "—"),
    element("td", {}, ports.map((p) => `${p.port}/${p.protocol || "TCP"}${p.name ? ` (${p.name})` : ""}`).join(", ") || "—"),
    element("td", {}, links.length ? element("ul", { class: "links" }, ...links) : "—"));
  return row;
}

function renderServices() {
  const section = $('[data-watch="services"]');
  const services = visible(state.services);
  reconcile($('[data-rows="services"]'), "data-service", services, serviceRow);
  setCount(section, services.length, state.services.size);
}

function refreshAges() {
  for (const cell of document.querySelectorAll("[data-age]")) {
    if (cell.dataset.age) cell.textContent = age(cell.dataset.age);
  }
}

// -- logs ----------------------------------------------------------------------------

let logs = null; // { id, controller, opener }

function logState(text) {
  $("[data-logs-state]").textContent = text;
}

function openLogs(id, opener) {
  const pod = state.pods.get(id);
  if (!pod) return;
  const panel = $("[data-logs-panel]");
  panel.hidden = false;
  panel.dataset.logs = id;
  $("[data-logs-title]").textContent = `pod ${id}`;
  const select = $("[data-logs-container]");
  const containers = ((pod.spec && pod.spec.containers) || []).map((c) => c.name);
  select.replaceChildren(...containers.map((name) => element("option", { value: name }, name)));
  select.disabled = containers.length < 2;
  streamLogs(id, containers[0] || "", opener);
  $("#logs-title").focus();
}

async function streamLogs(id, container, opener) {
  stopLogs();
  const controller = new AbortController();
  logs = { id, controller, opener: opener || (logs && logs.opener) };
  const output = $("[data-logs-output]");
  output.textContent = "";
  output.dataset.stick = "true";
  output.dataset.lines = "0";
  const [namespace, name] = id.split("/");
  const query = new URLSearchParams({ follow: "true", tailLines: "200" });
  if (container) query.set("container", container);
  const path = `api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}/log?${query}`;
  $("[data-logs-stop]").disabled = false;
  logState(`Following ${container ? `container ${container} of ` : ""}pod ${id}…`);
  try {
    const response = await request(api, path, { signal: controller.signal, accept: "text/plain, */*" });
    clearError("logs");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      append(output, value);
    }
    logState(`The log stream of pod ${id} ended.`);
  } catch (error) {
    if (controller.signal.aborted) return;
    logState(`Logs unavailable.`);
    showError("logs", error instanceof ApiError ? error : new ApiError(0, "", `the log stream dropped (${error.message})`, path));
  } finally {
    if (logs && logs.controller === controller) $("[data-logs-stop]").disabled = true;
  }
}

// New lines keep the view at the end, unless the reader scrolled up to read.
function append(output, text) {
  output.append(text);
  if (output.childNodes.length > 200) output.normalize();
  let lines = output.textContent.split("\n");
  if (lines.length > LOG_LINES_KEPT) {
    lines = lines.slice(-LOG_LINES_KEPT);
    output.textContent = lines.join("\n");
  }
  if (output.dataset.stick !== "false") output.scrollTop = output.scrollHeight;
  output.dataset.lines = String(lines.length - 1);
}

function stopLogs() {
  if (logs) logs.controller.abort();
}

function closeLogs() {
  stopLogs();
  const panel = $("[data-logs-panel]");
  panel.hidden = true;
  delete panel.dataset.logs;
  clearError("logs");
  const opener = logs && logs.opener;
  logs = null;
  const button = opener && document.querySelector(`[data-action="logs"][data-target="${CSS.escape(opener)}"]`);
  if (button) button.focus();
}

// -- start ---------------------------------------------------------------------------

function wire() {
  $("[data-api-base]").textContent = api.href;
  document.addEventListener("click", (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.dataset.filter !== undefined) chooseNamespace(target.dataset.filter);
    else if (target.dataset.action === "logs") openLogs(target.dataset.target, target.dataset.target);
    else if ("logsStop" in target.dataset) {
      stopLogs();
      logState("Stopped following.");
    } else if ("logsClose" in target.dataset) closeLogs();
  });
  const output = $("[data-logs-output]");
  output.addEventListener("scroll", () => {
    output.dataset.stick = String(output.scrollTop + output.clientHeight >= output.scrollHeight - 8);
  });
  $("[data-logs-container]").addEventListener("change", (event) => {
    if (logs) streamLogs(logs.id, event.target.value);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("[data-logs-panel]").hidden) closeLogs();
  });
  setInterval(refreshAges, 10000);
  for (const name of ["namespaces", "pods", "services"]) state.watches[name] = "listing";
  updateConnection();
  follow("namespaces", "api/v1/namespaces");
  follow("pods", "api/v1/pods");
  follow("services", "api/v1/services");
}

wire();
