// The resident's pass app (/pass/): first run (a key made here, sealed under a PIN), "Mijn
// pas" (the address QR for the desk), balances and history, the pass QR for the till, a new
// phone, backup and restore. The key and the PIN never leave this page: the server only sees
// the address, public reads, and history requests signed with the key.
import { getAddress } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { api, ApiError, Offline } from "./api.js";
import { fill, formatCents, formatDate, formatDateTime, parseEuros, REASONS, TILL_TITLES, UI } from "./i18n.js";
import { MAX_ENTRIES, signPass } from "./passqr.js";
import { drawQr } from "./qr.js";
import * as store from "./store.js";
import * as vault from "./vault.js";

const $ = (id) => document.getElementById(id);
const UNLOCK_WINDOW_MS = 5 * 60_000; // after the PIN, showing the pass asks nothing for 5 minutes
const POLL_MS = 3000; // while the pass is shown: has the till used one of its nonces?
const NONCE_PROBE = 32; // candidates asked per budget when its nonce must be chosen again
const SCREENS = ["welcome", "setpin", "restore", "unlock", "home", "show", "address", "history", "more"];
const WITH_NAV = ["home", "address", "history", "more"];
const NEEDS_KEY = ["show", "history"];

const state = {
  lang: localStorage.getItem("cp-pass-lang") === "en" ? "en" : "nl",
  screen: null,
  config: null, // /api/pass/config, with clockOffset (chain seconds - device seconds)
  address: null,
  key: null, // the private key while unlocked (memory only)
  unlockedUntil: 0,
  lockTimer: null,
  balances: null, // /api/balances answer + fetchedAt
  history: null, // /api/pass/history answer + fetchedAt
  nonces: {}, // budget -> the nonce its voucher carries until the app sees it used
  used: {}, // budget -> nonces seen used (never shown again)
  limitCents: null, // the resident's per-scan limit (null: the municipality's)
  online: true,
  mode: "new", // "new" | "phone" | "restore": the setpin screen's purpose
  pendingKey: null, // a key waiting for its PIN (first run, new phone, restore)
  afterUnlock: "home",
  shown: null, // {entries, text, deadline}
  pollTimer: null,
  lockTick: null,
  wakeLock: null,
};

// ------------------------------------------------------------------ words
const t = (key, values) => fill(UI[state.lang][key] ?? key, { ...contactValues(), ...values });
const money = (cents) => formatCents(Number(cents), state.lang);

function contactValues() {
  const c = (state.config && state.config.contact) || { name: "Stadspas-balie van de gemeente", phone: "14\u00a0050" };
  return { desk: state.lang === "nl" ? c.name.charAt(0).toLowerCase() + c.name.slice(1) : "municipality's city pass desk", phone: c.phone };
}

function waitText(ms) {
  const s = Math.ceil(ms / 1000);
  return s < 90 ? t("seconds", { n: s }) : t("minutes", { n: Math.ceil(s / 60) });
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.title = t("appName");
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  for (const node of document.querySelectorAll("[data-t-label]")) node.setAttribute("aria-label", t(node.dataset.tLabel));
  $("lang").lang = state.lang === "nl" ? "en" : "nl";
  $("forgot-text").textContent = t("forgotText");
  $("contact").textContent = t("contact");
  renderReasons();
}

function renderReasons() {
  const dl = $("reasons");
  dl.replaceChildren();
  for (const [name, [what, next]] of Object.entries(REASONS[state.lang])) {
    if (name === "Ok" || name === "BudgetNotEnded") continue;
    const dt = document.createElement("dt");
    dt.textContent = `“${TILL_TITLES[state.lang][name]}”`;
    dt.dataset.reason = name;
    const dd = document.createElement("dd");
    dd.textContent = `${fill(what, contactValues())} ${fill(next, contactValues())}`;
    dl.append(dt, dd);
  }
}

// ------------------------------------------------------------------ screens
function go(screen) {
  if (location.hash !== "#" + screen) history.pushState(null, "", "#" + screen);
  show(screen);
}

