// What the desk and the finance page share: the language switch, the back-office API, the
// officer's wallet (found through EIP-6963, the till's code), Sign-In with Ethereum (EIP-4361:
// the server's nonce, the wallet's personal_sign, an HttpOnly session cookie), and sending the
// transactions the server prepared from the officer's own wallet, waiting for them on chain.
import { getAddress, isAddress, toHex } from "viem";
import { discoverWallets, Wallet, isRejection } from "../till/wallet.js";
import { waitForReceipt } from "../till/contract.js";
import { Camera, warmUp } from "../till/scan.js";

export { isRejection, Camera, warmUp };

let strings = {};
let lang = localStorage.getItem("citypass-backoffice-lang") || "nl";
export const getLang = () => lang;

export function t(key, params = {}) {
  const table = strings[lang] || {};
  let text = table[key] ?? (strings.nl || {})[key] ?? key;
  for (const [k, v] of Object.entries(params)) text = text.split(`{${k}}`).join(String(v));
  return text;
}

/** Fill every [data-t] element (and [data-t-label] aria-labels) in the current language. */
export function translate(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  for (const el of root.querySelectorAll("[data-t-label]")) el.setAttribute("aria-label", t(el.dataset.tLabel));
  const other = lang === "nl" ? "en" : "nl";
  const button = document.getElementById("lang");
  if (button) {
    button.textContent = other === "en" ? "English" : "Nederlands";
    button.setAttribute("lang", other);
  }
}

export function setupLanguage(table, onChange) {
  strings = table;
  translate();
  document.getElementById("lang").addEventListener("click", () => {
    lang = lang === "nl" ? "en" : "nl";
    localStorage.setItem("citypass-backoffice-lang", lang);
    translate();
    onChange();
  });
}

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

export function euro(cents) {
  const n = Number(cents) / 100;
  return new Intl.NumberFormat(lang === "nl" ? "nl-NL" : "en-GB", { style: "currency", currency: "EUR" }).format(n);
}

export function day(ts) {
  return new Intl.DateTimeFormat(lang === "nl" ? "nl-NL" : "en-GB", { dateStyle: "medium", timeZone: "UTC" }).format(new Date(Number(ts) * 1000));
}

export function moment(ts) {
  return new Intl.DateTimeFormat(lang === "nl" ? "nl-NL" : "en-GB", { dateStyle: "short", timeStyle: "medium" }).format(new Date(Number(ts) * 1000));
}

export const short = (a) => (a ? `${a.slice(0, 8)}…${a.slice(-6)}` : "");

/** Parse euros typed by an officer ("12,50", "12.50", "12") into cents, or null. */
export function parseEuros(text) {
  const s = String(text).trim().replace(",", ".");
  if (!/^\d{1,9}(\.\d{1,2})?$/.test(s)) return null;
  const [whole, frac = ""] = s.split(".");
  return Number(whole) * 100 + Number((frac + "00").slice(0, 2));
}

// ------------------------------------------------------------------ the API
export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "http_" + status;
    this.field = err.field;
  }
}

