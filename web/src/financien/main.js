// Finance (/financien/): issuance from a spreadsheet (the library's plan first, then the issuer's
// wallet signs the batches with a progress bar, then the reconciliation), providers (add,
// update, suspend, remove) and their gas, settlement with a payment reference (what is owed per
// budget), and the end of a budget (reclaim, with a preview of what is burned). Each section is
// shown only to the role that may do it; every write is signed by the officer's own wallet.
// An owner of a Safe that holds the issuer role (four eyes) sees the same plan, then proposes
// it instead of sending; each owner signs the proposal in their own wallet (EIP-712), and once
// enough have signed, one of them executes it from their wallet and sees the same check.
import strings from "../backoffice/strings.js";
import { fieldName, problemReason } from "../backoffice/fields.js";
import {
  $, el, t, api, publicApi, setupLanguage, signIn, signOut, sendPrepared, explain, say, short, day, euro, parseEuros,
  roleName, connectWallet, officerWallet, getLang, renderViaSafe, roleList,
} from "../backoffice/common.js";

let deployment = null;
let session = null;
let budgets = [];
let providerData = { providers: [], categories: [] };
let plan = null; // the last plan shown, with the file it is for
let gasPlan = null;
let settlePrep = null;
let reclaimPrep = null;
let proposalList = [];
let safeRecon = null; // the last check after a Safe execution

const SECTIONS = { issuance: "ISSUER", providers: "PROVIDER_MANAGER", settle: "TREASURER", reclaim: "BUDGET_MANAGER" };
const has = (role) => session && session.roles.includes(role);
const viaSafe = (role) => Boolean(session && !has(role) && (session.via_safe || []).some((v) => v.role === role));
const SAFE_HERE = ["ISSUER"]; // roles held through a Safe that this page can propose for

async function init() {
  setupLanguage(strings, rerender);
  deployment = await publicApi("deployment");
  $("dev-banner").hidden = !deployment.dev_chain;
  $("signin-button").addEventListener("click", onSignIn);
  $("signout").addEventListener("click", onSignOut);
  $("plan-form").addEventListener("submit", onPlan);
  $("issue-button").addEventListener("click", onIssue);
  $("propose-button").addEventListener("click", onPropose);
  window.addEventListener("focus", () => { if (viaSafe("ISSUER")) loadProposals().catch(() => {}); }); // back from another owner's window
  $("proposals-refresh").addEventListener("click", () => loadProposals().catch((err) => say($("proposals-status"), explain(err), "bo-error")));
  $("add-form").addEventListener("submit", onAdd);
  $("manage-form").addEventListener("submit", onManage);
  $("manage-provider").addEventListener("change", fillManage);
  $("manage-action").addEventListener("change", () => { $("manage-update").hidden = $("manage-action").value !== "update"; });
  $("gas-form").addEventListener("submit", onGasPlan);
  $("gas-send").addEventListener("click", onGasSend);
  $("settle-form").addEventListener("submit", (e) => { e.preventDefault(); settlePreview(); });
  $("pay-form").addEventListener("submit", onSettle);
  $("reclaim-form").addEventListener("submit", onReclaimPreview);
  $("reclaim-button").addEventListener("click", onReclaim);
  try {
    session = await api("session");
    await showOfficer();
  } catch {
    showSignIn();
  }
  document.body.dataset.ready = "1";
}

function rerender() {
  if (session) $("officer-text").textContent = t("signedInAs", { address: session.address, roles: roleList(session) });
  if (session) renderViaSafe(session, $("via-safe"), SAFE_HERE);
  if (session) issuanceText();
  fillSelects();
  renderProviders();
  if (plan) renderPlan(plan.data);
  if (session && viaSafe("ISSUER")) renderProposals();
  if (safeRecon) renderRecon(safeRecon, "safe-recon");
}

function issuanceText() {
  $("issuance-text").textContent = t(viaSafe("ISSUER") ? "issuanceTextSafe" : "issuanceText");
}

function showSignIn() {
  session = null;
  document.body.dataset.signedIn = "0";
  $("signin").hidden = false;
  $("officer").hidden = true;
  for (const id of [...Object.keys(SECTIONS), "no-role", "via-safe", "proposals"]) $(id).hidden = true;
}

