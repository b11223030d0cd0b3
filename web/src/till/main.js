// The provider's till (/till/): connect the wallet, scan the pass, show what the holder is
// entitled to, pre-check as the clerk types, pay through the wallet, and never tell the clerk
// anything ambiguous once the wallet accepted a transaction. Offline, scans wait in a queue.
// The rules and numbers come from the server (the Python library); the page only does the
// wallet, the camera, the QR and the words.
import { api, ApiError, Offline, rpc } from "./api.js";
import { DROP_AFTER_BLOCKS, DROP_AFTER_MS, DROP_IDLE_MS, encodeBatch, encodeRedeem, encodeRefund, redemptionHolder, skippedIn, waitForReceipt } from "./contract.js";
import { amsterdamMidnight, fill, formatCents, formatDate, formatTime, parseEuros, UI } from "./i18n.js";
import { checkNumber, isCoupon } from "./coupon.js";
import { parsePassQr, PassQrError } from "./passqr.js";
import { Camera, decodeFile, warmUp } from "./scan.js";
import * as store from "./store.js";
import { discoverWallets, isRejection, Wallet } from "./wallet.js";

const $ = (id) => document.getElementById(id);
const DEFAULT_OFFLINE_LIMIT = 1000; // cents per offline scan until the provider sets its own
const PROBE_MS = 2500;

const state = {
  lang: localStorage.getItem("cp-lang") === "en" ? "en" : "nl",
  messages: {},
  deployment: null,
  budgets: [],
  wallets: [],
  wallet: null,
  provider: null, // /api/provider answer for the connected account
  online: true,
  scan: null, // {qr, check, offline, entries, scannedAt}
  selected: null, // budget id (string) of the chosen entry
  precheckSeq: 0,
  precheck: null, // {budget, amount, entry}
  busy: false, // a payment, refund or batch in flight: no second one
  queue: [],
  offlineLimit: DEFAULT_OFFLINE_LIMIT,
  probeTimer: null,
  takings: null,
  refundForm: null, // {key, inputId}: the refund form the clerk has open (kept across takings refreshes)
  lastVerdict: null, // for re-rendering in the other language
  couponConfirmed: null, // the amount the clerk confirmed charging below a coupon's face value
};

// ------------------------------------------------------------------ words
const t = (key, values) => fill(UI[state.lang][key] ?? key, values);
const money = (cents) => formatCents(Number(cents), state.lang);

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.title = `CityPass ${t("title")}`;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  for (const node of document.querySelectorAll("[data-t-label]")) node.setAttribute("aria-label", t(node.dataset.tLabel));
  $("lang").lang = state.lang === "nl" ? "en" : "nl";
  $("nav").setAttribute("aria-label", state.lang === "nl" ? "Taal en hulp" : "Language and help");
  $("camera").textContent = camera && camera.running ? t("cameraStop") : t("cameraStart");
}

async function loadMessages(lang) {
  try {
    const answer = await api("messages", { lang });
    state.messages[lang] = answer;
    await store.put("messages:" + lang, answer);
  } catch {
    state.messages[lang] = state.messages[lang] || (await store.get("messages:" + lang)) || null;
  }
}

/** The catalogue's sentence for a Reason, with the numbers filled in: "title: text next". */
function reasonSentence(reason, params = {}, fallback = "") {
  const catalogue = state.messages[state.lang];
  const entry = catalogue && catalogue.reasons && catalogue.reasons[reason];
  const values = {
    left: money(params.left_cents ?? 0),
    short: money(params.short_cents ?? 0),
    max: money(params.max_cents ?? 0),
    limit: money(params.limit_cents ?? 0),
    until: params.until ? formatDate(params.until, state.lang) : "",
    amount: money(params.amount_cents ?? 0),
  };
  if (!entry) return fallback || reason;
  const text = [entry.text, entry.next].filter(Boolean).map((s) => fill(s, values)).join(" ");
  return text || entry.title || reason;
}

// ------------------------------------------------------------------ small DOM helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function alertBox(kind, ...lines) {
  // kind: ok | error | warning | info (NL Design System alert)
  return el("div", { class: `utrecht-alert utrecht-alert--${kind}` },
    el("div", { class: "utrecht-alert__content" },
      el("div", { class: "utrecht-alert__message" }, lines.filter(Boolean).map((l) => (typeof l === "string" ? el("p", { class: "utrecht-paragraph", text: l }) : l)))));
}

function show(id, ...nodes) {
  $(id).replaceChildren(...nodes.filter(Boolean));
}

const button = (label, onclick, kind = "secondary-action", extra = {}) =>
  el("button", { type: "button", class: `utrecht-button utrecht-button--${kind}`, onclick, ...extra }, label);

// ------------------------------------------------------------------ online / offline
function goOffline() {
  if (!state.online) return;
  state.online = false;
  $("offline-banner").hidden = false;
  renderQueue();
  clearInterval(state.probeTimer);
  state.probeTimer = setInterval(probe, PROBE_MS);
}

async function probe() {
  try {
    await api("deployment", {});
    await rpc("eth_blockNumber");
  } catch {
    return;
  }
  goOnline();
}

async function goOnline() {
  if (state.online) return;
  state.online = true;
  clearInterval(state.probeTimer);
  $("offline-banner").hidden = true;
  show("queue-status", alertBox("info", t("online")));
  renderQueue();
  await resolvePendingIfAny();
  if (state.queue.length && paymentReady()) submitQueue();
}

async function guarded(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof Offline) goOffline();
    throw e;
  }
}

// ------------------------------------------------------------------ deployment, budgets
async function loadDeployment() {
  try {
    state.deployment = await api("deployment", {});
    await store.put("deployment", state.deployment);
    const b = await api("budgets", {});
    state.budgets = b.budgets;
    await store.put("budgets", state.budgets);
  } catch (e) {
    state.deployment = state.deployment || (await store.get("deployment")) || null;
    state.budgets = (await store.get("budgets")) || [];
    if (e instanceof Offline || !state.deployment) goOffline();
  }
  $("dev-banner").hidden = !(state.deployment && state.deployment.dev_chain);
}

const budgetInfo = (id) => state.budgets.find((b) => String(b.budget) === String(id));

// ------------------------------------------------------------------ wallet
async function findWallets() {
  state.wallets = await discoverWallets();
  renderWallet();
  // A wallet that already trusts this page connects without asking.
  for (const found of state.wallets) {
    try {
      const accounts = await found.provider.request({ method: "eth_accounts" });
      if (accounts && accounts.length) {
        await connect(found);
        return;
      }
    } catch {
      // not authorised yet: the clerk presses the button
    }
  }
}

