// The desk (/balie/): sign in with the registrar's wallet; look a pass up by its number; enrol a
// new pass from the pass app's address QR (optionally with credit from a running issuance); a
// lost phone or sheet (migrate); suspend, reinstate, revoke with a reason; import and export the
// register. The admin sees the register's access log. Every change is a transaction the server
// prepared and the officer's wallet signs; the register is written only once it is on chain.
import strings from "../backoffice/strings.js";
import { fieldName } from "../backoffice/fields.js";
import {
  $, el, t, api, publicApi, setupLanguage, translate, signIn, signOut, sendPrepared, explain, say, short, day,
  moment, euro, parseEuros, roleName, AddressScanner, connectWallet, officerWallet, warmUp, renderViaSafe, roleList,
} from "../backoffice/common.js";
import { freshKey, wipe, addressOf, signCoupons, pdfBlob } from "./sheet.js";

let deployment = null;
let session = null;
let scanner = null;
let reasons = {};
let current = null; // the pass on screen: {entry, pass}
let budgets = [];

const busy = (on) => {
  for (const b of document.querySelectorAll("#desk button[type=submit]")) b.disabled = on;
  document.body.dataset.busy = on ? "1" : "0";
};

async function init() {
  setupLanguage(strings, rerender);
  deployment = await publicApi("deployment");
  $("dev-banner").hidden = !deployment.dev_chain;
  scanner = new AddressScanner($("video"), $("scan-status"), deployment.chain_id, (address, input) => {
    $("scanner").hidden = true;
    const note = $(input.id + "-read");
    if (note) note.textContent = t("qrRead", { address: short(address) });
  });
  $("signin-button").addEventListener("click", onSignIn);
  $("signout").addEventListener("click", onSignOut);
  $("find-form").addEventListener("submit", (e) => { e.preventDefault(); find($("find-number").value); });
  $("enrol-form").addEventListener("submit", onEnrol);
  $("enrol-credit").addEventListener("change", () => { $("enrol-credit-fields").hidden = !$("enrol-credit").checked; });
  $("enrol-scan").addEventListener("click", () => toggleScan($("enrol-address"), $("enrol-scan")));
  $("migrate-scan").addEventListener("click", () => toggleScan($("migrate-address"), $("migrate-scan")));
  $("migrate-form").addEventListener("submit", onMigrate);
  $("status-form").addEventListener("submit", onStatus);
  $("status-action").addEventListener("change", fillReasons);
  $("import-button").addEventListener("click", onImport);
  $("export-button").addEventListener("click", onExport);
  $("log-refresh").addEventListener("click", loadLog);
  $("sheet-form").addEventListener("submit", onSheet);
  $("sheet-print").addEventListener("click", () => { if (sheetUrl) window.open(sheetUrl, "_blank", "noopener"); });
  const end = new Date(Date.UTC(new Date().getUTCFullYear(), 11, 31));
  $("enrol-until").value = end.toISOString().slice(0, 10);
  try {
    session = await api("session");
    await showOfficer();
  } catch {
    showSignIn();
  }
  document.body.dataset.ready = "1";
}

function rerender() {
  if (session) renderOfficer();
  if (session) renderViaSafe(session, $("via-safe"));
  fillActions();
  if (current) renderPass(current);
  if (sheetShown) {
    showSheet(sheetShown.number, sheetShown.pdf);
    if (sheetShown.done) say($("sheet-status"), sheetDoneText(sheetShown), "bo-done");
  }
}

function showSignIn() {
  session = null;
  document.body.dataset.signedIn = "0";
  $("signin").hidden = false;
  $("officer").hidden = true;
  $("desk").hidden = true;
  $("log").hidden = true;
  $("via-safe").hidden = true;
}