async function onSignIn() {
  const box = $("signin-status");
  say(box, t("signingIn"), "bo-warn");
  $("signin-button").disabled = true;
  try {
    session = await signIn("financien", deployment);
    say(box, "");
    await showOfficer();
  } catch (e) {
    say(box, explain(e), "bo-error");
  } finally {
    $("signin-button").disabled = false;
  }
}

async function onSignOut() {
  await signOut().catch(() => {});
  showSignIn();
  say($("signin-status"), t("signedOutNow"));
}

async function showOfficer() {
  $("signin").hidden = true;
  $("officer").hidden = false;
  $("officer-text").textContent = t("signedInAs", { address: session.address, roles: roleList(session) });
  let any = false;
  for (const [id, role] of Object.entries(SECTIONS)) {
    const here = has(role) || (SAFE_HERE.includes(role) && viaSafe(role));
    $(id).hidden = !here;
    any = any || here;
  }
  const throughSafe = renderViaSafe(session, $("via-safe"), SAFE_HERE);
  $("no-role").hidden = any || throughSafe;
  issuanceText();
  budgets = (await publicApi("budgets")).budgets;
  if (has("PROVIDER_MANAGER") || has("TREASURER")) await loadProviders();
  $("proposals").hidden = !viaSafe("ISSUER");
  if (viaSafe("ISSUER")) await loadProposals();
  fillSelects();
  document.body.dataset.signedIn = "1";
}

function budgetLabel(b) {
  return `#${b.serial} ${b.name}`;
}

function fillSelects() {
  const keep = (id) => $(id).value;
  const open = budgets.filter((b) => b.open);
  const ib = keep("issue-budget");
  $("issue-budget").replaceChildren(...open.map((b) => el("option", { value: b.budget, text: `${budgetLabel(b)} · ${t("budgetLeft", { left: euro(b.cap_cents - b.issued_cents), cap: euro(b.cap_cents) })}` })));
  if (ib) $("issue-budget").value = ib;
  const rb = keep("reclaim-budget");
  $("reclaim-budget").replaceChildren(...budgets.map((b) => el("option", { value: b.budget, text: `${budgetLabel(b)} (${day(b.valid_until)})` })));
  if (rb) $("reclaim-budget").value = rb;
  const options = () => providerData.providers.map((p) => el("option", { value: p.address, text: `${p.name || short(p.address)} (${t("pst_" + p.status)})` }));
  for (const id of ["manage-provider", "settle-provider"]) {
    const k = keep(id);
    $(id).replaceChildren(...options());
    if (k) $(id).value = k;
  }
  const ma = keep("manage-action");
  $("manage-action").replaceChildren(...["update", "suspend", "reinstate", "remove"].map((a) => el("option", { value: a, text: t("pa_" + a) })));
  if (ma) $("manage-action").value = ma;
  $("manage-update").hidden = $("manage-action").value !== "update";
  const cats = (prefix, chosen) => providerData.categories.map((c) => el("div", { class: "utrecht-form-field utrecht-form-field--checkbox" },
    el("p", { class: "utrecht-form-field__label" },
      el("input", { type: "checkbox", id: `${prefix}-cat-${c.category}`, value: String(c.category), class: "utrecht-checkbox utrecht-checkbox--html-input", checked: chosen.includes(c.category) }),
      el("label", { class: "utrecht-form-label utrecht-form-label--checkbox", for: `${prefix}-cat-${c.category}`, text: c.name }))));
  const addChosen = [...document.querySelectorAll("#add-categories input:checked")].map((i) => Number(i.value));
  $("add-categories").replaceChildren(...cats("add", addChosen));
  fillManage(cats);
}

function fillManage(cats) {
  const p = providerData.providers.find((x) => x.address === $("manage-provider").value);
  if (!p) return;
  $("manage-name").value = p.name || "";
  $("manage-limit").value = p.max_cents ? (p.max_cents / 100).toFixed(2).replace(".", ",") : "";
  const make = typeof cats === "function" ? cats : null;
  if (make) $("manage-categories").replaceChildren(...make("manage", p.categories));
  else for (const i of document.querySelectorAll("#manage-categories input")) i.checked = p.categories.includes(Number(i.value));
}

async function ensureWallet() {
  if (!officerWallet()) await connectWallet(deployment);
}