export async function api(route, body = {}) {
  let response;
  try {
    response = await fetch("/api/backoffice/" + route, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, { error: { code: "offline", message: t("offline") } });
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    throw new ApiError(response.status, null);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export async function publicApi(route, body = {}) {
  const response = await fetch("/api/" + route, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// ------------------------------------------------------------------ the wallet and sign-in
let wallet = null;
export const officerWallet = () => wallet;

export async function connectWallet(deployment) {
  const found = await discoverWallets();
  if (!found.length) throw Object.assign(new Error(t("noWallet")), { code: "no_wallet" });
  wallet = new Wallet(found[0]);
  await wallet.connect();
  if (wallet.chainId !== deployment.chain_id) await wallet.switchTo(deployment);
  return wallet;
}

/** EIP-4361: the server's nonce, the message built here, signed by the wallet, checked by the server. */
export async function signIn(page, deployment) {
  const w = await connectWallet(deployment);
  const n = await api("nonce");
  const address = getAddress(w.account);
  const message = [
    `${n.domain} wants you to sign in with your Ethereum account:`,
    address,
    "",
    n.statement,
    "",
    `URI: ${n.uri}`,
    "Version: 1",
    `Chain ID: ${n.chain_id}`,
    `Nonce: ${n.nonce}`,
    `Issued At: ${n.issued_at}`,
    `Expiration Time: ${n.expiration_time}`,
  ].join("\n");
  const signature = await w.request("personal_sign", [toHex(message), address]);
  return api("signin", { page, message, signature });
}

export const signOut = () => api("signout");

/**
 * Send a transaction the server prepared ({to, data, value}) from the officer's wallet and wait
 * until it is on chain. Resolves with {hash, receipt}; throws if the wallet refused or it failed.
 */
export async function sendPrepared(tx, onState = () => {}) {
  if (!wallet) throw new Error(t("noWallet"));
  onState("wallet");
  const params = { from: wallet.account, to: tx.to, data: tx.data || "0x" };
  if (tx.value && BigInt(tx.value) > 0n) params.value = tx.value;
  const hash = await wallet.request("eth_sendTransaction", [params]);
  onState("pending", hash);
  const { receipt, dropped } = await waitForReceipt(hash, {});
  if (dropped) throw new Error(t("txDropped"));
  if (Number(BigInt(receipt.status)) !== 1) throw new Error(t("txFailed"));
  return { hash, receipt };
}

/** A short sentence for an error (the server's own sentence, a wallet refusal, ...). */
export function explain(e) {
  if (isRejection(e)) return t("walletRejected");
  if (e && e.code === "no_wallet") return t("noWallet");
  if (e instanceof ApiError && e.status === 401) return t("signedOut") + " " + e.message;
  if (e instanceof ApiError && e.status === 403) return t("forbidden") + " " + e.message;
  if (e instanceof ApiError && e.status === 400 && t("err_" + e.code) !== "err_" + e.code) return t("err_" + e.code);
  return (e && e.message) || String(e);
}

// ------------------------------------------------------------------ the pass app's address QR (EIP-681)
/** `ethereum:<EIP-55 address>@<chainId>` -> the address; throws with a sentence otherwise. */
export function parseAddressQr(text, chainId) {
  const m = /^ethereum:(0x[0-9a-fA-F]{40})(?:@(\d+))?$/.exec(String(text).trim());
  if (!m) throw new Error(t("qrNotAddress"));
  if (!isAddress(m[1], { strict: true }) || getAddress(m[1]) !== m[1]) throw new Error(t("qrBadChecksum"));
  if (m[2] && Number(m[2]) !== chainId) throw new Error(t("qrWrongChain", { chain: m[2] }));
  return m[1];
}

/** One camera for the page: scans until an address QR is read into `input`. */
export class AddressScanner {
  constructor(video, status, chainId, onRead = () => {}) {
    this.onRead = onRead;
    this.video = video;
    this.status = status;
    this.chainId = chainId;
    this.camera = null;
    this.target = null;
  }

  async start(input, button) {
    this.stop();
    this.target = input;
    this.button = button;
    this.camera = new Camera(this.video, (text) => this.found(text));
    this.status.textContent = t("cameraOn");
    if (button) button.textContent = t("cameraStop");
    try {
      await this.camera.start();
    } catch (e) {
      this.status.textContent = t("cameraError");
      this.stop();
    }
  }

  found(text) {
    try {
      const address = parseAddressQr(text, this.chainId);
      this.target.value = address;
      this.target.dispatchEvent(new Event("input", { bubbles: true }));
      this.status.textContent = t("qrRead", { address: short(address) });
      this.stop(false);
      this.onRead(address, this.target);
    } catch (e) {
      this.status.textContent = e.message;
      this.camera.reset();
    }
  }

  stop(clear = true) {
    if (this.camera) this.camera.stop();
    this.camera = null;
    if (this.button) this.button.textContent = t("scan");
    if (clear && this.status.textContent === t("cameraOn")) this.status.textContent = "";
  }

  get running() {
    return Boolean(this.camera && this.camera.running);
  }
}

export function roleName(role) {
  return t("role_" + role);
}

/** Show `message` in `box` with a style (bo-done | bo-error | bo-warn); "" hides it. */
export function say(box, message, kind = "bo-done") {
  box.className = message ? kind : "";
  box.replaceChildren(...(message ? [el("p", { class: "utrecht-paragraph", text: message })] : []));
  box.hidden = !message;
}

/** The roles the officer holds through a Safe (as one of its owners): named in the officer bar's
 * note, with how this page proposes for those in `here`, and for the others that the command
 * line does it for now. */
export function renderViaSafe(session, box, here = []) {
  const via = (session && session.via_safe) || [];
  const elsewhere = via.filter((v) => !here.includes(v.role));
  box.hidden = !via.length;
  box.replaceChildren(...(via.length ? [
    el("h2", { class: "utrecht-heading-2", id: "via-safe-heading", text: t("viaSafeHeading") }),
    el("p", { class: "utrecht-paragraph", text: t("viaSafeText", { roles: via.map((v) => `${roleName(v.role)} (Safe ${v.safe})`).join(", ") }) }),
    ...(via.some((v) => here.includes(v.role)) ? [el("p", { class: "utrecht-paragraph", text: t("viaSafeHow") }),
      el("ol", { class: "utrecht-ordered-list" }, [1, 2, 3, 4].map((n) => el("li", { text: t("viaSafeStep" + n) })))] : []),
    ...(elsewhere.length ? [el("p", { class: "utrecht-paragraph", text: t("viaSafeCli", { roles: elsewhere.map((v) => roleName(v.role)).join(", ") }) })] : []),
  ] : []));
  return via.length > 0;
}

/** A role in words, with the name the admin grants it by (`citypass role grant registrar`)
 * where the officer's language calls it otherwise. */
export function roleGranted(role) {
  return t("roleWithGrant", { name: roleName(role), grant: role.toLowerCase().replace(/_/g, "-") });
}

/** The officer's own roles in words; with none of its own, "only through a Safe". */
export const roleList = (session) => (session.roles.length ? session.roles.map(roleGranted).join(", ") : t("viaSafeOnly"));
