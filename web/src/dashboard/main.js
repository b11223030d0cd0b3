// The public dashboard: draws POST /api/dashboard/summary and polls it for new events.
// Every figure comes from the server (the report library over the event index); this script
// only formats and lays out. The charts are the server's SVG; each has a table beside it.

import { UI, date, dateTime, euros, fill, number, percent } from "./i18n.js";

const params = new URLSearchParams(location.search);
const POLL_MS = Math.min(60_000, Math.max(1_000, Number(params.get("poll")) || 5_000));
const GAS_LOW_WEI = 10n ** 16n; // 0.01 ETH: a few hundred payments on a cheap chain
const CHARTS = ["spending_time", "providers", "take_up", "where"];
const MAIN_FIGURES = ["issued", "redeemed", "refunded", "settled", "held_by_providers", "reclaimed", "corrected",
  "held_by_residents"];

const state = {
  lang: localStorage.getItem("cp-lang") === "en" ? "en" : "nl",
  data: null,
  version: null,
  asOf: null,
  timer: null,
  busy: false,
};

const $ = (id) => document.getElementById(id);
const t = (key, values) => fill(UI[state.lang][key] ?? key, values);
const money = (cents) => euros(cents, state.lang);

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of [].concat(children)) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// ------------------------------------------------------------------ the fixed words
function renderWords() {
  document.documentElement.lang = state.lang;
  document.title = t("pageTitle");
  for (const node of document.querySelectorAll("[data-t]")) {
    if (node.id === "asof" && state.data) continue;
    node.textContent = t(node.dataset.t);
  }
  for (const node of document.querySelectorAll("[data-t-label]")) node.setAttribute("aria-label", t(node.dataset.tLabel));
  $("lang").lang = state.lang === "nl" ? "en" : "nl";
}

// ------------------------------------------------------------------ tables
// A cell is a string/number, or {text | node, num, attrs}; the first cell of a row is its header.
const norm = (c) => (c !== null && typeof c === "object" && !(c instanceof Node) ? c : { text: c });

function cell(spec, header, scope) {
  const cls = [header ? "utrecht-table__header-cell" : "utrecht-table__cell",
    spec.num ? "cp-num utrecht-table__cell--numeric" : ""].join(" ").trim();
  const node = el(header ? "th" : "td", { class: cls, scope, ...(spec.attrs || {}) });
  if (spec.node !== undefined) node.append(spec.node);
  else node.textContent = spec.text ?? "";
  return node;
}

function table({ caption, head, rows, foot, id }) {
  const row = (cells) => el("tr", { class: "utrecht-table__row" },
    cells.map((c, i) => (i === 0 ? cell(norm(c), true, "row") : cell(norm(c), false))));
  return el("table", { class: "utrecht-table db-table", id }, [
    caption ? el("caption", { class: "utrecht-table__caption cp-visually-hidden", text: caption }) : null,
    el("thead", { class: "utrecht-table__header" }, [
      el("tr", { class: "utrecht-table__row" }, head.map((h) => cell(norm(h), true, "col"))),
    ]),
    el("tbody", { class: "utrecht-table__body" }, rows.map(row)),
    foot ? el("tfoot", { class: "utrecht-table__footer" }, [row(foot)]) : null,
  ]);
}

const centsCell = (cents, figure, budget, provider) => ({
  text: money(cents),
  num: true,
  attrs: { "data-figure": figure, "data-cents": cents, "data-budget": budget, "data-provider": provider },
});

// ------------------------------------------------------------------ sections
function renderAsOf() {
  const a = state.asOf;
  if (!a) return;
  $("asof").textContent = t("asOf", { block: number(a.block, state.lang), time: dateTime(a.time, state.lang) });
  $("asof").dataset.block = a.block;
  $("live").textContent = t("live", { seconds: Math.round(POLL_MS / 1000) });
  document.body.dataset.block = a.block;
}