async function send(tx, box) {
  await ensureWallet();
  return sendPrepared(tx, (state, hash) => say(box, state === "wallet" ? t("walletAsk") : t("pending", { hash: short(hash) }), "bo-warn"));
}

function problemsTable(problems) {
  return el("div", { class: "cp-table-wrap" }, el("table", { class: "bo-table", id: "problems-table" },
    el("thead", {}, el("tr", {}, el("th", { text: t("line") }), el("th", { text: t("field") }), el("th", { text: t("problem") }))),
    el("tbody", {}, problems.map((p) => el("tr", {}, el("td", { text: p.line ?? "–" }), el("td", { text: fieldName(p.field) }), problemReason(p))))));
}

// ------------------------------------------------------------------ issuance
async function onPlan(e) {
  e.preventDefault();
  const file = $("issue-file").files[0];
  $("recon").hidden = true;
  $("issue-status").hidden = true;
  if (!file) {
    $("plan").hidden = false;
    $("plan-heading").textContent = "";
    say($("plan-status"), t("csvFile"), "bo-error");
    return;
  }
  const body = { csv: await file.text(), budget: $("issue-budget").value, tranche: $("issue-tranche").value };
  $("propose-status").hidden = true;
  try {
    const data = await api(viaSafe("ISSUER") ? "finance/safe/plan" : "finance/issuance/plan", body);
    plan = { body, file: file.name, data };
    renderPlan(data);
    if (viaSafe("ISSUER")) await loadProposals(); // what the other owners did meanwhile
  } catch (err) {
    $("plan").hidden = false;
    say($("plan-status"), explain(err), "bo-error");
  }
  document.body.dataset.plans = String(Number(document.body.dataset.plans || 0) + 1);
}

function renderPlan(data) {
  $("plan").hidden = false;
  $("plan-heading").textContent = t("planHeading", { file: plan.file });
  $("plan-problems").replaceChildren();
  $("plan-batches").replaceChildren();
  $("plan-figures").replaceChildren();
  $("issue-button").hidden = true;
  $("propose-button").hidden = true;
  if (!data.ok) {
    say($("plan-status"), t("planRefused", { count: data.problems.length }), "bo-error");
    $("plan-problems").replaceChildren(problemsTable(data.problems));
    return;
  }
  const fig = (k, v) => el("div", { class: "bo-figure" }, el("dt", { text: t(k) }), el("dd", { text: v }));
  $("plan-figures").replaceChildren(
    fig("f_rows", data.rows), fig("f_residents", data.residents), fig("f_new", data.new_passes),
    fig("f_already", `${data.already} (${euro(data.already_cents)})`), fig("f_toSend", `${data.to_send_rows} (${euro(data.to_send_cents)})`),
    fig("f_total", euro(data.total_cents)), fig("f_cap", euro(data.cap_cents)), fig("f_issued", euro(data.issued_cents)),
    fig("f_leftAfter", euro(data.left_after_cents)),
  );
  if (!data.batches.length) {
    say($("plan-status"), t("nothingToSend"), "bo-done");
    return;
  }
  say($("plan-status"), "");
  $("plan-batches").replaceChildren(el("h4", { class: "utrecht-heading-4", text: t("batchList") }), el("ol", { class: "utrecht-ordered-list" },
    data.batches.map((b) => el("li", { text: `${t("batchKind_" + b.kind)}: ${t("nResidents", { n: b.rows })} · ${euro(b.total_cents)}` }))));
  if (viaSafe("ISSUER")) {
    if (plan.proposed) return;
    $("propose-button").textContent = t("proposeButton", { count: data.batches.length });
    $("propose-button").hidden = false;
    return;
  }
  $("issue-button").textContent = t("issueButton", { count: data.batches.length });
  $("issue-button").hidden = false;
}