async function connect(found) {
  const wallet = new Wallet(found);
  show("wallet-status", alertBox("info", t("walletConnecting")));
  try {
    await wallet.connect();
  } catch (e) {
    show("wallet-status", alertBox(isRejection(e) ? "warning" : "error", isRejection(e) ? t("walletRejected") : t("walletError", { message: e.message || e })));
    return;
  }
  state.wallet = wallet;
  wallet.on("accountsChanged", (accounts) => {
    if (!accounts || !accounts.length) {
      state.wallet = null;
      state.provider = null;
      renderWallet();
    } else {
      wallet.account = accounts[0];
      loadProvider();
    }
  });
  wallet.on("chainChanged", (id) => {
    wallet.chainId = Number(BigInt(id));
    renderWallet();
  });
  wallet.on("disconnect", () => {
    show("wallet-status", alertBox("error", t("walletGone")));
  });
  localStorage.setItem("cp-provider", wallet.account);
  await loadProvider();
}

async function loadProvider() {
  const account = state.wallet && state.wallet.account;
  if (!account) return;
  try {
    state.provider = await guarded(() => api("provider", { address: account }));
    await store.put("provider:" + account.toLowerCase(), state.provider);
  } catch {
    state.provider = (await store.get("provider:" + account.toLowerCase())) || null;
  }
  renderWallet();
  loadTakings();
  resolvePendingIfAny(); // in the background: the till shows that it is checking meanwhile
}

const onRightChain = () => state.wallet && state.deployment && state.wallet.chainId === Number(state.deployment.chain_id);
const paymentReady = () => Boolean(state.wallet && state.wallet.account && onRightChain() && state.provider && state.provider.approved);

function chainLabel() {
  return state.deployment ? state.deployment.chain_name || `chain ${state.deployment.chain_id}` : "CityPass";
}

function renderWallet() {
  const status = [];
  const buttons = [];
  $("provider-info").hidden = true;
  if (!state.wallet) {
    if (!state.wallets.length) {
      status.push(alertBox("warning", t("walletNone")));
    } else {
      for (const found of state.wallets) {
        buttons.push(button(state.wallets.length === 1 ? t("walletConnect") : t("walletConnectWith", { name: found.info.name }), () => connect(found), "primary-action"));
      }
      status.push(el("p", { class: "utrecht-paragraph", text: t("walletFound", { name: state.wallets.map((w) => w.info.name).join(", ") }) }));
    }
  } else if (!onRightChain()) {
    status.push(alertBox("warning", t("wrongChain", { have: state.wallet.chainId, want: chainLabel() })));
    buttons.push(button(t("switchChain", { want: chainLabel() }), switchChain, "primary-action"));
  } else if (state.provider) {
    const p = state.provider;
    if (!p.approved) {
      status.push(alertBox("error", reasonSentence(p.reason || "NotAProvider", {}, p.message), t("needApproval")));
    }
    const gasEth = Number(BigInt(p.gas_wei || "0")) / 1e18;
    const rows = [
      [t("providerName"), p.name || t("unnamed")],
      [t("providerAddress"), el("span", { class: "cp-mono", text: state.wallet.account })],
      p.approved ? [t("providerCategories"), (p.category_names || []).join(", ") || "—"] : null,
      p.approved ? [t("providerLimit"), p.max_amount_cents ? money(p.max_amount_cents) : t("noLimit")] : null,
      [t("gasLeft"), `${gasEth.toLocaleString(state.lang === "nl" ? "nl-NL" : "en-GB", { maximumFractionDigits: 4 })} ETH`],
    ].filter(Boolean);
    $("provider-info").replaceChildren(...rows.map(([k, v]) =>
      el("div", { class: "utrecht-data-list__item" },
        el("dt", { class: "utrecht-data-list__item-key", text: k }),
        el("dd", { class: "utrecht-data-list__item-value utrecht-data-list__item-value--html-dd" }, v))));
    $("provider-info").hidden = false;
    if (p.approved && BigInt(p.gas_wei || "0") < 10n ** 15n) status.push(alertBox("warning", t("gasLow")));
  }
  show("wallet-status", ...status);
  $("wallet-buttons").replaceChildren(...buttons);
  renderVerdict();
}

async function switchChain() {
  try {
    await state.wallet.switchTo(state.deployment);
  } catch (e) {
    show("wallet-status", alertBox("warning", isRejection(e) ? t("switchRejected", { want: chainLabel() }) : t("walletError", { message: e.message || e })));
    return;
  }
  renderWallet();
  await loadProvider();
}

// ------------------------------------------------------------------ scanning
let camera = null;

async function toggleCamera() {
  if (camera.running) {
    camera.stop();
    $("scan-status").textContent = "";
  } else {
    try {
      await camera.start();
      $("scan-status").textContent = t("cameraLooking");
    } catch (e) {
      $("scan-status").textContent = e && e.name === "NotAllowedError" ? t("cameraDenied") : t("cameraNone");
    }
  }
  $("camera").textContent = camera.running ? t("cameraStop") : t("cameraStart");
}

async function onPhoto() {
  const file = $("photo").files[0];
  if (!file) return;
  try {
    const text = await decodeFile(file);
    if (!text) {
      $("scan-status").textContent = t("photoNoQr");
      return;
    }
    await onCode(text, performance.now());
  } catch {
    $("scan-status").textContent = t("photoNoQr");
  }
}

/** A code was read (camera, photo or typed): judge it at once. */
async function onCode(text, seenAt) {
  text = String(text).trim();
  if (!text.startsWith("CP2:")) {
    showVerdictError(t("notCityPass"));
    markVerdict(seenAt);
    return;
  }
  $("scan-status").textContent = t("checking");
  state.scan = { qr: text, scannedAt: seenAt, check: null, offline: false };
  state.couponConfirmed = null;
  state.selected = null;
  state.precheck = null;
  $("amount").value = "";
  $("co-payment").value = "";
  $("refundable").checked = false;
  show("pay-status");
  if (state.online) {
    try {
      const check = await guarded(() => api("check", { qr: text, ...providerField() }));
      state.scan.check = check;
    } catch (e) {
      if (!(e instanceof Offline)) {
        state.scan = null;
        showVerdictError(e instanceof ApiError && e.field === "qr" ? t("qrRefused", { message: e.message })
          : e instanceof ApiError ? e.message : t("serverError", { message: e.message }));
        $("scan-status").textContent = "";
        markVerdict(seenAt);
        return;
      }
    }
  }
  if (!state.scan.check) {
    try {
      state.scan.offline = true;
      state.scan.parsed = parsePassQr(text);
    } catch (e) {
      state.scan = null;
      showVerdictError(e instanceof PassQrError ? t("notCityPass") : String(e));
      markVerdict(seenAt);
      return;
    }
  }
  $("scan-status").textContent = "";
  renderVerdict();
  markVerdict(seenAt);
}