function show(screen) {
  if (!SCREENS.includes(screen)) screen = state.address ? "home" : "welcome";
  if (!state.address && !["welcome", "setpin", "restore"].includes(screen)) screen = "welcome";
  if (state.address && ["welcome", "setpin", "restore"].includes(screen) && !state.pendingKey) screen = "home";
  if (NEEDS_KEY.includes(screen) && !unlocked()) {
    state.afterUnlock = screen;
    screen = "unlock";
  }
  if (state.screen === "show" && screen !== "show") leaveShow();
  state.screen = screen;
  for (const id of SCREENS) $(id).hidden = id !== screen;
  $("loading").hidden = true;
  $("nav").hidden = !(state.address && WITH_NAV.includes(screen));
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === "#" + screen) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.body.dataset.screen = screen;
  const render = { setpin: renderSetPin, unlock: renderUnlock, home: renderHome, show: renderShow, address: renderAddress,
    history: renderHistory, more: renderMore }[screen];
  if (render) render();
}

window.addEventListener("popstate", () => show(location.hash.slice(1)));
window.addEventListener("hashchange", () => show(location.hash.slice(1)));

function setOnline(online) {
  state.online = online;
  const banner = $("offline-banner");
  banner.hidden = online;
  if (!online) {
    const when = state.balances && state.balances.fetchedAt;
    $("offline-text").textContent = when ? t("offline", { when: formatDateTime(when, state.lang) }) : t("offlineNever");
  }
  document.body.dataset.online = online ? "1" : "0";
}

// ------------------------------------------------------------------ the key
const unlocked = () => Boolean(state.key) && Date.now() < state.unlockedUntil;

function keepUnlocked() {
  state.unlockedUntil = Date.now() + UNLOCK_WINDOW_MS;
  clearTimeout(state.lockTimer);
  state.lockTimer = setTimeout(() => {
    if (state.screen === "show") return keepUnlocked(); // never lock while the till is scanning
    lock();
  }, UNLOCK_WINDOW_MS);
}

function lock() {
  state.key = null;
  state.unlockedUntil = 0;
  clearTimeout(state.lockTimer);
}

function renderSetPin() {
  $("setpin-heading").textContent = t(state.mode === "phone" ? "pinHeadingPhone" : "pinHeadingNew");
  $("setpin-phone").hidden = state.mode !== "phone";
  $("setpin-error").textContent = "";
}

$("start-new").addEventListener("click", () => startSetup("new"));
$("start-phone").addEventListener("click", () => startSetup("phone"));
$("start-restore").addEventListener("click", () => go("restore"));
$("setpin-back").addEventListener("click", () => {
  state.pendingKey = null;
  go(state.address ? "home" : "welcome");
});
$("restore-back").addEventListener("click", () => go("welcome"));

function startSetup(mode) {
  state.mode = mode;
  state.pendingKey = vault.newKey();
  $("pin-new").value = "";
  $("pin-repeat").value = "";
  go("setpin");
}

$("setpin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const pin = $("pin-new").value;
  const problem = vault.pinProblem(pin);
  const error = $("setpin-error");
  if (problem) return void (error.textContent = t(problem));
  if (pin !== $("pin-repeat").value) return void (error.textContent = t("pinMismatch"));
  error.textContent = t("making");
  $("setpin-save").disabled = true;
  try {
    const key = state.pendingKey || vault.newKey();
    state.address = await vault.seal(key, pin);
    state.key = key;
    keepUnlocked();
    state.pendingKey = null;
    await store.put("mode", state.mode);
    for (const k of ["balances", "history", "nonces", "used"]) await store.del(k);
    Object.assign(state, { balances: null, history: null, nonces: {}, used: {} });
    $("pin-new").value = "";
    $("pin-repeat").value = "";
    error.textContent = "";
    if (!state.config) await refreshConfig();
    go(state.mode === "restore" ? "home" : "address");
    refreshAll();
  } catch (e) {
    error.textContent = t("serverError", { message: e.message });
  } finally {
    $("setpin-save").disabled = false;
  }
});