async function onIssue() {
  const { data, body } = plan;
  const box = $("issue-status");
  $("issue-button").disabled = true;
  $("issue-progress-wrap").hidden = false;
  const bar = $("issue-progress");
  bar.max = data.batches.length;
  bar.value = 0;
  const sent = [];
  const label = (done) => { $("issue-progress-label").textContent = t("issuing", { done, count: data.batches.length }); };
  label(0);
  try {
    for (const [i, b] of data.batches.entries()) {
      const { hash } = await send(b.tx, box);
      sent.push(hash);
      bar.value = i + 1;
      label(i + 1);
    }
    $("issue-progress-label").textContent = t("issuedAll", { count: data.batches.length });
    say(box, "");
  } catch (err) {
    say(box, explain(err), "bo-error");
  } finally {
    $("issue-button").disabled = false;
    $("issue-button").hidden = true;
  }
  try {
    const rec = await api("finance/issuance/reconcile", { ...body, before: data.before, sent });
    renderRecon(rec);
    budgets = (await publicApi("budgets")).budgets; // what is left under the caps now
    fillSelects();
  } catch (err) {
    say(box, explain(err), "bo-error");
  }
  document.body.dataset.issued = String(Number(document.body.dataset.issued || 0) + 1);
}

function renderRecon(rec, at = "recon") {
  $(at).hidden = false;
  if (at === "safe-recon") $("safe-recon-heading").textContent = t("safeReconHeading", { id: rec.proposal.id.slice(0, 10) });
  if (rec.problems) {
    say($(`${at}-status`), t("reconBad"), "bo-error");
    $(`${at}-lines`).replaceChildren(...rec.problems.map((p) => el("li", {}, `${p.line ?? ""} ${fieldName(p.field)}: `, problemReason(p, "span"))));
    return;
  }
  if (rec.file_rows === undefined) { // a proposal of no file this server kept: only whether it executed
    say($(`${at}-status`), rec.ok ? t("executedOnly") : t("reconBad"), rec.ok ? "bo-done" : "bo-error");
    $(`${at}-lines`).replaceChildren();
    return;
  }
  say($(`${at}-status`), rec.ok ? t(at === "safe-recon" ? "safeReconOk" : "reconOk") : t("reconBad"), rec.ok ? "bo-done" : "bo-error");
  $(`${at}-lines`).replaceChildren(
    el("li", { text: t("r_file", { rows: rec.file_rows, total: euro(rec.file_cents) }) }),
    el("li", { text: t("r_chain", { rows: rec.chain_rows, total: euro(rec.chain_cents), batches: rec.chain_batches }) }),
    el("li", { text: t("r_issued", { before: euro(rec.issued_before_cents), after: euro(rec.issued_after_cents), cap: euro(rec.cap_cents) }) }),
    ...rec.checks.map((c) => el("li", { class: c.ok ? "bo-ok" : "bo-no", text: (c.ok ? "✓ " : "✗ ") + t("check_" + c.id) })),
  );
}

// ------------------------------------------------------------------ issuance through a Safe
async function onPropose() {
  const box = $("propose-status");
  $("propose-button").disabled = true;
  say(box, "");
  try {
    const data = await api("finance/safe/propose", { ...plan.body, file: plan.file });
    if (!data.ok) {
      plan.data = data;
      renderPlan(data);
    } else if (!data.proposal) {
      plan.data = data;
      renderPlan(data);
    } else {
      plan.proposed = true;
      $("propose-button").hidden = true;
      say(box, t(data.already_proposed ? "alreadyProposed" : "proposed", { signed: data.proposal.signed, threshold: data.proposal.threshold }), data.already_proposed ? "bo-warn" : "bo-done");
      await loadProposals();
    }
  } catch (err) {
    say(box, explain(err), "bo-error");
  } finally {
    $("propose-button").disabled = false;
  }
  document.body.dataset.proposed = String(Number(document.body.dataset.proposed || 0) + 1);
}

async function loadProposals() {
  say($("proposals-status"), "");
  proposalList = (await api("finance/safe/proposals")).proposals;
  renderProposals();
}

function proposalWords(p) {
  const b = p.batches.find((x) => x.serial !== undefined);
  if (p.kind !== "issue" || !b) return el("p", { class: "utrecht-paragraph", lang: "en", text: p.description });
  const d = p.details || {};
  return el("p", { class: "utrecht-paragraph", text: t("proposalIssue", {
    total: euro(p.total_cents), budget: `#${b.serial} ${b.name}`, tranche: d.tranche ? t("proposalTranche", { tranche: d.tranche }) : "",
    residents: d.residents, new: d.new_passes, file: d.file, batches: p.batches.length,
  }) });
}

