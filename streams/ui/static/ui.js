// kflow ui: the little JavaScript the pages use (no framework, no build step).
//  - [data-live]: every data-every ms, fetch the data-live URL (the page's region rendered alone) and swap it in,
//    unless "live" is unchecked, the region is done (data-done), or a form in it is being edited;
//  - form[data-action]: send the form as JSON (POST); a textarea[data-json] must parse as JSON first; show the
//    answer (data-ok, with {field} filled from the JSON answer) or the error, then refresh the live regions.
"use strict";

function liveOn() {
  const box = document.getElementById("live");
  return !box || box.checked;
}

function editing(region) {
  const active = document.activeElement;
  if (active && region.contains(active) && active.matches("input, textarea, select")) return true;
  return region.querySelector("[data-dirty]") !== null;
}

async function refresh(region, force) {
  if (!force && (!liveOn() || region.hasAttribute("data-done") || editing(region))) return;
  let response;
  try {
    response = await fetch(region.dataset.live, { headers: { Accept: "text/html" } });
  } catch (err) {
    region.dataset.stale = String(err);
    return;
  }
  if (!response.ok) {
    region.dataset.stale = String(response.status);
    return;
  }
  const open = [...region.querySelectorAll("details[open][id]")].map((d) => d.id);
  region.innerHTML = await response.text();
  delete region.dataset.stale;
  open.forEach((id) => { const d = document.getElementById(id); if (d) d.open = true; });
  const status = region.querySelector("[data-status]");
  if (status && status.dataset.status !== "running") region.setAttribute("data-done", "");
  bindForms(region);
}

function refreshAll() {
  document.querySelectorAll("[data-live]").forEach((region) => refresh(region, true));
}

function fill(template, data) {
  return template.replace(/\{(\w+)\}/g, (_, key) => (data && key in data ? String(data[key]) : ""));
}

function show(form, text, ok) {
  const out = form.querySelector("[data-result]");
  if (!out) return;
  out.textContent = text;
  out.className = "result " + (ok ? "ok" : "bad");
}

async function submit(form) {
  const body = {};
  for (const field of form.querySelectorAll("input[name], textarea[name], select[name]")) {
    if (field.hasAttribute("data-json")) {
      try {
        body[field.name] = JSON.parse(field.value);
      } catch (err) {
        show(form, "not JSON: " + err.message, false);
        return;
      }
    } else if (field.value !== "") {
      body[field.name] = field.value;
    }
  }
  show(form, "sending…", true);
  let response, data;
  try {
    response = await fetch(form.dataset.action, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    data = await response.json();
  } catch (err) {
    show(form, String(err), false);
    return;
  }
  if (!response.ok) {
    show(form, data.error || response.statusText, false);
    return;
  }
  form.querySelectorAll("[data-dirty]").forEach((f) => f.removeAttribute("data-dirty"));
  show(form, fill(form.dataset.ok || "done", data), true);
  document.querySelectorAll("[data-live]").forEach((region) => region.removeAttribute("data-done"));
  setTimeout(refreshAll, 300);
}

function bindForms(root) {
  root.querySelectorAll("form[data-action]").forEach((form) => {
    if (form.dataset.bound) return;
    form.dataset.bound = "1";
    form.addEventListener("submit", (event) => { event.preventDefault(); submit(form); });
    form.querySelectorAll("textarea, input:not([type=hidden])").forEach((field) => {
      field.addEventListener("input", () => field.setAttribute("data-dirty", ""));
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  bindForms(document);
  document.querySelectorAll("[data-live]").forEach((region) => {
    const every = Number(region.dataset.every || 3000);
    setInterval(() => refresh(region, false), every);
  });
});