$("restore-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("restore-error");
  const file = $("restore-file").files[0];
  if (!file) return void (error.textContent = t("restoreNoFile"));
  error.textContent = t("restoring");
  try {
    const key = await vault.importKeystore(await file.text(), $("restore-password").value);
    $("restore-password").value = "";
    error.textContent = "";
    state.mode = "restore";
    state.pendingKey = key;
    $("pin-new").value = "";
    $("pin-repeat").value = "";
    go("setpin");
  } catch (e) {
    if (e instanceof vault.BackupError) {
      error.textContent = e.kind === "password" ? t("restoreWrong") : t("restoreBadFile", { detail: e.detail });
    } else error.textContent = t("restoreBadFile", { detail: e.message });
  }
});

async function renderUnlock() {
  $("pin").value = "";
  $("unlock-error").textContent = "";
  $("unlock-back").hidden = false;
  await showLockOut();
}

async function showLockOut() {
  clearInterval(state.lockTick);
  const { waitMs, failures } = await vault.lockState();
  document.body.dataset.pinFailures = String(failures);
  document.body.dataset.lockWait = String(Math.ceil(waitMs / 1000));
  $("unlock-go").setAttribute("aria-disabled", waitMs > 0 ? "true" : "false");
  if (waitMs <= 0) return;
  const tick = async () => {
    const s = await vault.lockState();
    document.body.dataset.lockWait = String(Math.ceil(s.waitMs / 1000));
    if (s.waitMs <= 0) {
      clearInterval(state.lockTick);
      $("unlock-error").textContent = "";
      $("unlock-go").setAttribute("aria-disabled", "false");
      return;
    }
    if (!$("unlock-error").dataset.fresh) $("unlock-error").textContent = t("locked", { wait: waitText(s.waitMs) });
    delete $("unlock-error").dataset.fresh;
  };
  await tick();
  state.lockTick = setInterval(tick, 1000);
}

$("unlock-back").addEventListener("click", () => go("home"));

$("unlock-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("unlock-error");
  const pin = $("pin").value;
  error.textContent = t("unlocking");
  $("unlock-go").disabled = true;
  const started = performance.now();
  try {
    state.key = await vault.open(pin);
    document.body.dataset.unlockMs = (performance.now() - started).toFixed(1); // bench/pass.py reads it
    keepUnlocked();
    $("pin").value = "";
    error.textContent = "";
    clearInterval(state.lockTick);
    document.body.dataset.pinFailures = "0";
    document.body.dataset.lockWait = "0";
    const next = state.afterUnlock || "home";
    state.afterUnlock = "home";
    go(next);
  } catch (e) {
    $("pin").value = "";
    if (e instanceof vault.WrongPin) {
      error.textContent = e.waitMs > 0 ? t("wrongPinLocked", { count: e.failures, wait: waitText(e.waitMs) }) : t("wrongPin");
      error.dataset.fresh = "1";
      await showLockOut();
    } else if (e instanceof vault.LockedOut) {
      error.textContent = t("locked", { wait: waitText(e.waitMs) });
    } else error.textContent = t("serverError", { message: e.message });
  } finally {
    $("unlock-go").disabled = false;
    document.body.dataset.unlocks = String(Number(document.body.dataset.unlocks || 0) + 1);
  }
});

// ------------------------------------------------------------------ the server
async function refreshConfig() {
  try {
    const c = await api("pass/config", {});
    c.clockOffset = c.time - Date.now() / 1000;
    state.config = c;
    await store.put("config", c);
    setOnline(true);
  } catch (e) {
    if (e instanceof Offline) setOnline(false);
  }
  $("dev-banner").hidden = !(state.config && state.config.dev_chain);
}

async function refreshBalances() {
  if (!state.address) return;
  try {
    const answer = await api("balances", { holder: state.address });
    answer.fetchedAt = Math.floor(Date.now() / 1000);
    state.balances = answer;
    await store.put("balances", answer);
    setOnline(true);
    await refreshNonces();
  } catch (e) {
    if (e instanceof Offline) setOnline(false);
    else throw e;
  }
}

const chainNow = () => Math.floor(Date.now() / 1000 + ((state.config && state.config.clockOffset) || 0));