function renderProposals() {
  $("proposals-none").hidden = proposalList.length > 0;
  $("proposal-list").replaceChildren(...proposalList.map((p, i) => {
    const id = `proposal-${i}`;
    const d = p.details || {};
    const who = p.signed_by.map((a) => (a === session.address ? t("you", { address: short(a) }) : short(a))).join(", ");
    const fig = (k, v) => el("div", { class: "bo-figure" }, el("dt", { text: t(k) }), el("dd", { text: v }));
    const item = el("article", { class: "bo-proposal", "data-id": p.id, "aria-labelledby": `${id}-heading` },
      el("h3", { class: "utrecht-heading-3", id: `${id}-heading`, text: t("proposalHeading", { id: p.id.slice(0, 10) }) }),
      proposalWords(p),
      p.kind === "issue" ? el("dl", { class: "bo-figures" },
        fig("p_total", euro(p.total_cents)), fig("f_residents", String(d.residents ?? "–")), fig("f_new", String(d.new_passes ?? "–")),
        fig("p_batches", String(p.batches.length)), fig("p_proposed", d.file || "–")) : null,
      el("p", { class: "utrecht-paragraph bo-signatures", text: t("signatures", { signed: p.signed, threshold: p.threshold }) + (who ? " · " + t("signedBy", { who }) : "") }),
      el("p", { class: "utrecht-paragraph", text: p.ready ? t("readyToExecute") : p.signed >= p.threshold ? t("waitingEarlier")
        : p.signed_by_me ? t("waitForOthers", { more: p.threshold - p.signed }) : t("pleaseSign") }),
      el("details", {}, el("summary", { text: t("proposalDetails") }),
        el("p", { class: "utrecht-paragraph", text: t("proposalSafe", { safe: p.safe, owners: p.owners.map(short).join(", "), threshold: p.threshold }) }),
        d.file_sha256 ? el("p", { class: "utrecht-paragraph cp-mono", text: t("proposalFile", { file: d.file, sha: d.file_sha256 }) }) : null,
        el("ol", { class: "utrecht-ordered-list" }, p.batches.map((b) => el("li", { text: b.kind
          ? `${t("batchKind_" + b.kind)}: ${t("nResidents", { n: b.rows })} · ${euro(b.total_cents)} · ${t("batchId")} ${b.batch_id.slice(0, 18)}…`
          : b.what }))),
        el("p", { class: "utrecht-paragraph", lang: "en", text: p.description })),
      el("div", { class: "bo-actions" },
        !p.signed_by_me && p.status !== "executed" ? el("button", { type: "button", class: "utrecht-button utrecht-button--primary-action bo-sign", "data-index": i, text: t("signButton") }) : null,
        p.ready ? el("button", { type: "button", class: "utrecht-button utrecht-button--primary-action bo-execute", "data-index": i, text: t("executeButton", { count: p.batches.length }) }) : null),
      el("div", { id: `${id}-status`, role: "status", hidden: true }));
    return item;
  }));
  for (const b of document.querySelectorAll("#proposal-list .bo-sign")) b.addEventListener("click", () => onSign(Number(b.dataset.index)));
  for (const b of document.querySelectorAll("#proposal-list .bo-execute")) b.addEventListener("click", () => onExecute(Number(b.dataset.index)));
}

function proposalBox(i) {
  return $(`proposal-${i}-status`);
}

async function onSign(i) {
  const p = proposalList[i];
  let box = proposalBox(i);
  try {
    await ensureWallet();
    say(box, t("signAsk", { count: Object.keys(p.typed_data).length }), "bo-warn");
    const signatures = {};
    for (const [hash, typed] of Object.entries(p.typed_data)) {
      signatures[hash] = await officerWallet().request("eth_signTypedData_v4", [officerWallet().account, JSON.stringify(typed)]);
    }
    const data = await api("finance/safe/sign", { proposal: p.id, signatures });
    say($("propose-status"), ""); // its count of signatures is history now
    proposalList[i] = data.proposal;
    renderProposals();
    box = proposalBox(i);
    say(box, t("signedNow", { signed: data.proposal.signed, threshold: data.proposal.threshold }), "bo-done");
  } catch (err) {
    say(proposalBox(i) || box, explain(err), "bo-error");
  }
  document.body.dataset.signed = String(Number(document.body.dataset.signed || 0) + 1);
}