/** For tests and the bench: how many verdicts were shown, and how long the last one took. */
function markVerdict(seenAt) {
  $("next").hidden = false;
  document.body.dataset.verdictMs = String(Math.round(performance.now() - seenAt));
  document.body.dataset.verdicts = String(Number(document.body.dataset.verdicts || 0) + 1);
}

function providerField() {
  const address = (state.wallet && state.wallet.account) || localStorage.getItem("cp-provider");
  return address ? { provider: address } : {};
}

function showVerdictError(text) {
  state.lastVerdict = text;
  $("verdict-empty").hidden = true;
  $("entries").replaceChildren();
  $("pay-form").hidden = true;
  show("verdict-status", alertBox("error", text));
}

// ------------------------------------------------------------------ the verdict
/** Entries to show: online from /api/check; offline from the QR itself and cached budgets. */
function scanEntries() {
  const scan = state.scan;
  if (!scan) return [];
  if (!scan.offline) return scan.check.entries;
  const parsed = scan.parsed;
  const categories = state.provider ? state.provider.categories : null;
  const now = Math.floor(Date.now() / 1000);
  return parsed.entries.map((e) => {
    const info = budgetInfo(e.voucher.budget) || {};
    let reason = "Ok";
    if (state.deployment && (BigInt(state.deployment.chain_id) !== parsed.chainId || state.deployment.contract.toLowerCase() !== parsed.contract.toLowerCase())) reason = "BadSignature";
    else if (Number(parsed.deadline) < now) reason = "VoucherExpired";
    else if (categories && info.category !== undefined && !categories.includes(info.category)) reason = "CategoryNotApproved";
    const providerLimit = state.provider && state.provider.max_amount_cents ? state.provider.max_amount_cents : Infinity;
    return {
      budget: String(e.voucher.budget), name: info.name || `#${info.serial ?? "?"}`, serial: info.serial,
      valid_until: info.valid_until, max_amount_cents: Number(e.voucher.maxAmount), left_cents: null,
      spendable_cents: Math.min(Number(e.voucher.maxAmount), state.offlineLimit, providerLimit),
      nonce: Number(e.voucher.nonce), reason, entitled: reason === "Ok", params: { max_cents: Number(e.voucher.maxAmount) },
      voucher: e.voucher, signature: e.signature,
    };
  });
}

/**
 * The paper coupon of this scan, or null: {face, check} (coupon.js says how a till knows).
 * Online the voucher comes from /api/check, offline from the code itself.
 */
function scanCoupon() {
  const scan = state.scan;
  if (!scan) return null;
  if (scan.coupon !== undefined) return scan.coupon;
  const source = scan.offline ? scan.parsed : scan.check;
  const entries = scan.offline ? scan.parsed.entries : scan.check.entries;
  const voucher = entries.length === 1 ? entries[0].voucher : null;
  scan.coupon = voucher && isCoupon(voucher, entries.length)
    ? { budget: String(voucher.budget), face: Number(voucher.maxAmount),
        check: checkNumber(voucher, scan.offline ? source.chainId : source.chain_id, source.contract) }
    : null;
  return scan.coupon;
}

function renderVerdict() {
  if (!state.scan || state.scan.paid) return; // after "Betaald" only the paid box stays
  const entries = scanEntries();
  const coupon = scanCoupon();
  const offline = state.scan.offline;
  $("verdict-empty").hidden = true;
  show("verdict-status");
  const entitled = entries.filter((e) => e.entitled);
  // Nothing to pay from: one line on top, each budget's own reason below it (said once).
  // A replay (every budget's voucher already used) says so on top, not "no credit here".
  const replay = !entitled.length && entries.length > 0 && entries.every((e) => e.reason === "NonceUsed");
  if (!entitled.length) show("verdict-status", alertBox("error", t(replay ? (coupon ? "couponUsedTitle" : "voucherUsedTitle") : (coupon ? "couponNone" : "entitledNone"))));
  $("entries").replaceChildren(...entries.map((e) => {
    const isPaper = coupon && coupon.budget === e.budget;
    const lines = [el("h3", { class: "utrecht-heading-3", text: isPaper ? t("couponName", { budget: e.name }) : e.name })];
    if (isPaper) {
      lines.push(el("p", { class: "cp-big", id: "coupon-face", text: t("couponFace", { face: money(coupon.face) }) }));
      const [before, after] = UI[state.lang].couponCheck.split("{check}");
      lines.push(el("p", { class: "utrecht-paragraph cp-check", id: "coupon-check", "data-check": coupon.check },
        before, el("strong", { class: "cp-check-number", text: coupon.check }), after));
    }
    if (e.entitled && isPaper) {
      const details = [];
      if (e.valid_until) details.push(t("until", { until: formatDate(e.valid_until, state.lang) }));
      details.push(t("couponOnce"));
      lines.push(el("p", { class: "utrecht-paragraph", text: details.join(" · ") }));
      lines.push(el("p", { class: "utrecht-paragraph", text: t("spendable", { amount: money(e.spendable_cents) }) }));
      if (!offline) lines.push(el("p", { class: "utrecht-paragraph cp-muted", text: t("couponLeftOnPass", { left: money(e.left_cents) }) }));
    } else if (e.entitled) {
      lines.push(el("p", { class: "cp-big", text: offline ? t("offlineUnknownLeft") : t("left", { left: money(e.left_cents) }) }));
      const details = [];
      if (e.valid_until) details.push(t("until", { until: formatDate(e.valid_until, state.lang) }));
      details.push(t("voucherMax", { max: money(e.max_amount_cents) }));
      lines.push(el("p", { class: "utrecht-paragraph", text: details.join(" · ") }));
      lines.push(el("p", { class: "utrecht-paragraph", text: t("spendable", { amount: money(e.spendable_cents) }) }));
    } else {
      // A paper coupon's own next step where the phone's ("ask for a new QR code") does not fit.
      const paperWords = isPaper && { NonceUsed: "couponUsed", PassMigrated: "couponMigrated" }[e.reason];
      lines.push(el("p", { class: "utrecht-paragraph", text: paperWords ? t(paperWords) : reasonSentence(e.reason, { ...e.params, until: e.valid_until }, e.message) }));
    }
    return el("li", { class: `cp-entry ${e.entitled ? "cp-entry--ok" : "cp-entry--no"}`, "data-budget": e.budget, "data-reason": e.reason }, lines);
  }));
  if (!entitled.length) {
    $("pay-form").hidden = true;
    return;
  }
  if (!state.selected || !entitled.some((e) => e.budget === state.selected)) state.selected = entitled[0].budget;
  const choice = $("budget-choice");
  choice.hidden = entitled.length < 2;
  $("budget-options").replaceChildren(...entitled.map((e) =>
    el("div", { class: "utrecht-form-field utrecht-form-field--radio" },
      el("p", { class: "utrecht-form-field__label utrecht-form-field__label--radio" },
        el("input", {
          type: "radio", name: "budget", id: "budget-" + e.budget, value: e.budget, class: "utrecht-radio-button utrecht-radio-button--html-input",
          checked: e.budget === state.selected, onchange: () => { state.selected = e.budget; precheckSoon(); },
        }),
        el("label", { class: "utrecht-form-label utrecht-form-label--radio", for: "budget-" + e.budget, text: `${e.name} (${offline ? t("offlineUnknownLeft") : t("left", { left: money(e.left_cents) })})` })))));
  $("pay-form").hidden = false;
  $("pay").textContent = offline ? t("queue") : t("pay");
  // Not for a paper coupon: its key is destroyed, so a refund would go to credit nobody can spend.
  $("refundable").closest(".utrecht-form-field").hidden = offline || !!coupon;
  if (offline || coupon) $("refundable").checked = false;
  renderPrecheck();
}