async function onSignIn() {
  const box = $("signin-status");
  say(box, t("signingIn"), "bo-warn");
  $("signin-button").disabled = true;
  try {
    session = await signIn("balie", deployment);
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
  scanner.stop();
  current = null;
  forgetSheet();
  $("pass").hidden = true;
  showSignIn();
  say($("signin-status"), t("signedOutNow"));
}

function renderOfficer() {
  $("officer-text").textContent = t("signedInAs", { address: session.address, roles: roleList(session) });
}

async function showOfficer() {
  $("signin").hidden = true;
  $("officer").hidden = false;
  renderOfficer();
  renderViaSafe(session, $("via-safe"));
  const registrar = session.roles.includes("REGISTRAR");
  $("desk").hidden = !registrar;
  $("log").hidden = !session.roles.includes("ADMIN");
  $("enrol-credit-note").hidden = session.roles.includes("ISSUER");
  $("enrol-credit").disabled = !session.roles.includes("ISSUER");
  const sheetOk = session.roles.includes("REGISTRAR") && session.roles.includes("ISSUER");
  $("sheet-note").hidden = sheetOk;
  $("sheet-form").hidden = !sheetOk;
  if (registrar) {
    reasons = (await api("desk/reasons")).reasons;
    fillActions();
    const now = deployment.time;
    budgets = (await publicApi("budgets")).budgets.filter((b) => b.open);
    $("enrol-budget").replaceChildren(...budgets.map((b) => el("option", { value: b.budget, text: `#${b.serial} ${b.name} (${euro(b.cap_cents - b.issued_cents)})` })));
    $("sheet-budget").replaceChildren(...budgets.map((b) => el("option", { value: b.budget, text: `#${b.serial} ${b.name} (${euro(b.cap_cents - b.issued_cents)})` })));
    warmUp();
    void now;
  }
  if (!$("log").hidden) await loadLog();
  document.body.dataset.signedIn = "1";
}

function fillActions() {
  const sel = $("status-action");
  const keep = sel.value;
  sel.replaceChildren(...Object.keys(reasons).map((a) => el("option", { value: a, text: t("act_" + a) })));
  if (keep) sel.value = keep;
  fillReasons();
}

function fillReasons() {
  const action = $("status-action").value;
  const sel = $("status-reason");
  sel.replaceChildren(el("option", { value: "", text: t("pickReason") }), ...(reasons[action] || []).map((r) => el("option", { value: r, text: t("r_" + r) })));
  $("revoke-warning").hidden = action !== "revoke";
}

async function toggleScan(input, button) {
  if (scanner.running && scanner.target === input) {
    scanner.stop();
    $("scanner").hidden = true;
    return;
  }
  $("scanner").hidden = false;
  await scanner.start(input, button);
}

async function ensureWallet() {
  if (!officerWallet()) await connectWallet(deployment);
}

async function send(tx, box) {
  await ensureWallet();
  return sendPrepared(tx, (state, hash) => say(box, state === "wallet" ? t("walletAsk") : t("pending", { hash: short(hash) }), "bo-warn"));
}

// ------------------------------------------------------------------ find
async function find(number, quiet = false) {
  const box = $("find-status");
  if (!quiet) say(box, "");
  try {
    const data = await api("desk/find", { number });
    if (!data.found) {
      $("pass").hidden = true;
      current = null;
      say(box, t("notFound", { number: data.number }), "bo-warn");
      return;
    }
    current = data;
    renderPass(data);
    say($("pass-status"), "");
  } catch (e) {
    say(box, explain(e), "bo-error");
  }
}

function renderPass({ entry, pass }) {
  $("pass").hidden = false;
  $("pass-heading").textContent = t("passHeading", { number: entry.number });
  const item = (k, v, mono) => el("div", { class: "utrecht-data-list__item" }, el("dt", { class: "utrecht-data-list__item-key", text: k }), el("dd", { class: "utrecht-data-list__item-value" + (mono ? " cp-mono" : ""), text: v }));
  const credit = pass.balances.length ? pass.balances.map((b) => `#${b.serial} ${b.name}: ${euro(b.cents)}`).join(" · ") : t("noCredit");
  $("pass-facts").replaceChildren(
    item(t("address"), entry.address, true),
    item(t("statusRegister"), t("st_" + entry.status)),
    item(t("statusChain"), t("st_" + pass.status)),
    item(t("validUntil"), pass.valid_until ? day(pass.valid_until) : "–"),
    item(t("credit"), credit),
  );
  $("history").replaceChildren(...entry.history.map((c) => el("tr", {},
    el("td", { text: moment(c.time) }),
    el("td", { text: t("kind_" + c.kind) }),
    el("td", { class: "cp-mono", text: c.old_address ? `${short(c.old_address)} → ${short(c.address)}` : short(c.address) }),
    el("td", { text: c.reason ? t("r_" + c.reason) : "" }),
    el("td", { class: "cp-mono", text: short(c.officer) }),
  )));
  const revoked = entry.status === "revoked";
  $("migrate-form").hidden = revoked;
  $("status-form").hidden = revoked;
}

// ------------------------------------------------------------------ enrol
async function onEnrol(e) {
  e.preventDefault();
  const box = $("enrol-status");
  say(box, "");
  const body = { number: $("enrol-number").value, address: $("enrol-address").value.trim(), valid_until: $("enrol-until").value };
  if ($("enrol-credit").checked) {
    const cents = parseEuros($("enrol-amount").value);
    if (!cents) return say(box, t("amount") + ": 12,50", "bo-error");
    body.credit = { budget: $("enrol-budget").value, amount_cents: cents, tranche: $("enrol-tranche").value };
  }
  busy(true);
  try {
    const prep = await api("desk/enrol/prepare", body);
    let hash = null;
    if (!prep.link_only) hash = (await send(prep.tx, box)).hash;
    const done = await api("desk/enrol/confirm", { number: prep.number, address: prep.address, tx: hash });
    const text = prep.link_only ? t("linkedOnly") : prep.credit ? t("enrolledCredit", { number: prep.number, amount: euro(prep.credit.amount_cents) }) : t("enrolled", { number: prep.number, address: short(prep.address) });
    say(box, text, "bo-done");
    current = done;
    renderPass(done);
    $("enrol-form").reset();
    $("enrol-address-read").textContent = "";
    $("enrol-credit-fields").hidden = true;
    $("enrol-until").value = new Date(Date.UTC(new Date().getUTCFullYear(), 11, 31)).toISOString().slice(0, 10);
  } catch (err) {
    say(box, explain(err), "bo-error");
  } finally {
    busy(false);
  }
}

// ------------------------------------------------------------------ a coupon sheet (sheet.js)
let sheetUrl = null;
let sheetShown = null; // {number, pdf: {checks, total_cents, coupons}, done}: to redraw it in the other language
const sheetDoneText = ({ number, pdf }) => t("sheetDone", { number, amount: euro(pdf.total_cents), count: pdf.coupons });

function forgetSheet() {
  if (sheetUrl) URL.revokeObjectURL(sheetUrl);
  sheetUrl = null;
  sheetShown = null;
  $("sheet-ready").hidden = true;
  $("sheet-download").setAttribute("href", "#");
}

async function onSheet(e) {
  e.preventDefault();
  const box = $("sheet-status");
  say(box, "");
  forgetSheet();
  const number = $("sheet-number").value;
  const cents = parseEuros($("sheet-amount").value);
  if (!cents) return say(box, t("amount") + ": 12,50", "bo-error");
  const ask = { budget: $("sheet-budget").value, amount_cents: cents, denominations: $("sheet-denominations").value.trim(),
    tranche: $("sheet-tranche").value };
  busy(true);
  let key = null;
  let prep = null;
  let pdf = null;
  let made = false;
  try {
    say(box, t("sheetPlanning"), "bo-warn");
    const planned = await api("desk/sheet/plan", ask);
    key = freshKey();
    made = true;
    const address = addressOf(key);
    prep = await api("desk/enrol/prepare", { number, address, valid_until: planned.valid_until,
      credit: { budget: ask.budget, amount_cents: cents, tranche: ask.tranche } });
    say(box, t("sheetSigning"), "bo-warn");
    const codes = await signCoupons(key, planned.plan, planned.chain_id, planned.contract);
    wipe(key); // the coupons are signed: the key is no longer needed by anyone
    key = null;
    say(box, t("sheetDrawing"), "bo-warn");
    pdf = await api("desk/sheet/pdf", { ...ask, codes });
    codes.length = 0;
    if (pdf.holder !== address) throw new Error("the sheet's holder is not the key's address");
  } catch (err) {
    say(box, explain(err) + " " + t(made ? "sheetNotSent" : "sheetRefused"), "bo-error");
    busy(false);
    return;
  } finally {
    wipe(key);
    key = null;
  }
  try {
    const { hash } = await send(prep.tx, box);
    sheetUrl = URL.createObjectURL(pdfBlob(pdf.pdf_base64));
    showSheet(prep.number, pdf);
    try {
      const done = await api("desk/enrol/confirm", { number: prep.number, address: prep.address, tx: hash });
      current = done;
      renderPass(done);
      sheetShown.done = true;
      say(box, sheetDoneText(sheetShown), "bo-done");
      $("sheet-form").reset();
      $("sheet-denominations").value = "10,5";
    } catch (err) {
      say(box, t("sheetOnChainNoRegister", { error: explain(err) }), "bo-error");
    }
  } catch (err) {
    say(box, explain(err) + " " + t("sheetNotSent"), "bo-error");
  } finally {
    pdf.pdf_base64 = null;
    busy(false);
  }
}

function showSheet(number, pdf) {
  sheetShown = { number, pdf: { checks: pdf.checks, total_cents: pdf.total_cents, coupons: pdf.coupons }, done: Boolean(sheetShown && sheetShown.done) };
  $("sheet-ready").hidden = false;
  $("sheet-ready-heading").textContent = t("sheetReadyHeading", { number });
  $("sheet-checks").textContent = t("sheetChecks", { checks: pdf.checks.join(" · ") });
  const a = $("sheet-download");
  a.setAttribute("href", sheetUrl);
  a.setAttribute("download", `citypass-bonnen-${number}.pdf`);
}

// ------------------------------------------------------------------ lost phone or sheet
async function onMigrate(e) {
  e.preventDefault();
  const box = $("pass-status");
  say(box, "");
  busy(true);
  try {
    const number = current.entry.number;
    const prep = await api("desk/migrate/prepare", { number, new_address: $("migrate-address").value.trim() });
    let hash = null;
    for (const tx of prep.txs) hash = (await send(tx, box)).hash;
    const done = await api("desk/migrate/confirm", { number, new_address: prep.new_address, tx: hash });
    current = done;
    renderPass(done);
    $("migrate-address").value = "";
    $("migrate-address-read").textContent = "";
    say(box, t("migrated", { number, address: short(prep.new_address) }), "bo-done");
  } catch (err) {
    say(box, explain(err), "bo-error");
  } finally {
    busy(false);
  }
}

// ------------------------------------------------------------------ suspend, reinstate, revoke
async function onStatus(e) {
  e.preventDefault();
  const box = $("pass-status");
  say(box, "");
  const body = { number: current.entry.number, action: $("status-action").value, reason: $("status-reason").value };
  if (!body.reason) return say(box, t("pickReason"), "bo-error");
  busy(true);
  try {
    const prep = await api("desk/status/prepare", body);
    const { hash } = await send(prep.tx, box);
    const done = await api("desk/status/confirm", { ...body, tx: hash });
    current = done;
    renderPass(done);
    say(box, t("statusDone", { number: body.number, status: t("st_" + done.entry.status) }), "bo-done");
  } catch (err) {
    say(box, explain(err), "bo-error");
  } finally {
    busy(false);
  }
}

// ------------------------------------------------------------------ the register
export function problemsTable(problems) {
  return el("div", { class: "cp-table-wrap" }, el("table", { class: "bo-table" },
    el("thead", {}, el("tr", {}, el("th", { text: t("line") }), el("th", { text: t("field") }), el("th", { text: t("problem") }))),
    el("tbody", {}, problems.map((p) => el("tr", {}, el("td", { text: p.line ?? "–" }), el("td", { text: fieldName(p.field) }), el("td", { text: p.reason }))))));
}

async function onImport() {
  const box = $("register-status");
  const file = $("import-file").files[0];
  say(box, "");
  $("import-problems").replaceChildren();
  if (!file) return say(box, t("importFile"), "bo-error");
  try {
    const data = await api("register/import", { csv: await file.text() });
    if (!data.ok) {
      say(box, t("importRefused", { count: data.problems.length }), "bo-error");
      $("import-problems").replaceChildren(problemsTable(data.problems));
      return;
    }
    say(box, t("imported", { count: data.imported, total: data.total }));
  } catch (err) {
    say(box, explain(err), "bo-error");
  }
}

async function onExport() {
  const box = $("register-status");
  say(box, "");
  try {
    const data = await api("register/export");
    const url = URL.createObjectURL(new Blob([data.csv], { type: "text/csv" }));
    const a = el("a", { href: url, download: "citypass-register.csv" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    say(box, t("exported", { count: data.count }));
  } catch (err) {
    say(box, explain(err), "bo-error");
  }
}

async function loadLog() {
  try {
    const data = await api("register/log");
    $("log-rows").replaceChildren(...data.lookups.map((x) => el("tr", {},
      el("td", { text: moment(x.time) }), el("td", { class: "cp-mono", text: x.officer }), el("td", { text: t("la_" + x.action) }),
      el("td", { text: x.number || "–" }), el("td", { text: x.found ? t("yes") : t("no") }))));
  } catch (err) {
    $("log-rows").replaceChildren(el("tr", {}, el("td", { colspan: "5", text: explain(err) })));
  }
}

init().catch((e) => {
  document.body.dataset.ready = "1";
  say($("signin-status"), explain(e), "bo-error");
});
void translate;