function renderFailures(d) {
  const failed = d.checks.filter((c) => !c.ok);
  $("failures").hidden = failed.length === 0;
  $("failures-heading").textContent = t("failHeading", { count: failed.length });
  $("failures-list").replaceChildren(...failed.map((c) =>
    el("li", { class: "utrecht-unordered-list__item" }, [
      el("strong", { text: t("group_" + c.group) + ": " }),
      el("span", { lang: "en", text: c.text }),
    ])));
}

function moneyFields(d) {
  return MAIN_FIGURES.filter((f) => d.money_fields.includes(f));
}

function renderFigures(d) {
  const tot = d.totals;
  const box = $("figures");
  if (!tot) {
    box.replaceChildren(el("p", { class: "utrecht-paragraph", text: t("noData") }));
    $("budget-figures-wrap").replaceChildren();
    return;
  }
  const items = moneyFields(d).map((f) =>
    el("div", { class: "db-figure" }, [
      el("dt", { class: "db-figure__label", text: t(f) }),
      el("dd", { class: "db-figure__value", "data-figure": f, "data-cents": tot[f + "_cents"], text: money(tot[f + "_cents"]) }),
    ]));
  items.push(el("div", { class: "db-figure" }, [
    el("dt", { class: "db-figure__label", text: t("takeUp") }),
    el("dd", { class: "db-figure__value", "data-figure": "take_up", "data-share": tot.take_up, text: percent(tot.take_up, state.lang) }),
    el("dd", { class: "db-figure__note", text: t("takeUpText", { share: percent(tot.take_up, state.lang), spent: number(tot.residents_who_spent, state.lang), credited: number(tot.residents_credited, state.lang) }) }),
  ]));
  box.replaceChildren(el("dl", { class: "db-figures__list" }, items));

  const fields = moneyFields(d);
  const head = [t("budget"), ...fields.map((f) => ({ text: t(f), num: true })), { text: t("takeUp"), num: true }];
  const rows = d.budgets.map((b) => [
    { text: b.name, attrs: { "data-budget-name": b.budget } },
    ...fields.map((f) => centsCell(b[f + "_cents"], f, b.budget)),
    { text: t("takeUpCell", { share: percent(b.take_up, state.lang), spent: b.residents_who_spent, credited: b.residents_credited }), num: true, attrs: { "data-figure": "take_up", "data-budget": b.budget, "data-share": b.take_up } },
  ]);
  const foot = [t("total"), ...fields.map((f) => centsCell(tot[f + "_cents"], f, "total")),
    { text: percent(tot.take_up, state.lang), num: true }];
  $("budget-figures-wrap").replaceChildren(table({ caption: t("perBudget"), head, rows, foot, id: "budget-figures" }));
}

function renderChecks(d) {
  $("checks").replaceChildren(...d.checks.map((c) =>
    el("li", { class: "db-check " + (c.ok ? "db-check--ok" : "db-check--failed"), "data-ok": c.ok ? "1" : "0" }, [
      el("span", { class: "db-check__icon", "aria-hidden": "true", text: c.ok ? "✓" : "✗" }),
      el("span", { class: "cp-visually-hidden", text: (c.ok ? t("checkOk") : t("checkFailed")) + ": " }),
      el("span", { class: "db-check__group", text: t("group_" + c.group) }),
      el("span", { class: "db-check__text", lang: "en", text: c.text }),
    ])));
  $("checked-at").textContent = t("checkedAt", { block: number(d.chain_checked_block, state.lang) })
    + (d.chain_check_pending ? " " + t("checkPending", { block: number(d.computed_block, state.lang) }) : "");
}