// ------------------------------------------------------------------ pre-check as they type
let precheckTimer = null;

function precheckSoon() {
  clearTimeout(precheckTimer);
  precheckTimer = setTimeout(precheck, 200);
}

function readAmounts() {
  const amount = parseEuros($("amount").value);
  const co = parseEuros($("co-payment").value) ?? 0;
  return { amount, co };
}

async function precheck() {
  try {
    await runPrecheck();
  } finally {
    document.body.dataset.prechecks = String(Number(document.body.dataset.prechecks || 0) + 1); // for tests
  }
}

async function runPrecheck() {
  if (!state.scan) return;
  let amounts;
  try {
    amounts = readAmounts();
  } catch (e) {
    state.precheck = { error: t(e.message) };
    renderPrecheck();
    return;
  }
  if (amounts.amount === null) {
    state.precheck = null;
    renderPrecheck();
    return;
  }
  const budget = state.selected;
  if (state.scan.offline) {
    state.precheck = { budget, amount: amounts.amount, entry: offlineJudge(budget, amounts.amount) };
    renderPrecheck();
    return;
  }
  const seq = ++state.precheckSeq;
  $("precheck").textContent = t("precheckBusy");
  try {
    const check = await guarded(() => api("check", { qr: state.scan.qr, ...providerField(), amounts: { [budget]: amounts.amount }, co_payments: { [budget]: amounts.co } }));
    if (seq !== state.precheckSeq) return;
    state.precheck = { budget, amount: amounts.amount, entry: check.entries.find((e) => e.budget === budget) };
  } catch (e) {
    if (seq !== state.precheckSeq) return;
    state.precheck = e instanceof Offline ? null : { error: e.message };
  }
  renderPrecheck();
}

function offlineJudge(budget, amount) {
  const entry = scanEntries().find((e) => e.budget === budget);
  if (!entry) return null;
  if (amount < 1) return { ...entry, reason: "ZeroAmount", entitled: false };
  if (amount > entry.max_amount_cents) return { ...entry, reason: "AboveVoucherLimit", entitled: false };
  if (state.provider && state.provider.max_amount_cents && amount > state.provider.max_amount_cents) {
    return { ...entry, reason: "AboveProviderLimit", entitled: false, params: { ...entry.params, limit_cents: state.provider.max_amount_cents } };
  }
  if (amount > state.offlineLimit) return { ...entry, reason: "OfflineLimit", entitled: false };
  return { ...entry, reason: "Ok", entitled: true };
}

function renderPrecheck() {
  const p = state.precheck;
  const field = $("amount-field");
  const node = $("precheck");
  field.classList.remove("utrecht-form-field--invalid");
  $("amount").removeAttribute("aria-invalid");
  if (!p) {
    node.textContent = "";
    return;
  }
  const bad = (text) => {
    field.classList.add("utrecht-form-field--invalid");
    $("amount").setAttribute("aria-invalid", "true");
    node.replaceChildren(alertBox("error", text));
  };
  if (p.error) return bad(p.error);
  if (!p.entry) return (node.textContent = "");
  if (p.entry.reason === "OfflineLimit") return bad(t("offlineAbove", { amount: money(state.offlineLimit) }));
  if (p.entry.reason !== "Ok") return bad(reasonSentence(p.entry.reason, { ...p.entry.params, amount_cents: p.amount, until: p.entry.valid_until }, p.entry.message));
  // The coupon's warning, unless the question before paying says it already.
  node.replaceChildren(...[alertBox("ok", t("precheckOk", { amount: money(p.amount), budget: p.entry.name })),
    $("coupon-ask") ? null : couponWarning(p.amount)].filter(Boolean));
}

/** The warning when a coupon is charged below its face value (null otherwise). */
function couponWarning(amount, ...extra) {
  const coupon = scanCoupon();
  if (!coupon || amount === null || amount === undefined || amount >= coupon.face) return null;
  const box = alertBox("warning", t("couponRest", { face: money(coupon.face) }),
    t("couponRestDetail", { amount: money(amount), rest: money(coupon.face - amount) }), ...extra);
  box.classList.add("cp-coupon-warning");
  return box;
}

/** Charging less than a coupon's face value needs the clerk's yes first (true: ask, stop here). */
function askBelowFace(amount) {
  const coupon = scanCoupon();
  if (!coupon || amount >= coupon.face || state.couponConfirmed === amount) return false;
  const buttons = el("div", { class: "utrecht-button-group" },
    button(t("couponConfirm", { amount: money(amount) }), () => {
      state.couponConfirmed = amount;
      show("pay-status");
      $("pay-form").requestSubmit();
    }, "primary-action", { id: "coupon-confirm" }),
    button(t("couponChange"), () => {
      show("pay-status");
      renderPrecheck(); // the warning goes back under the amount
      $("amount").focus();
      $("amount").select();
    }, "secondary-action", { id: "coupon-change" }));
  show("pay-status", el("div", { id: "coupon-ask" }, couponWarning(amount, buttons)));
  for (const said of $("precheck").querySelectorAll(".cp-coupon-warning")) said.remove(); // said once
  $("coupon-confirm").focus();
  return true;
}