/** Each budget with credit keeps its nonce until the app sees it used; then the lowest unused one. */
async function refreshNonces() {
  const list = spendable();
  await Promise.all(list.map(async (b) => {
    const budget = b.budget;
    const seen = new Set(state.used[budget] || []);
    const current = state.nonces[budget];
    if (current !== undefined && !seen.has(current)) {
      const answer = await api("nonces", { holder: state.address, items: [{ budget, nonce: current }] });
      if (!answer.items[0].used) return;
      seen.add(current);
    }
    for (let start = 0; start < 1 << 20; start += NONCE_PROBE) {
      const items = [];
      for (let n = start; n < start + NONCE_PROBE; n++) if (!seen.has(n)) items.push({ budget, nonce: n });
      if (!items.length) continue;
      const answer = await api("nonces", { holder: state.address, items });
      for (const item of answer.items) if (item.used) seen.add(item.nonce);
      const free = answer.items.find((i) => !i.used);
      if (free) {
        state.nonces[budget] = free.nonce;
        break;
      }
    }
    state.used[budget] = [...seen].sort((a, b) => a - b).slice(-256);
  }));
  await store.put("nonces", state.nonces);
  await store.put("used", state.used);
}

function markUsed(budget, nonce) {
  const list = new Set(state.used[budget] || []);
  list.add(Number(nonce));
  state.used[budget] = [...list].sort((a, b) => a - b).slice(-256);
  if (state.nonces[budget] === Number(nonce)) delete state.nonces[budget];
}

function historyText(holder, time, nonce) {
  const c = state.config;
  return ["CityPass pass history request", `holder: ${getAddress(holder)}`, `origin: ${location.origin}`,
    "path: /api/pass/history", `chain: ${c.chain_id}`, `contract: ${getAddress(c.contract)}`, `time: ${time}`,
    `nonce: ${nonce}`].join("\n");
}

async function refreshHistory() {
  if (!unlocked() || !state.config) return;
  const time = Math.floor(Date.now() / 1000);
  const nonce = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  const account = privateKeyToAccount(state.key);
  const signature = await account.signMessage({ message: historyText(state.address, time, nonce) });
  try {
    const answer = await api("pass/history", { holder: state.address, time, nonce, signature });
    answer.fetchedAt = time;
    state.history = answer;
    for (const [budget, nonces] of Object.entries(answer.used_nonces || {})) for (const n of nonces) markUsed(budget, n);
    await store.put("history", answer);
    await store.put("used", state.used);
    setOnline(true);
  } catch (e) {
    if (e instanceof Offline) setOnline(false);
    else throw e;
  }
}

async function refreshAll() {
  await refreshConfig();
  if (state.online) {
    try {
      await refreshBalances();
      if (unlocked()) await refreshHistory();
    } catch (e) {
      console.warn(e);
    }
  }
  if (["home", "address", "history"].includes(state.screen)) show(state.screen);
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
}

$("refresh").addEventListener("click", () => refreshAll());

// ------------------------------------------------------------------ balances
function passProblem() {
  const p = state.balances && state.balances.pass;
  if (!p) return null;
  if (p.migrated_to || p.status === "migrated") return "passMigrated";
  if (p.status === "suspended") return "passSuspended";
  if (p.status === "revoked") return "passRevoked";
  if (p.status === "active" && p.valid_until && p.valid_until < chainNow()) return "passExpired";
  return null;
}

function spendable() {
  if (!state.balances) return [];
  const now = chainNow();
  return state.balances.balances.filter((b) => b.left_cents > 0 && b.valid_until >= now).slice(0, MAX_ENTRIES);
}