async function onExecute(i) {
  const p = proposalList[i];
  const box = proposalBox(i);
  const sent = [];
  let prep = null;
  try {
    prep = await api("finance/safe/execute", { proposal: p.id });
    if (prep.executed) say(box, t("executedBefore"), "bo-done");
    for (const [n, tx] of prep.txs.entries()) {
      const { hash } = await send(tx, box);
      sent.push(hash);
      say(box, t("executing", { done: n + 1, count: prep.txs.length }), "bo-warn");
    }
  } catch (err) {
    say(box, explain(err), "bo-error");
    if (!sent.length) { // nothing went out: nothing to check on chain
      document.body.dataset.executed = String(Number(document.body.dataset.executed || 0) + 1);
      return;
    }
  }
  try {
    const conf = await api("finance/safe/confirm", { proposal: p.id, sent, before: prep && prep.before });
    safeRecon = conf.recon ? { ...conf.recon, proposal: conf.proposal } : { proposal: conf.proposal, ok: conf.proposal.status === "executed", checks: [] };
    renderRecon(safeRecon, "safe-recon");
    budgets = (await publicApi("budgets")).budgets;
    fillSelects();
    await loadProposals();
  } catch (err) {
    say(box, explain(err), "bo-error");
  }
  document.body.dataset.executed = String(Number(document.body.dataset.executed || 0) + 1);
}

// ------------------------------------------------------------------ providers and gas
async function loadProviders() {
  providerData = await api("finance/providers");
  renderProviders();
}

function renderProviders() {
  $("provider-rows").replaceChildren(...providerData.providers.map((p) => el("tr", {},
    el("td", { text: p.name || "–" }), el("td", { class: "cp-mono", text: short(p.address) }), el("td", { text: p.category_names.join(", ") }),
    el("td", { text: p.max_cents ? euro(p.max_cents) : t("noLimit") }), el("td", { text: t("pst_" + p.status) }),
    el("td", { text: eth(p.gas_eth) }), el("td", { text: euro(p.owed_cents) }))));
  $("gas-text").textContent = t("gasText", { eth: eth(providerData.gas_account_eth || "0") });
}

const eth = (text) => new Intl.NumberFormat(getLang() === "nl" ? "nl-NL" : "en-GB", { maximumFractionDigits: 4 }).format(Number(text));
const chosen = (id) => [...document.querySelectorAll(`#${id} input:checked`)].map((i) => Number(i.value));

async function providerWrite(body, done) {
  const box = $("provider-status");
  say(box, "");
  try {
    const prep = await api("finance/provider/prepare", body);
    for (const tx of prep.txs || [prep.tx]) await send(tx, box);
    await loadProviders();
    fillSelects();
    say(box, done, "bo-done");
  } catch (err) {
    say(box, explain(err), "bo-error");
  }
}

async function onAdd(e) {
  e.preventDefault();
  const limit = $("add-limit").value.trim();
  const cents = limit ? parseEuros(limit) : 0;
  if (cents === null) return say($("provider-status"), t("limit") + ": 50,00", "bo-error");
  const name = $("add-name").value.trim();
  await providerWrite({ action: "add", address: $("add-address").value.trim(), name, categories: chosen("add-categories"), max_cents: cents }, t("providerAdded", { name }));
  if ($("provider-status").classList.contains("bo-done")) {
    $("add-form").reset();
    for (const box of document.querySelectorAll("#add-categories input")) box.checked = false;
  }
}

async function onManage(e) {
  e.preventDefault();
  const action = $("manage-action").value;
  const body = { action, address: $("manage-provider").value };
  if (action === "update") {
    const limit = $("manage-limit").value.trim();
    const cents = limit ? parseEuros(limit) : 0;
    if (cents === null) return say($("provider-status"), t("limit") + ": 50,00", "bo-error");
    Object.assign(body, { name: $("manage-name").value.trim(), categories: chosen("manage-categories"), max_cents: cents });
  }
  await providerWrite(body, t("providerDone"));
}

async function onGasPlan(e) {
  e.preventDefault();
  const box = $("gas-status");
  say(box, "");
  $("gas-send").hidden = true;
  try {
    gasPlan = await api("finance/gas/plan", { below: $("gas-below").value.trim(), to: $("gas-to").value.trim() });
    const names = Object.fromEntries(providerData.providers.map((p) => [p.address, p.name]));
    $("gas-list").replaceChildren(...gasPlan.top_ups.map((g) => el("li", { text: `${names[g.provider] || short(g.provider)}: ${g.before_eth} → +${g.amount_eth} ETH` })));
    if (!gasPlan.top_ups.length) say(box, t("gasNone"), "bo-done");
    else {
      $("gas-send").textContent = t("gasSend", { count: gasPlan.top_ups.length });
      $("gas-send").hidden = false;
    }
  } catch (err) {
    say(box, explain(err), "bo-error");
  }
}