// ------------------------------------------------------------------ paying
async function onPay(event) {
  event.preventDefault();
  if (state.busy || !state.scan) return;
  let amounts;
  try {
    amounts = readAmounts();
    if (amounts.amount === null) throw new Error("amountInvalid");
  } catch (e) {
    state.precheck = { error: t(e.message) };
    renderPrecheck();
    $("amount").focus();
    return;
  }
  if (askBelowFace(amounts.amount)) return;
  if (state.scan.offline) return enqueue(amounts);
  if (!state.wallet) return show("pay-status", alertBox("warning", t("needWallet")));
  if (!onRightChain()) return show("pay-status", alertBox("warning", t("wrongChain", { have: state.wallet.chainId, want: chainLabel() })));
  if (!state.provider || !state.provider.approved) return show("pay-status", alertBox("error", t("needApproval")));
  const budget = state.selected;
  state.busy = true;
  state.payStarted = performance.now();
  try {
    // The verdict at this very amount, just before the wallet is asked.
    let check;
    try {
      check = await guarded(() => api("check", { qr: state.scan.qr, provider: state.wallet.account, amounts: { [budget]: amounts.amount }, co_payments: { [budget]: amounts.co } }));
    } catch (e) {
      if (e instanceof Offline) {
        state.scan.offline = true;
        state.scan.parsed = parsePassQr(state.scan.qr);
        renderVerdict();
        return;
      }
      throw e;
    }
    const entry = check.entries.find((e) => e.budget === budget);
    state.precheck = { budget, amount: amounts.amount, entry };
    renderPrecheck();
    if (!entry || entry.reason !== "Ok") return;
    const refundable = $("refundable").checked;
    const accountNonce = await rpc("eth_getTransactionCount", [state.wallet.account, "pending"]);
    const pending = {
      kind: "redeem", account: state.wallet.account, contract: state.deployment.contract, holder: check.holder,
      budget, nonce: entry.nonce, amount: amounts.amount, coPayment: amounts.co, refundable, name: entry.name,
      accountNonce, started: Date.now(),
    };
    await store.put("pending", pending);
    show("pay-status", alertBox("info", t("confirmInWallet", { amount: money(amounts.amount) })));
    let hash;
    try {
      hash = await state.wallet.send(state.deployment.contract, encodeRedeem({ voucher: entry.voucher, signature: entry.signature, amount: amounts.amount, coPayment: amounts.co, refundable }));
    } catch (e) {
      if (isRejection(e)) {
        await store.del("pending");
        show("pay-status", alertBox("warning", t("rejected")));
        return;
      }
      // The wallet failed after it may have sent: find out before saying anything.
      await resolvePending(pending);
      return;
    }
    pending.hash = hash;
    await store.put("pending", pending);
    await resolvePending(pending);
  } catch (e) {
    show("pay-status", alertBox("error", e instanceof Offline ? t("cannotReach") : t("serverError", { message: e.message })));
  } finally {
    state.busy = false;
  }
}

/** Blocks on top of a transaction before the till says it is done (the server's --confirmations). */
const wantConfirmations = () => Math.max(0, Number(state.deployment && state.deployment.confirmations) || 0);

/**
 * Is the voucher's nonce used? "yes" (as deep as the confirmations ask), "settling" (used in a
 * block too new to count yet) or "no".
 */
async function voucherLanded(holder, budget, nonce) {
  const depth = wantConfirmations();
  const answer = await api("nonces", { holder, items: [{ budget, nonce }], ...(depth ? { depth } : {}) });
  const item = answer.items[0];
  if (!item.used) return "no";
  return !depth || item.used_deep ? "yes" : "settling";
}

/** The status box while a transaction is on its way: sent, in a block with k of N blocks on top. */
function waitingBox(p, what, progress) {
  const confirming = progress && progress.stage === "confirming";
  const lines = [el("p", { class: "utrecht-paragraph cp-wait-title" },
    el("strong", { text: confirming ? t("confirmTitle") : t(p.kind === "refund" ? "refundSentTitle" : p.kind === "batch" ? "batchSentTitle" : "sentTitle") }))];
  if (confirming) {
    const count = t("confirmCount", { have: progress.have, want: progress.want, blocks: t(progress.want === 1 ? "blockOne" : "blockMany") });
    lines.push(el("p", { class: "utrecht-paragraph cp-confirm-count", text: count }),
      el("progress", { class: "cp-progress", max: String(progress.want), value: String(progress.have), "aria-label": count }),
      t("confirmText", { want: progress.want, blocks: t(progress.want === 1 ? "blockOne" : "blockMany") }));
  } else {
    lines.push(t("waitingChain"));
  }
  lines.push(what);
  return el("div", { id: "waiting", "data-stage": confirming ? "confirming" : "pending", "data-have": confirming ? String(progress.have) : "" },
    alertBox("info", ...lines));
}

/**
 * What happened to the payment in `p` (stored before the wallet was asked)? Waits for the
 * receipt (and the confirmations the server asks for), or, without a hash, looks up whether
 * the voucher's nonce was used, and says so only once it knows. Until then the till shows
 * that it is checking and takes no new payment.
 */
async function resolvePending(p) {
  state.busy = true;
  $("pay").disabled = true;
  const kind = p.kind;
  const statusId = kind === "refund" ? "refund-status" : kind === "batch" ? "queue-status" : "pay-status";
  if (kind === "redeem") $("next").hidden = true; // no "next customer" while this one's payment is on its way
  const what = () => (p.kind === "redeem" ? t("pendingWhat", { amount: money(p.amount), budget: p.name })
    : p.kind === "refund" ? t("pendingRefund", { amount: money(p.amount) }) : t("pendingBatch", { count: p.items.length }));
  const offlineNote = () => {
    state.redrawWaiting = offlineNote;
    show(statusId, alertBox("warning", t("resolvedLater"), what()));
  };
  const onProgress = (progress) => {
    state.redrawWaiting = () => onProgress(progress); // again in the other language
    show(statusId, waitingBox(p, what(), progress));
  };
  if (p.hash) onProgress(null);
  else show(statusId, alertBox("info", t("resolving"), what()));
  const notSeen = { since: null, block: null };
  try {
    for (;;) {
      try {
        if (p.hash) {
          const result = await waitForReceipt(p.hash, { onOffline: offlineNote, onProgress, confirmations: wantConfirmations(),
            isDropped: async () => (await landedWithoutHash(p)) !== null }); // gone, or landed under another hash
          if (result.receipt) {
            await finish(p, result.receipt);
            return;
          }
        }
        const landed = await landedWithoutHash(p);
        if (landed === true) {
          await finish(p, null);
          return;
        }
        if (landed === false && !(await mayStillLand(p, notSeen))) {
          await store.del("pending");
          show(statusId, alertBox("info", t("resolvedNotPaid")));
          return;
        }
        await new Promise((r) => setTimeout(r, 1000)); // still in flight somewhere, or not deep enough yet
      } catch (e) {
        if (!(e instanceof Offline)) throw e;
        offlineNote();
        await new Promise((r) => setTimeout(r, 1500));
      }
    }
  } finally {
    state.busy = false;
    state.redrawWaiting = null;
    $("pay").disabled = false;
    if (kind === "redeem") $("next").hidden = false;
  }
}