function renderHome() {
  const problem = passProblem();
  $("pass-state").hidden = !problem;
  $("pass-state-text").textContent = problem ? t(problem) : "";
  const list = $("balances");
  list.replaceChildren();
  const b = state.balances;
  const note = $("home-note");
  note.hidden = true;
  if (problem) {
    // the banner says it all
  } else if (b && b.pass.status === "none" && !b.pass.migrated_to) {
    note.hidden = false;
    note.textContent = t("notEnrolled");
  } else if (b && !b.balances.length) {
    note.hidden = false;
    note.textContent = t("noCredit");
  }
  for (const item of (b && b.balances) || []) {
    const li = document.createElement("li");
    li.className = "pp-card";
    li.dataset.budget = item.budget;
    const h = document.createElement("h2");
    h.className = "utrecht-heading-3";
    h.textContent = item.name || `#${item.serial}`;
    const left = document.createElement("p");
    left.className = "pp-left";
    left.textContent = t("left", { left: money(item.left_cents) });
    const dl = document.createElement("dl");
    dl.className = "pp-terms";
    for (const [label, value] of [[t("category"), item.category_name || String(item.category)],
      [t("validUntil"), formatDate(item.valid_until, state.lang)]]) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dl.append(dt, dd);
    }
    li.append(h, left, dl);
    list.append(li);
  }
  $("show-pass").hidden = Boolean(problem) || !spendable().length;
  $("updated").textContent = b ? t("updated", { when: formatDateTime(b.fetchedAt, state.lang) }) : "";
}

$("show-pass").addEventListener("click", () => go("show"));

// ------------------------------------------------------------------ the pass QR
function limitCents() {
  const top = (state.config && state.config.scan_limit_cents) || 15_000;
  return state.limitCents ? Math.min(state.limitCents, top) : top;
}

async function drawPass() {
  const stop = $("show-stop");
  const problem = passProblem();
  const list = spendable();
  const box = $("pass-qr-box");
  if (problem || !list.length || !state.config) {
    stop.hidden = false;
    $("show-stop-text").textContent = problem ? t(problem) : t("noPassToShow");
    box.hidden = true;
    $("show-budgets").replaceChildren();
    $("show-valid").textContent = "";
    state.shown = null;
    return;
  }
  stop.hidden = true;
  box.hidden = false;
  const started = performance.now();
  const limit = limitCents();
  const entries = [];
  for (const b of list) {
    let nonce = state.nonces[b.budget];
    if (nonce === undefined) { // never online since this credit came: the lowest nonce never seen used
      const seen = new Set(state.used[b.budget] || []);
      nonce = 0;
      while (seen.has(nonce)) nonce++;
      state.nonces[b.budget] = nonce;
    }
    entries.push({ budget: b.budget, maxAmount: Math.min(b.left_cents, limit), nonce, name: b.name, serial: b.serial });
  }
  const deadline = chainNow() + ((state.config && state.config.pass_qr_ttl_seconds) || 86_400);
  const text = await signPass(state.key, { chainId: state.config.chain_id, contract: state.config.contract, deadline, entries });
  const canvas = $("pass-qr");
  const size = Math.min(box.clientWidth || window.innerWidth - 32, 560);
  const drawn = drawQr(canvas, text, size);
  const ms = performance.now() - started;
  canvas.dataset.version = String(drawn.version);
  canvas.dataset.chars = String(text.length);
  canvas.dataset.entries = String(entries.length);
  document.body.dataset.qrMs = ms.toFixed(1);
  document.body.dataset.qrDrawn = String(Number(document.body.dataset.qrDrawn || 0) + 1);
  state.shown = { entries, text, deadline };
  const ul = $("show-budgets");
  ul.replaceChildren();
  for (const e of entries) {
    const li = document.createElement("li");
    li.textContent = `${e.name || "#" + e.serial}: ${t("perScan", { max: money(e.maxAmount) })}`;
    ul.append(li);
  }
  $("show-valid").textContent = t("qrValid", { until: formatDateTime(deadline - ((state.config && state.config.clockOffset) || 0), state.lang) });
  $("show-notes").replaceChildren();
  if (!state.online) addNote(t("qrOffline"));
  else checkShown(text);
}

function addNote(text, reason) {
  const li = document.createElement("li");
  li.className = "pp-note";
  if (reason) li.dataset.reason = reason;
  li.textContent = text;
  $("show-notes").append(li);
}

/** The server's pre-check of the shown QR (no provider): anything the resident should know. */
async function checkShown(text) {
  try {
    const answer = await api("check", { qr: text });
    if (!state.shown || state.shown.text !== text) return;
    for (const e of answer.entries) {
      if (e.reason && e.reason !== "Ok") {
        const [what, next] = REASONS[state.lang][e.reason] || [e.message, ""];
        addNote(`${e.name || "#" + e.serial}: ${fill(what, contactValues())} ${fill(next, contactValues())}`, e.reason);
      }
    }
  } catch (e) {
    if (e instanceof Offline) setOnline(false);
  }
}