async function onGasSend() {
  const box = $("gas-status");
  $("gas-send").hidden = true;
  try {
    for (const g of gasPlan.top_ups) await send(g.tx, box);
    await loadProviders();
    $("gas-list").replaceChildren();
    say(box, t("gasDone", { count: gasPlan.top_ups.length }), "bo-done");
  } catch (err) {
    say(box, explain(err), "bo-error");
  }
}

// ------------------------------------------------------------------ settlement
async function settlePreview() {
  const box = $("settle-status");
  say(box, "");
  try {
    const data = await api("finance/settle/preview", { provider: $("settle-provider").value });
    $("owed").hidden = false;
    $("owed-heading").textContent = t("owedHeading", { name: data.name || short(data.provider) });
    $("owed-rows").replaceChildren(...data.owed.map((o) => el("tr", {}, el("td", { text: `#${o.serial} ${o.name}` }), el("td", { class: "cp-num", text: euro(o.cents) }))),
      el("tr", {}, el("th", { text: t("total") }), el("th", { class: "cp-num", text: euro(data.total_cents) })));
    $("settle-button").textContent = t("settleButton", { amount: euro(data.total_cents) });
    $("pay-form").hidden = !data.owed.length;
    if (!data.owed.length) say(box, t("nothingOwed"), "bo-warn");
    settlePrep = data;
  } catch (err) {
    say(box, explain(err), "bo-error");
  }
}

async function onSettle(e) {
  e.preventDefault();
  const box = $("settle-status");
  say(box, "");
  try {
    const data = await api("finance/settle/preview", { provider: settlePrep.provider, reference: $("settle-reference").value });
    if (data.used) {
      const e = data.earlier;
      say(box, e ? t("referenceUsedBy", { reference: data.reference, amount: euro(e.cents), name: e.name || e.provider, block: e.block }) : t("referenceUsed"), "bo-error");
      return;
    }
    await send(data.tx, box);
    say(box, t("settled", { amount: euro(data.total_cents), name: data.name || short(data.provider), reference: data.reference }), "bo-done");
    $("pay-form").hidden = true;
    if (has("PROVIDER_MANAGER")) await loadProviders();
  } catch (err) {
    say(box, explain(err), "bo-error");
  }
}

// ------------------------------------------------------------------ reclaim
async function onReclaimPreview(e) {
  e.preventDefault();
  const box = $("reclaim-preview");
  say($("reclaim-status"), "");
  $("reclaim-button").hidden = true;
  try {
    reclaimPrep = await api("finance/reclaim/preview", { budget: $("reclaim-budget").value });
    const r = reclaimPrep;
    if (!r.ended) return say(box, t("reclaimNotEnded", { until: day(r.valid_until) }), "bo-warn");
    if (!r.holders) return say(box, t("reclaimNothing"), "bo-done");
    const keep = r.issued_cents - r.settled_cents - r.reclaimed_cents - r.corrected_cents - r.burn_cents;
    say(box, t("reclaimWill", { amount: euro(r.burn_cents), holders: r.holders, txs: r.txs.length }) + " " + t("reclaimKeep", { amount: euro(keep) }), "bo-warn");
    $("reclaim-button").textContent = t("reclaimButton", { amount: euro(r.burn_cents) });
    $("reclaim-button").hidden = false;
  } catch (err) {
    say(box, explain(err), "bo-error");
  }
}

async function onReclaim() {
  const box = $("reclaim-status");
  $("reclaim-button").hidden = true;
  try {
    for (const tx of reclaimPrep.txs) await send(tx, box);
    say(box, t("reclaimed", { amount: euro(reclaimPrep.burn_cents) }), "bo-done");
    say($("reclaim-preview"), "");
  } catch (err) {
    say(box, explain(err), "bo-error");
  }
}

init().catch((e) => {
  document.body.dataset.ready = "1";
  say($("signin-status"), explain(e), "bo-error");
});