/**
 * On a real network (confirmations asked) a node may not show transactions that are not in a
 * block yet, nor count them in the "pending" nonce: "it did not land" is only believed once the
 * account's nonce has moved past this payment's (with the voucher still unused), or after
 * DROP_AFTER_MS and DROP_AFTER_BLOCKS without it (DROP_IDLE_MS when no blocks come).
 */
async function mayStillLand(p, seen) {
  if (!wantConfirmations()) return false; // a dev chain shows its pool: the pending nonce is enough
  const latest = BigInt(await rpc("eth_getTransactionCount", [p.account, "latest"]));
  if (p.accountNonce !== undefined && latest > BigInt(p.accountNonce)) {
    return p.kind === "redeem" && (await voucherLanded(p.holder, p.budget, p.nonce)) !== "no"; // mined meanwhile?
  }
  const head = Number(BigInt(await rpc("eth_blockNumber")));
  if (seen.since === null) [seen.since, seen.block] = [Date.now(), head];
  const waited = Date.now() - seen.since;
  return !((waited > DROP_AFTER_MS && head - seen.block >= DROP_AFTER_BLOCKS) || waited > DROP_IDLE_MS);
}

/**
 * true: it landed (as deep as the confirmations ask); false: it did not and will not; null:
 * something of the account is still pending, or it landed in a block too new to count yet.
 */
async function landedWithoutHash(p) {
  const voucher = p.kind === "redeem" ? p : p.kind === "batch" ? p.items[0] : null;
  const look = async () => (voucher ? voucherLanded(voucher.holder, voucher.budget, voucher.nonce) : "no");
  let landed = await look();
  if (landed !== "no") return landed === "yes" ? true : null;
  if (p.kind === "refund") {
    const taken = await api("takings", { provider: p.account, from: Math.floor(p.started / 1000) - 60 });
    if (taken.items.some((i) => i.kind === "refund" && String(i.budget) === String(p.budget) && Number(i.nonce) === Number(p.nonce) && i.time * 1000 >= p.started - 60_000)) return true;
  }
  const [pending, latest] = await Promise.all([
    rpc("eth_getTransactionCount", [p.account, "pending"]),
    rpc("eth_getTransactionCount", [p.account, "latest"]),
  ]);
  if (BigInt(pending) > BigInt(latest)) return null;
  if (p.kind === "redeem") {
    landed = await look(); // mined between the two looks
    if (landed !== "no") return landed === "yes" ? true : null;
  }
  return false;
}

async function finish(p, receipt) {
  await store.del("pending");
  if (p.kind === "batch") return finishBatch(p, receipt);
  if (p.kind === "refund") {
    if (receipt && receipt.status !== "0x1") show("refund-status", alertBox("error", t("reverted")));
    else show("refund-status", alertBox("ok", t("refundDone", { amount: money(p.amount) })));
    takingsUntil(receipt && receipt.transactionHash);
    return;
  }
  if (receipt && receipt.status !== "0x1") {
    // Refused on chain after all (the state changed between check and block): say why.
    let sentence = t("reverted");
    try {
      const check = await api("check", { qr: state.scan ? state.scan.qr : "", provider: p.account, amounts: { [p.budget]: p.amount } });
      const entry = check.entries.find((e) => e.budget === p.budget);
      if (entry && entry.reason !== "Ok") sentence += " " + reasonSentence(entry.reason, entry.params, entry.message);
    } catch {
      // the plain sentence is enough
    }
    show("pay-status", alertBox("error", sentence));
    return;
  }
  let left = null;
  try {
    const balances = await api("balances", { holder: p.holder });
    const b = balances.balances.find((x) => String(x.budget) === String(p.budget));
    left = b ? b.left_cents : 0;
  } catch {
    // the payment stands; the balance shows on the next scan
  }
  const lines = [
    el("p", { class: "utrecht-heading-2 cp-paid", text: t("paid") }),
    t("paidText", { amount: money(p.amount), budget: p.name, left: left === null ? "?" : money(left) }),
    p.coPayment ? t("paidCo", { amount: money(p.coPayment) }) : null,
    receipt ? el("p", { class: "utrecht-paragraph cp-muted cp-mono", text: receipt.transactionHash }) : null,
  ];
  show("pay-status", el("div", { id: "paid", "data-tx": receipt ? receipt.transactionHash : "" }, alertBox("ok", ...lines)));
  if (state.scan) state.scan.paid = true;
  // The verdict above was before the payment: only the paid box stays, with what is left now.
  $("entries").replaceChildren();
  show("verdict-status");
  $("pay-form").hidden = true;
  $("next").hidden = false;
  $("next").focus();
  if (state.payStarted) document.body.dataset.payMs = String(Math.round(performance.now() - state.payStarted));
  takingsUntil(receipt && receipt.transactionHash);
}

/** Refresh today's takings until the event index has caught up with `tx` (a few seconds at most). */
async function takingsUntil(tx) {
  for (let i = 0; i < 8; i++) {
    if (tx && state.takings && state.takings.items.some((item) => item.tx === tx)) return; // another refresh saw it
    await loadTakings();
    if (!tx || (state.takings && state.takings.items.some((item) => item.tx === tx))) return;
    await new Promise((r) => setTimeout(r, 600));
  }
}

async function resolvePendingIfAny() {
  const p = await store.get("pending");
  if (!p || state.busy) return;
  if (!state.online) {
    show("pay-status", alertBox("warning", t("resolvedLater")));
    return;
  }
  await resolvePending(p);
}

function nextCustomer() {
  state.scan = null;
  state.selected = null;
  state.precheck = null;
  if (camera) camera.reset();
  $("typed").value = "";
  $("photo").value = "";
  $("entries").replaceChildren();
  $("pay-form").hidden = true;
  $("verdict-empty").hidden = false;
  $("next").hidden = true;
  show("verdict-status");
  show("pay-status");
  $("scan").focus();
}

// ------------------------------------------------------------------ offline queue
async function enqueue({ amount, co }) {
  const budget = state.selected;
  const judged = offlineJudge(budget, amount);
  state.precheck = { budget, amount, entry: judged };
  renderPrecheck();
  if (!judged || judged.reason !== "Ok") return;
  const holder = state.scan.parsed.holder;
  if (state.queue.some((q) => q.holder.toLowerCase() === holder.toLowerCase() && q.budget === budget && Number(q.nonce) === Number(judged.nonce))) {
    show("pay-status", alertBox("warning", t("queueDuplicate")));
    return;
  }
  state.queue.push({ holder, budget, nonce: judged.nonce, name: judged.name, amount, coPayment: co, voucher: judged.voucher, signature: judged.signature, time: Math.floor(Date.now() / 1000) });
  await store.put("queue", state.queue);
  show("pay-status", alertBox("info", t("queued", { amount: money(amount), budget: judged.name })));
  $("pay-form").hidden = true;
  $("next").hidden = false;
  $("next").focus();
  renderQueue();
}