async function pollShown() {
  if (state.screen !== "show" || !state.shown || !state.online) return;
  const shown = state.shown;
  try {
    const answer = await api("nonces", { holder: state.address, items: shown.entries.map((e) => ({ budget: e.budget, nonce: e.nonce })) });
    const used = answer.items.filter((i) => i.used);
    if (!used.length || state.shown !== shown) return;
    for (const u of used) markUsed(u.budget, u.nonce);
    await store.put("used", state.used);
    await store.put("nonces", state.nonces);
    await refreshBalances();
    await refreshHistory();
    const paid = (state.history && state.history.items || []).filter((i) => i.kind === "redemption" &&
      used.some((u) => u.budget === i.budget && u.nonce === i.nonce)).pop();
    await drawPass(); // the new code first, then the note that says it is there
    if (paid) {
      $("show-paid").hidden = false;
      $("show-paid-text").textContent = t("paidNow", { amount: money(paid.amount_cents), provider: paid.provider_name || t("unknownProvider") });
    }
  } catch (e) {
    if (e instanceof Offline) setOnline(false);
  }
}

async function renderShow() {
  keepUnlocked();
  $("show-paid").hidden = true;
  document.body.classList.add("pp-bright");
  try {
    if (navigator.wakeLock && !state.wakeLock) state.wakeLock = await navigator.wakeLock.request("screen");
  } catch { /* no wake lock: the resident keeps the screen on */ }
  await drawPass();
  clearInterval(state.pollTimer);
  state.pollTimer = setInterval(pollShown, POLL_MS);
  if (state.online) { // the newest balances and nonces, then the code again if they changed
    const before = JSON.stringify([state.nonces, state.balances && state.balances.balances]);
    await refreshBalances();
    if (state.screen === "show" && JSON.stringify([state.nonces, state.balances && state.balances.balances]) !== before) await drawPass();
  }
}

function leaveShow() {
  clearInterval(state.pollTimer);
  document.body.classList.remove("pp-bright");
  if (state.wakeLock) state.wakeLock.release().catch(() => {});
  state.wakeLock = null;
  state.shown = null;
}

$("show-done").addEventListener("click", () => go("home"));

// ------------------------------------------------------------------ my pass (address QR)
function renderAddress() {
  const c = state.config;
  $("address-text").textContent = t(state.mode === "phone" ? "addressTextPhone" : "addressText");
  const address = getAddress(state.address);
  $("address-value").textContent = address.slice(0, 2) + " " + address.slice(2).match(/.{1,4}/g).join(" ");
  $("address-value").dataset.address = address;
  if (c) drawQr($("address-qr"), `ethereum:${address}@${c.chain_id}`, 280);
  const p = state.balances && state.balances.pass;
  $("address-status").textContent = !p ? "" : p.status === "active"
    ? t("addressStatusActive", { until: formatDate(p.valid_until, state.lang) })
    : p.status === "none" ? t("addressStatusNone") : passProblem() ? t(passProblem()) : "";
}

// ------------------------------------------------------------------ history
const KIND = { issued: "kindIssued", redemption: "kindRedemption", refund: "kindRefund", migrated_in: "kindMigratedIn",
  migrated_out: "kindMigratedOut", reclaimed: "kindReclaimed", corrected: "kindCorrected" };
const OUT = new Set(["redemption", "migrated_out", "reclaimed", "corrected"]);

async function renderHistory() {
  drawHistory();
  if (state.online) {
    await refreshHistory().catch((e) => ($("history-note").textContent = t("serverError", { message: e.message })));
    if (state.screen === "history") drawHistory();
  }
}