function chartTable(name, d) {
  const parts = d.where_parts;
  if (name === "spending_time") {
    const weeks = [...new Set(d.weeks.map((w) => w.week))].sort();
    const cats = [...new Set(d.weeks.map((w) => w.category_name))].sort();
    const net = new Map(d.weeks.map((w) => [w.week + "|" + w.category_name, w.net_cents]));
    const sum = (c) => d.weeks.filter((w) => w.category_name === c).reduce((a, w) => a + w.net_cents, 0);
    return table({
      caption: t("chart_spending_time"),
      head: [t("week"), ...cats.map((c) => ({ text: c, num: true }))],
      rows: weeks.map((wk) => [wk, ...cats.map((c) => ({ text: money(net.get(wk + "|" + c) || 0), num: true }))]),
      foot: [t("total"), ...cats.map((c) => ({ text: money(sum(c)), num: true }))],
    });
  }
  if (name === "providers") {
    return table({
      caption: t("chart_providers"),
      head: [t("provider"), { text: t("paid"), num: true }, { text: t("owed"), num: true }, { text: t("received"), num: true }],
      rows: providersWithMoney(d).map((p) => [providerName(p), { text: money(p.settled_cents), num: true },
        { text: money(p.unsettled_cents), num: true }, { text: money(p.settled_cents + p.unsettled_cents), num: true }]),
    });
  }
  if (name === "take_up") {
    return table({
      caption: t("chart_take_up"),
      head: [t("budget"), { text: t("takeUp"), num: true }],
      rows: d.budgets.map((b) => [b.name, { text: t("takeUpCell", { share: percent(b.take_up, state.lang), spent: b.residents_who_spent, credited: b.residents_credited }), num: true }]),
    });
  }
  return table({
    caption: t("chart_where"),
    head: [t("budget"), ...parts.map((p) => ({ text: t(p), num: true })), { text: t("issued"), num: true }],
    rows: d.budgets.map((b) => [b.name, ...parts.map((p) => ({ text: money(b[p + "_cents"]), num: true })), { text: money(b.issued_cents), num: true }]),
  });
}

function providersWithMoney(d) {
  return d.providers.filter((p) => p.received_cents || p.settled_cents || p.unsettled_cents)
    .sort((a, b) => b.settled_cents + b.unsettled_cents - (a.settled_cents + a.unsettled_cents));
}

const providerName = (p) => p.name || `${p.address.slice(0, 6)}…${p.address.slice(-4)}`;

function chartCaption(name, d) {
  const join = (xs) => xs.join("; ") || t("noData");
  if (name === "spending_time") {
    const cats = [...new Set(d.weeks.map((w) => w.category_name))].sort();
    return t("chart_spending_time_cap", { figures: join(cats.map((c) => `${c} ${money(d.weeks.filter((w) => w.category_name === c).reduce((a, w) => a + w.net_cents, 0))}`)) });
  }
  if (name === "providers") {
    return t("chart_providers_cap", { figures: join(providersWithMoney(d).map((p) => `${providerName(p)}: ${t("paid").toLowerCase()} ${money(p.settled_cents)}, ${t("owed").toLowerCase()} ${money(p.unsettled_cents)}`)) });
  }
  if (name === "take_up") {
    return t("chart_take_up_cap", { figures: join(d.budgets.map((b) => `${b.name} ${percent(b.take_up, state.lang)}`)) });
  }
  return t("chart_where_cap", { figures: d.where_parts.map((p) => `${t(p).toLowerCase()} ${money(d.totals[p + "_cents"])}`).join(", ") });
}