function renderQueue() {
  const visible = !state.online || state.queue.length > 0 || $("queue-results").childElementCount > 0;
  $("queue").hidden = !visible;
  $("offline-limit").value = (state.offlineLimit / 100).toFixed(2).replace(".", state.lang === "nl" ? "," : ".");
  $("queue-list").replaceChildren(...(state.queue.length
    ? state.queue.map((q) => el("li", { class: "utrecht-unordered-list__item", text: `${formatTime(q.time, state.lang)} · ${q.name} · ${money(q.amount)}` }))
    : [el("li", { class: "utrecht-unordered-list__item", text: t("queueEmpty") })]));
  $("queue-submit").hidden = !(state.online && state.queue.length);
}

async function saveLimit(event) {
  event.preventDefault();
  try {
    const cents = parseEuros($("offline-limit").value);
    if (cents === null) throw new Error("amountInvalid");
    state.offlineLimit = cents;
    await store.put("settings", { offlineLimit: cents });
    $("limit-status").textContent = t("offlineLimitSaved", { amount: money(cents) });
  } catch (e) {
    $("limit-status").textContent = t(e.message);
  }
}

async function submitQueue() {
  if (state.busy || !state.queue.length) return;
  if (!paymentReady()) return show("queue-status", alertBox("warning", t("needWallet")));
  state.busy = true;
  const items = state.queue.slice();
  try {
    const accountNonce = await rpc("eth_getTransactionCount", [state.wallet.account, "pending"]);
    const pending = { kind: "batch", account: state.wallet.account, contract: state.deployment.contract, items, accountNonce, started: Date.now() };
    await store.put("pending", pending);
    show("queue-status", alertBox("info", t("queueSubmitting", { count: items.length })));
    let hash;
    try {
      hash = await state.wallet.send(state.deployment.contract, encodeBatch(items));
    } catch (e) {
      if (isRejection(e)) {
        await store.del("pending");
        show("queue-status", alertBox("warning", t("rejected")));
        return;
      }
      state.busy = false;
      await resolvePending(pending);
      return;
    }
    pending.hash = hash;
    await store.put("pending", pending);
    state.busy = false;
    await resolvePending(pending);
  } catch (e) {
    if (e instanceof Offline) goOffline();
    else show("queue-status", alertBox("error", t("serverError", { message: e.message })));
  } finally {
    state.busy = false;
  }
}

async function finishBatch(p, receipt) {
  if (receipt && receipt.status !== "0x1") {
    show("queue-status", alertBox("error", t("reverted")));
    return;
  }
  let skipped = [];
  if (receipt) {
    skipped = skippedIn(receipt, p.contract);
  } else {
    // Found through the nonces (no receipt at hand): a voucher whose nonce is unused was skipped.
    for (const item of p.items) {
      const used = (await api("nonces", { holder: item.holder, items: [{ budget: item.budget, nonce: item.nonce }] })).items[0].used;
      if (!used) skipped.push({ holder: item.holder, budget: BigInt(item.budget), nonce: BigInt(item.nonce), reason: "NonceUsed" });
    }
  }
  const results = p.items.map((item) => {
    const skip = skipped.find((s) => s.holder.toLowerCase() === item.holder.toLowerCase() && String(s.budget) === String(item.budget) && Number(s.nonce) === Number(item.nonce));
    return { item, reason: skip ? skip.reason : "Ok" };
  });
  const sent = new Set(p.items.map((i) => `${i.holder.toLowerCase()}:${i.budget}:${i.nonce}`));
  state.queue = state.queue.filter((q) => !sent.has(`${q.holder.toLowerCase()}:${q.budget}:${q.nonce}`));
  await store.put("queue", state.queue);
  const ok = results.filter((r) => r.reason === "Ok").length;
  show("queue-status", alertBox(ok === results.length ? "ok" : "warning", t("queueResult", { ok, skipped: results.length - ok })));
  $("queue-results").replaceChildren(...results.map(({ item, reason }) =>
    el("li", { class: `cp-entry ${reason === "Ok" ? "cp-entry--ok" : "cp-entry--no"}`, "data-reason": reason },
      el("p", { class: "utrecht-paragraph" }, el("strong", { text: reason === "Ok" ? t("queuePaid") : t("queueSkipped") }), ` · ${item.name} · ${money(item.amount)}`),
      reason === "Ok" ? null : el("p", { class: "utrecht-paragraph", text: reasonSentence(reason, {}, reason) }))));
  renderQueue();
  takingsUntil(receipt && receipt.transactionHash);
}

// ------------------------------------------------------------------ today's takings and refunds
async function loadTakings() {
  const account = state.wallet && state.wallet.account;
  if (!account) {
    $("takings-summary").textContent = t("needWalletTakings");
    $("takings-wrap").hidden = true;
    return;
  }
  try {
    state.takings = await guarded(() => api("takings", { provider: account, from: amsterdamMidnight() }));
  } catch (e) {
    if (!state.takings) $("takings-summary").textContent = e instanceof Offline ? t("takingsOffline") : t("serverError", { message: e.message });
    return;
  }
  renderTakings();
}