function drawHistory() {
  const h = state.history;
  const list = $("history-list");
  list.replaceChildren();
  const note = $("history-note");
  note.textContent = !state.online && h ? t("historyOffline", { when: formatDateTime(h.fetchedAt, state.lang) }) : "";
  const items = ((h && h.items) || []).slice().reverse();
  if (h && !items.length) note.textContent = t("historyEmpty");
  for (const i of items) {
    const li = document.createElement("li");
    li.dataset.kind = i.kind;
    const what = document.createElement("p");
    what.className = "pp-what";
    what.textContent = t(KIND[i.kind] || i.kind, { provider: i.provider_name || t("unknownProvider") });
    const amount = document.createElement("p");
    amount.className = "pp-amount-cell" + (OUT.has(i.kind) ? "" : " pp-in");
    amount.textContent = (OUT.has(i.kind) ? "−" : "+") + money(i.amount_cents).replace("−", "");
    const meta = document.createElement("p");
    meta.className = "pp-muted";
    meta.textContent = `${formatDateTime(i.time, state.lang)} · ${i.name || "#" + i.serial}`;
    li.append(what, amount, meta);
    list.append(li);
  }
}

// ------------------------------------------------------------------ more: limit, backup, help
function renderMore() {
  const top = (state.config && state.config.scan_limit_cents) || 15_000;
  $("limit-text").textContent = t("limitText", { max: money(top) });
  $("limit").value = (limitCents() / 100).toFixed(2).replace(".", state.lang === "nl" ? "," : ".");
  $("limit-status").textContent = "";
  $("backup-status").textContent = "";
  $("lock-status").textContent = "";
}

$("limit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const top = (state.config && state.config.scan_limit_cents) || 15_000;
  const cents = parseEuros($("limit").value);
  if (cents === null || cents < 1 || cents > top) return void ($("limit-status").textContent = t("limitBad", { max: money(top) }));
  state.limitCents = cents;
  await store.put("limit", cents);
  $("limit-status").textContent = t("limitSaved", { amount: money(cents) });
});

$("backup-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("backup-status");
  const password = $("backup-password").value;
  if (password.length < 10) return void (status.textContent = t("backupShort"));
  if (password !== $("backup-repeat").value) return void (status.textContent = t("backupMismatch"));
  if (!unlocked()) {
    state.afterUnlock = "more";
    status.textContent = t("needUnlock");
    return go("unlock");
  }
  status.textContent = t("backupMaking");
  $("backup-save").disabled = true;
  try {
    const keystore = await vault.exportKeystore(state.key, password);
    const name = `stadspas-backup-${getAddress(state.address).slice(2, 10)}.json`;
    const url = URL.createObjectURL(new Blob([JSON.stringify(keystore, null, 2)], { type: "application/json" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    $("backup-password").value = "";
    $("backup-repeat").value = "";
    status.textContent = t("backupDone", { file: name });
  } finally {
    $("backup-save").disabled = false;
  }
});

$("lock-now").addEventListener("click", () => {
  lock();
  $("lock-status").textContent = t("lockedNow");
});

$("lang").addEventListener("click", () => {
  state.lang = state.lang === "nl" ? "en" : "nl";
  localStorage.setItem("cp-pass-lang", state.lang);
  applyLanguage();
  setOnline(state.online);
  show(state.screen);
});

// ------------------------------------------------------------------ start
async function boot() {
  applyLanguage();
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/pass/sw.js", { scope: "/pass/" }).catch(() => {});
  const [v, config, balances, history, nonces, used, limit, mode] = await Promise.all(
    ["vault", "config", "balances", "history", "nonces", "used", "limit", "mode"].map((k) => store.get(k)));
  Object.assign(state, { config: config || null, balances: balances || null, history: history || null,
    nonces: nonces || {}, used: used || {}, limitCents: limit || null, mode: mode || "new", address: v ? v.address : null });
  $("dev-banner").hidden = !(state.config && state.config.dev_chain);
  show(location.hash.slice(1) || (state.address ? "home" : "welcome"));
  document.body.dataset.ready = "1";
  // secp256k1's precomputed tables, built while the resident types the PIN rather than after it
  setTimeout(() => privateKeyToAccount("0x" + "11".repeat(32)), 0);
  if (state.address) await refreshAll();
  else await refreshConfig();
  applyLanguage();
}

window.addEventListener("online", () => refreshAll());
window.addEventListener("offline", () => setOnline(false));

boot().catch((e) => {
  $("loading").textContent = t("serverError", { message: e.message });
  document.body.dataset.ready = "error";
});

export { ApiError };