function renderCharts(d) {
  const open = new Set([...document.querySelectorAll("#charts details[open]")].map((n) => n.id));
  const figures = CHARTS.map((name) => {
    const id = "chart-" + name.replace("_", "-");
    // The server's SVG (every text escaped there; the CSP runs no inline script anyway), in
    // two layouts: the stylesheet shows the narrow one on a phone, the wide one elsewhere.
    const wide = el("div", { class: "db-chart__svg db-chart__svg--wide" });
    wide.innerHTML = (d.charts || {})[name] || "";
    const narrow = el("div", { class: "db-chart__svg db-chart__svg--narrow" });
    narrow.innerHTML = (d.charts_narrow || {})[name] || "";
    const details = el("details", { class: "db-chart__table", id: id + "-table" }, [
      el("summary", { text: t("asTable") }),
      el("div", { class: "cp-table-wrap db-scroll", tabindex: 0, role: "region", "aria-label": `${t("chart_" + name)}: ${t("asTable").toLowerCase()}` }, [chartTable(name, d)]),
    ]);
    if (open.has(details.id)) details.open = true;
    return el("figure", { class: "db-chart cp-card", id, "aria-labelledby": id + "-heading" }, [
      el("h3", { class: "utrecht-heading-3", id: id + "-heading", text: t("chart_" + name) }),
      wide,
      narrow,
      el("figcaption", { class: "utrecht-paragraph db-chart__caption", text: chartCaption(name, d) }),
      details,
    ]);
  });
  $("charts").replaceChildren(...figures);
}

function eth(wei) {
  const n = Number(BigInt(wei) / 10n ** 12n) / 1e6;
  return `${n.toLocaleString(state.lang === "nl" ? "nl-NL" : "en-GB", { maximumFractionDigits: 4 })} ETH`;
}

function renderProviders(d) {
  $("providers-intro").textContent = t("providersIntro", { percent: d.refund_flag_percent });
  const head = [t("provider"), t("categories"), t("status"), { text: t("payments"), num: true }, { text: t("received"), num: true },
    { text: t("refunded"), num: true }, { text: t("paid"), num: true }, { text: t("owed"), num: true }, { text: t("gasLeft"), num: true },
    t("attention")];
  const rows = d.providers.map((p) => {
    const flags = [];
    if (p.refund_flag) flags.push(el("span", { class: "db-flag", "data-flag": "refunds", text: t("refundFlag", { percent: percent(p.refund_percent / 100, state.lang, 1), limit: d.refund_flag_percent }) }));
    if (p.status === "active" && BigInt(p.gas_wei) < GAS_LOW_WEI) flags.push(el("span", { class: "db-flag", "data-flag": "gas", text: t("gasLow") }));
    const name = el("span", {}, [
      el("span", { class: "db-provider-name", text: p.name || t("unnamed") }),
      el("br"),
      el("span", { class: "cp-mono cp-muted db-address", text: `${p.address.slice(0, 6)}…${p.address.slice(-4)}`, title: p.address }),
    ]);
    return [
      { node: name, attrs: { "data-provider": p.address } },
      (p.category_names || []).join(", ") || t("none"),
      t("status_" + p.status) + (p.paused ? ` (${t("paused")})` : ""),
      { text: number(p.redemptions, state.lang), num: true, attrs: { "data-figure": "payments", "data-provider": p.address, "data-count": p.redemptions } },
      centsCell(p.received_cents, "received", null, p.address),
      centsCell(p.refunded_cents, "refunded", null, p.address),
      centsCell(p.settled_cents, "settled", null, p.address),
      centsCell(p.unsettled_cents, "unsettled", null, p.address),
      { text: eth(p.gas_wei), num: true },
      { node: flags.length ? el("span", { class: "db-flags" }, flags) : document.createTextNode(t("none")) },
    ];
  });
  $("providers-wrap").replaceChildren(table({ caption: t("providersHeading"), head, rows, id: "providers" }));
}