function renderTakings() {
  const tk = state.takings;
  if (!tk) return;
  if (!tk.items.length) {
    $("takings-summary").textContent = t("takingsEmpty");
    $("takings-wrap").hidden = true;
    return;
  }
  $("takings-summary").textContent = t("takingsTotal", { redeemed: money(tk.redeemed_cents), refunded: money(tk.refunded_cents), net: money(tk.net_cents), count: tk.count });
  $("takings-wrap").hidden = false;
  // A refresh (the clerk's, or one following a payment) must not throw away a refund form
  // being filled in: remember what was typed and open it again on the same redemption.
  const open = state.refundForm;
  if (open) {
    const input = document.getElementById(open.inputId);
    open.value = input ? input.value : open.value;
    open.focused = !!input && document.activeElement === input;
  }
  const items = tk.items.slice().reverse();
  const rows = [];
  items.forEach((item, i) => {
    const canRefund = item.kind === "redemption" && item.refundable_cents > 0 && paymentReady();
    const action = canRefund
      ? button(t("refund"), () => openRefund(item, i), "secondary-action", { id: `refund-${i}`, "aria-describedby": `row-${i}` })
      : "";
    rows.push(el("tr", { class: "utrecht-table__row", id: `row-${i}` },
      el("td", { class: "utrecht-table__cell", "data-label": t("colTime"), text: formatTime(item.time, state.lang) }),
      el("td", { class: "utrecht-table__cell", "data-label": t("colBudget"), text: item.name }),
      el("td", { class: "utrecht-table__cell", "data-label": t("colKind") }, item.kind === "refund" ? t("kindRefund") : t("kindRedemption"),
        item.kind === "redemption" && item.refundable_cents > 0 ? el("span", { class: "cp-muted", text: ` (${t("refundLeft", { amount: money(item.refundable_cents) })})` }) : null),
      el("td", { class: "utrecht-table__cell cp-num", "data-label": t("colAmount"), text: (item.kind === "refund" ? "−" : "") + money(item.amount_cents) }),
      el("td", { class: "utrecht-table__cell cp-action" }, action)));
    rows.push(el("tr", { class: "utrecht-table__row", id: `refund-row-${i}`, hidden: true }, el("td", { class: "utrecht-table__cell", colspan: "5" })));
  });
  $("takings-body").replaceChildren(...rows);
  state.refundForm = null;
  if (open) {
    const i = items.findIndex((item) => takingKey(item) === open.key && item.kind === "redemption" && item.refundable_cents > 0);
    if (i >= 0 && paymentReady()) openRefund(items[i], i, open);
  }
}

const takingKey = (item) => `${item.tx}:${item.log_index}`;

function openRefund(item, i, reopen = null) {
  const row = $(`refund-row-${i}`);
  const inputId = `refund-amount-${i}`;
  const input = el("input", { id: inputId, class: "utrecht-textbox utrecht-textbox--html-input cp-amount", inputmode: "decimal", autocomplete: "off" });
  input.value = reopen && reopen.value !== undefined ? reopen.value
    : (item.refundable_cents / 100).toFixed(2).replace(".", state.lang === "nl" ? "," : ".");
  state.refundForm = { key: takingKey(item), inputId };
  const form = el("form", { class: "cp-inline-form", novalidate: true, onsubmit: (ev) => { ev.preventDefault(); sendRefund(item, input.value, i); } },
    el("div", { class: "utrecht-form-field" },
      el("p", { class: "utrecht-form-field__label" }, el("label", { class: "utrecht-form-label", for: inputId, text: t("refundAmount") })),
      el("p", { class: "utrecht-form-field__input" }, input)),
    el("button", { type: "submit", class: "utrecht-button utrecht-button--primary-action", text: t("refundConfirm") }),
    button(t("refundCancel"), () => { row.hidden = true; state.refundForm = null; $(`refund-${i}`).focus(); }));
  row.firstChild.replaceChildren(form);
  row.hidden = false;
  if (!reopen || reopen.focused) input.focus();
}

async function sendRefund(item, text, i) {
  if (state.busy) return;
  let amount;
  try {
    amount = parseEuros(text);
    if (!amount) throw new Error("amountInvalid");
  } catch (e) {
    show("refund-status", alertBox("error", t(e.message)));
    return;
  }
  if (amount > item.refundable_cents) {
    show("refund-status", alertBox("error", t("refundLeft", { amount: money(item.refundable_cents) })));
    return;
  }
  state.busy = true;
  state.refundForm = null; // sent: the next refresh shows the refund instead of the form
  try {
    // The takings name no holder unless signed for: the redemption's own receipt does.
    const holder = item.holder || (await redemptionHolder(item.tx, state.deployment.contract, item.nonce));
    if (!holder) throw new Error("the redemption's holder is not in its receipt");
    item = { ...item, holder };
    const accountNonce = await rpc("eth_getTransactionCount", [state.wallet.account, "pending"]);
    const pending = { kind: "refund", account: state.wallet.account, contract: state.deployment.contract, holder: item.holder, budget: item.budget, nonce: item.nonce, amount, accountNonce, started: Date.now() };
    await store.put("pending", pending);
    show("refund-status", alertBox("info", t("confirmInWallet", { amount: money(amount) })));
    let hash;
    try {
      hash = await state.wallet.send(state.deployment.contract, encodeRefund({ holder: item.holder, budget: item.budget, nonce: item.nonce, amount }));
    } catch (e) {
      if (isRejection(e)) {
        await store.del("pending");
        show("refund-status", alertBox("warning", t("rejected")));
        return;
      }
      state.busy = false;
      await resolvePending(pending);
      return;
    }
    pending.hash = hash;
    await store.put("pending", pending);
    state.busy = false;
    await resolvePending(pending);
  } catch (e) {
    show("refund-status", alertBox("error", e instanceof Offline ? t("cannotReach") : t("serverError", { message: e.message })));
  } finally {
    state.busy = false;
  }
}

// ------------------------------------------------------------------ start
async function switchLanguage() {
  state.lang = state.lang === "nl" ? "en" : "nl";
  localStorage.setItem("cp-lang", state.lang);
  if (!state.messages[state.lang]) await loadMessages(state.lang);
  applyLanguage();
  renderWallet();
  renderQueue();
  renderTakings();
  if (state.scan) renderVerdict();
  else if (state.lastVerdict === null) show("verdict-status");
  if (state.redrawWaiting) state.redrawWaiting();
  if (!state.wallet) loadTakings();
}

async function start() {
  camera = new Camera($("video"), (text, at) => onCode(text, at));
  applyLanguage();
  $("lang").addEventListener("click", switchLanguage);
  $("camera").addEventListener("click", toggleCamera);
  $("photo").addEventListener("change", onPhoto);
  $("typed-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    onCode($("typed").value, performance.now());
  });
  $("amount").addEventListener("input", () => {
    state.couponConfirmed = null;
    if ($("coupon-ask")) show("pay-status"); // the question was about the old amount
    precheckSoon();
  });
  $("co-payment").addEventListener("input", precheckSoon);
  $("pay-form").addEventListener("submit", onPay);
  $("next").addEventListener("click", nextCustomer);
  $("limit-form").addEventListener("submit", saveLimit);
  $("queue-submit").addEventListener("click", submitQueue);
  $("takings-refresh").addEventListener("click", loadTakings);
  const settings = (await store.get("settings")) || {};
  state.offlineLimit = settings.offlineLimit ?? DEFAULT_OFFLINE_LIMIT;
  state.queue = (await store.get("queue")) || [];
  await loadDeployment();
  await loadMessages(state.lang);
  applyLanguage();
  renderQueue();
  loadTakings();
  warmUp();
  await findWallets();
  if (!state.wallet) resolvePendingIfAny();
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/till/sw.js", { scope: "/till/" }).catch(() => {});
  document.body.dataset.ready = "1";
}

start();
