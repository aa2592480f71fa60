// posbridge merchant console: vanilla JS, live state from server-sent events (/events).
// Everything shown comes from the lane's masked snapshot; no clear card data reaches this page.
"use strict";

const $ = (id) => document.getElementById(id);
let state = null;
let attached = null;  // customer id picked to attach to the next sale
const SHOW_REASON = new Set(["declined", "refused", "failed"]);
const SOURCE_NAMES = {checkin: "pay by check-in", keyed: "keyed entry"};

function exponent() { return state && state.lane ? state.lane.exponent : 2; }

function money(minor, currency) {
  const e = exponent();
  const value = (minor / Math.pow(10, e)).toFixed(e);
  return (currency || (state && state.lane.currency) || "") + " " + value;
}

function parseAmount(text) {
  const cleaned = text.trim().replace(",", ".");
  if (!/^\d+(\.\d{1,2})?$/.test(cleaned)) return null;
  const e = exponent();
  const [whole, frac = ""] = cleaned.split(".");
  if (frac.length > e) return null;
  const minor = parseInt(whole, 10) * Math.pow(10, e) + parseInt((frac + "00").slice(0, e) || "0", 10);
  return minor > 0 ? minor : null;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {}),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || response.statusText);
  if (data.state) render(data.state);
  return data;
}

function showError(message) {
  const status = $("sale-status");
  status.className = "status error";
  status.textContent = message;
}

function customerName(id) {
  const person = state && state.counter.find((p) => p.customer === id);
  return person ? person.name : id;
}

function renderSale() {
  const sale = state.sale;
  const status = $("sale-status");
  const open = sale && (sale.status === "waiting" || sale.status === "confirm");
  $("cancel-button").hidden = !open;
  $("confirm-button").hidden = !(sale && sale.status === "confirm");
  $("charge-button").disabled = open;
  $("amount-input").disabled = open;
  if (!sale) {
    status.className = "status idle";
    status.textContent = "Enter an amount";
    return;
  }
  const labels = {
    waiting: "Waiting for card — swipe or insert",
    approved: "Approved", declined: "Declined", offline: "Stored offline",
    refused: "Refused", cancelled: "Cancelled", processing: "Sending to the processor…",
    confirm: "Confirm?",
  };
  status.className = "status " + sale.status;
  status.textContent = "";
  status.append(labels[sale.status] || sale.status, " · " + money(sale.amount, sale.currency));
  const details = [sale.card, sale.customer ? customerName(sale.customer) : null, sale.reason].filter(Boolean);
  if (details.length) status.append(el("small", {}, details.join(" · ")));
}

function renderCounter() {
  const list = $("counter-list");
  list.replaceChildren();
  if (attached && !state.counter.some((p) => p.customer === attached)) attached = null;
  for (const person of state.counter) {
    const selected = person.customer === attached;
    const distance = person.distance_m != null ? person.distance_m.toFixed(1) + " m" : "";
    list.append(el("li", {class: selected ? "selected" : "", "data-customer": person.customer},
      el("span", {class: "who"}, person.name, el("small", {}, [person.zone, distance].filter(Boolean).join(" · "))),
      el("button", {type: "button", class: "attach", onclick: () => { attached = selected ? null : person.customer; render(state); }},
        selected ? "Attached ✓" : "Attach"),
      el("button", {type: "button", class: "pay", onclick: () => payByCheckin(person.customer)}, "Pay by check-in")));
  }
  $("counter-empty").hidden = state.counter.length > 0;
  const box = $("attached-customer");
  box.hidden = !attached;
  box.textContent = attached ? "Customer: " + customerName(attached) : "";
}

function renderQueue() {
  const queue = state.queue;
  for (const name of ["pending", "offline", "forwarded", "declined"]) $("count-" + name).textContent = queue.counts[name] || 0;
  const list = $("queue-list");
  list.replaceChildren();
  for (const txn of queue.items) {
    list.append(el("li", {"data-key": txn.key},
      el("span", {}, txn.card || SOURCE_NAMES[txn.source] || txn.source,
        el("span", {class: "state " + txn.state}, txn.label)),
      el("span", {class: "amt"}, money(txn.amount, txn.currency)),
      el("span", {class: "meta"}, [txn.customer_name, SHOW_REASON.has(txn.state) ? txn.reason : null,
        new Date(txn.updated_at * 1000).toLocaleTimeString()].filter(Boolean).join(" · "))));
  }
  const banner = $("offline-banner");
  banner.hidden = !queue.offline;
  $("offline-total").textContent = "Offline total " + money(queue.offline_total) + " of " + money(queue.offline_limit) + " limit.";
  const pill = $("processor-status");
  pill.className = "pill " + (queue.offline ? "offline" : "online");
  pill.textContent = queue.offline ? "processor offline" : "processor online";
}

function renderAlerts() {
  const list = $("alert-list");
  list.replaceChildren();
  for (const alert of state.alerts) {
    list.append(el("li", {class: alert.level},
      el("time", {}, new Date(alert.t * 1000).toLocaleTimeString()), alert.text));
  }
  $("alerts-empty").hidden = state.alerts.length > 0;
}

function render(next) {
  // an answer that arrived after a newer event from the same lane process
  if (state && next.instance === state.instance && next.version < state.version) return;
  state = next;
  $("lane-id").textContent = state.lane.id;
  $("currency").textContent = state.lane.currency;
  renderSale(); renderCounter(); renderQueue(); renderAlerts();
}

async function payByCheckin(customer) {
  const amount = parseAmount($("amount-input").value);
  if (amount === null) { showError("Enter an amount first"); return; }
  try { await post("api/pay-by-checkin", {amount, customer}); } catch (error) { showError(error.message); }
}

$("sale-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const amount = parseAmount($("amount-input").value);
  if (amount === null) { showError("Enter an amount such as 12.50"); return; }
  try { await post("api/sale", {amount, customer: attached}); } catch (error) { showError(error.message); }
});

$("confirm-button").addEventListener("click", async () => {
  try { await post("api/sale/confirm"); } catch (error) { showError(error.message); }
});

$("cancel-button").addEventListener("click", async () => {
  try { await post("api/sale/cancel"); } catch (error) { showError(error.message); }
});

document.querySelector(".keypad").addEventListener("click", (event) => {
  const key = event.target.closest("button") && event.target.closest("button").dataset.key;
  if (!key) return;
  const input = $("amount-input");
  if (input.disabled) return;
  if (key === "back") input.value = input.value.slice(0, -1);
  else if (key !== "." || !input.value.includes(".")) input.value += key;
});

function connect() {
  const source = new EventSource("events");
  source.addEventListener("state", (event) => render(JSON.parse(event.data)));
  source.onerror = () => {
    const pill = $("processor-status");
    pill.className = "pill"; pill.textContent = "reconnecting…";
  };
}

fetch("api/state").then((r) => r.json()).then(render).catch(() => {});
connect();