function renderBudgets(d) {
  const head = [t("budget"), t("category"), { text: t("cap"), num: true }, { text: t("issued"), num: true }, t("window"),
    { text: t("daysLeft"), num: true }, t("status"), t("reclaimable")];
  const rows = d.budgets.map((b) => {
    const status = b.ended ? t("ended") : b.not_started ? t("notStarted") : t("open");
    const warn = b.ending_soon ? el("span", { class: "db-flag db-flag--warning", "data-flag": "ending", text: t("endingSoon", { days: b.days_left }) }) : null;
    const reclaim = b.ended ? t("reclaimNow", { amount: money(b.reclaimable_cents) }) : t("reclaimLater", { amount: money(b.reclaimable_after_end_cents) });
    return [
      b.name,
      b.category_name,
      centsCell(b.cap_cents, "cap", b.budget),
      centsCell(b.issued_cents, "issued", b.budget),
      t("windowText", { from: date(b.valid_from, state.lang), until: date(b.valid_until, state.lang) }),
      { text: b.ended ? "0" : number(b.days_left, state.lang), num: true, attrs: { "data-days-left": b.days_left } },
      { node: el("span", {}, [document.createTextNode(status), warn ? el("br") : null, warn]) },
      { text: reclaim, attrs: { "data-figure": "reclaimable", "data-budget": b.budget, "data-cents": b.ended ? b.reclaimable_cents : b.reclaimable_after_end_cents } },
    ];
  });
  $("budgets-wrap").replaceChildren(table({ caption: t("budgetsHeading"), head, rows, id: "budgets" }));
}

const EXPORT_LABELS = {
  "budgets.csv": "export_budgets", "categories.csv": "export_categories", "providers.csv": "export_providers",
  "weeks.csv": "export_weeks", "redemptions.csv": "export_redemptions", "report.html": "export_html",
  "report.zip": "export_zip", "events.csv": "export_events",
};

function renderExports(d) {
  $("export-note").hidden = d.report_available;
  const names = d.exports.filter((n) => d.report_available || n === "events.csv");
  $("exports").replaceChildren(...names.map((n) =>
    el("li", { class: "utrecht-unordered-list__item" }, [
      el("a", { class: "utrecht-link", href: "/dashboard/export/" + n, download: true, text: t(EXPORT_LABELS[n] || n) }),
    ])));
}

function renderAll() {
  const d = state.data;
  renderWords();
  renderAsOf();
  $("dev-banner").hidden = !d.dev_chain;
  renderFailures(d);
  renderFigures(d);
  renderChecks(d);
  renderCharts(d);
  renderProviders(d);
  renderBudgets(d);
  renderExports(d);
  $("footer").textContent = t("footer", { contract: d.contract, chain: d.chain_id });
  document.body.dataset.version = d.version;
  document.body.dataset.ok = d.ok ? "1" : "0";
  if (document.body.dataset.ready !== "1") performance.mark("cp-figures"); // bench/dashboard.py reads it
  document.body.dataset.ready = "1";
}

// ------------------------------------------------------------------ live
async function fetchSummary(have) {
  const r = await fetch("/api/dashboard/summary", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(have ? { lang: state.lang, have } : { lang: state.lang }),
    cache: "no-store",
  });
  let body = null;
  try {
    body = await r.json();
  } catch {
    throw new Error(`HTTP ${r.status}`);
  }
  if (!r.ok) throw new Error((body && body.error && body.error.message) || `HTTP ${r.status}`);
  return body;
}

async function refresh({ full = false } = {}) {
  clearTimeout(state.timer);
  if (state.busy) return;
  state.busy = true;
  try {
    const answer = await fetchSummary(full ? null : state.version);
    $("load-error").hidden = true;
    state.asOf = answer.as_of;
    if (answer.unchanged) {
      renderAsOf();
    } else {
      const before = state.data;
      state.data = answer;
      state.version = answer.version;
      renderAll();
      if (before && !full) $("asof").textContent += " " + t("updated", { block: number(answer.as_of.block, state.lang) });
    }
  } catch (e) {
    $("load-error").textContent = t("loadFailed", { message: e.message });
    $("load-error").hidden = false;
  } finally {
    state.busy = false;
    if (!document.hidden) state.timer = setTimeout(refresh, POLL_MS);
  }
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh();
  else clearTimeout(state.timer);
});

$("lang").addEventListener("click", () => {
  state.lang = state.lang === "nl" ? "en" : "nl";
  localStorage.setItem("cp-lang", state.lang);
  renderWords();
  if (state.data) renderAll();
  refresh({ full: true }); // the charts' words come from the server
});

renderWords();
refresh({ full: true });
