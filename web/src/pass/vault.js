// The pass key: made here, kept here, encrypted under the resident's PIN, never sent anywhere.
//
// - The key is a secp256k1 private key from the browser's CSPRNG (viem's generatePrivateKey).
// - At rest it is AES-GCM-256 ciphertext in IndexedDB; the AES key is PBKDF2-SHA256 of the PIN
//   with a random 16-byte salt and PBKDF2_ITERATIONS rounds (WebCrypto, non-extractable). The
//   pass address is the GCM additional data, so a vault copied under another address fails.
// - A wrong PIN is a failed GCM tag. After FREE_TRIES wrong PINs the app waits LOCK_BASE_MS,
//   doubling with each further wrong PIN (capped at LOCK_MAX_MS); the count survives reloads.
//   The key is never wiped: a resident who forgot the PIN goes to the desk (new phone + migrate).
// - Backup: Web3 Secret Storage v3 (pbkdf2 + aes-128-ctr + keccak MAC), what eth-account,
//   geth and most wallets read; restore reads the same.
import { bytesToHex, getAddress, hexToBytes, keccak256 } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import * as store from "./store.js";

// One unlock = one PBKDF2 of this many rounds: chosen so that four times its time on the build
// machine (a phone four times slower) stays under 1.5 s; `make bench-pass` prints the figures.
export const PBKDF2_ITERATIONS = 400_000;
export const KEYSTORE_ITERATIONS = 262_144; // eth-account's own pbkdf2 default
export const FREE_TRIES = 3;
export const LOCK_BASE_MS = 30_000;
export const LOCK_MAX_MS = 60 * 60_000;
export const PIN_PATTERN = /^\d{5,8}$/;

const enc = new TextEncoder();
const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const random = (n) => crypto.getRandomValues(new Uint8Array(n));

export class WrongPin extends Error {
  constructor(failures, waitMs) {
    super("wrong PIN");
    this.failures = failures;
    this.waitMs = waitMs;
  }
}
export class LockedOut extends Error {
  constructor(waitMs, failures) {
    super("locked out");
    this.waitMs = waitMs;
    this.failures = failures;
  }
}
export class BackupError extends Error {
  constructor(kind, detail = "") {
    super(detail || kind);
    this.kind = kind; // "file" | "password"
    this.detail = detail;
  }
}

/** A PIN the app accepts: 5-8 digits, not all one digit, not a run up or down. */
export function pinProblem(pin) {
  if (!PIN_PATTERN.test(pin)) return "pinShort";
  const d = [...pin].map(Number);
  const steps = new Set(d.slice(1).map((x, i) => x - d[i]));
  if (steps.size === 1 && [0, 1, -1].includes([...steps][0])) return "pinEasy";
  return null;
}

export const lockDelay = (failures) =>
  failures < FREE_TRIES ? 0 : Math.min(LOCK_MAX_MS, LOCK_BASE_MS * 2 ** (failures - FREE_TRIES));

async function pinKey(pin, salt, iterations) {
  const base = await crypto.subtle.importKey("raw", enc.encode(pin), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, base,
    { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

export const newKey = () => generatePrivateKey();
export const addressOf = (privateKey) => privateKeyToAccount(privateKey).address;

/** Encrypts `privateKey` (0x hex) under `pin` and stores it; returns the pass address. */
export async function seal(privateKey, pin) {
  const address = addressOf(privateKey);
  const salt = random(16);
  const iv = random(12);
  const key = await pinKey(pin, salt, PBKDF2_ITERATIONS);
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: enc.encode(address) },
    key, hexToBytes(privateKey)));
  await store.put("vault", {
    version: 1, address, kdf: "PBKDF2-SHA256", iterations: PBKDF2_ITERATIONS, cipher: "AES-GCM-256",
    salt: b64(salt), iv: b64(iv), ciphertext: b64(ct),
  });
  await store.put("lock", { failures: 0, until: 0 });
  return address;
}

export const vault = () => store.get("vault");

/** How long the app must still wait before the next try (0: now), and the failures so far. */
export async function lockState(now = Date.now()) {
  const lock = (await store.get("lock")) || { failures: 0, until: 0 };
  return { failures: lock.failures, waitMs: Math.max(0, lock.until - now) };
}

/** The private key (0x hex) if `pin` is right; WrongPin / LockedOut otherwise. */
export async function open(pin) {
  const v = await vault();
  if (!v) throw new Error("no pass on this phone");
  const { failures, waitMs } = await lockState();
  if (waitMs > 0) throw new LockedOut(waitMs, failures);
  let plain;
  try {
    const key = await pinKey(String(pin), unb64(v.salt), v.iterations);
    plain = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: unb64(v.iv), additionalData: enc.encode(v.address) },
      key, unb64(v.ciphertext)));
  } catch {
    const count = failures + 1;
    const wait = lockDelay(count);
    await store.put("lock", { failures: count, until: Date.now() + wait });
    throw new WrongPin(count, wait);
  }
  await store.put("lock", { failures: 0, until: 0 });
  const privateKey = bytesToHex(plain);
  plain.fill(0);
  if (addressOf(privateKey) !== v.address) throw new Error("the stored pass does not match its address");
  return privateKey;
}

// ------------------------------------------------------------------ backup (Web3 Secret Storage v3)
async function keystoreKey(password, salt, iterations) {
  const base = await crypto.subtle.importKey("raw", enc.encode(password.normalize("NFKD")), "PBKDF2", false, ["deriveBits"]);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, base, 256));
}

async function aesCtr(dk, iv, data) {
  const key = await crypto.subtle.importKey("raw", dk.slice(0, 16), "AES-CTR", false, ["encrypt"]);
  return new Uint8Array(await crypto.subtle.encrypt({ name: "AES-CTR", counter: iv, length: 128 }, key, data));
}

const concat = (a, b) => {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

function uuid4() {
  const b = random(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = bytesToHex(b).slice(2);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The keystore JSON object of `privateKey`, encrypted with `password`. */
export async function exportKeystore(privateKey, password) {
  const salt = random(32);
  const iv = random(16);
  const dk = await keystoreKey(password, salt, KEYSTORE_ITERATIONS);
  const ciphertext = await aesCtr(dk, iv, hexToBytes(privateKey));
  const mac = keccak256(concat(dk.slice(16, 32), ciphertext));
  return {
    version: 3, id: uuid4(), address: addressOf(privateKey).slice(2).toLowerCase(),
    crypto: {
      cipher: "aes-128-ctr", cipherparams: { iv: bytesToHex(iv).slice(2) }, ciphertext: bytesToHex(ciphertext).slice(2),
      kdf: "pbkdf2", kdfparams: { c: KEYSTORE_ITERATIONS, dklen: 32, prf: "hmac-sha256", salt: bytesToHex(salt).slice(2) },
      mac: mac.slice(2),
    },
  };
}

const hexField = (value, name, bytes) => {
  if (typeof value !== "string" || !/^(0x)?[0-9a-fA-F]*$/.test(value)) throw new BackupError("file", `${name} is not hex`);
  const out = hexToBytes(value.startsWith("0x") ? value : "0x" + value);
  if (bytes && out.length !== bytes) throw new BackupError("file", `${name} has ${out.length} bytes, expected ${bytes}`);
  return out;
};

/** The private key in a keystore (text of the file) if `password` opens it; BackupError otherwise. */
export async function importKeystore(text, password) {
  let ks;
  try {
    ks = JSON.parse(text);
  } catch {
    throw new BackupError("file", "not JSON");
  }
  const c = ks && (ks.crypto || ks.Crypto);
  if (!ks || ks.version !== 3 || !c) throw new BackupError("file", "not a version 3 keystore");
  if (c.cipher !== "aes-128-ctr") throw new BackupError("file", `cipher ${String(c.cipher).slice(0, 20)}`);
  if (c.kdf !== "pbkdf2") throw new BackupError("file", `key derivation ${String(c.kdf).slice(0, 20)}; this app reads pbkdf2 backups`);
  const p = c.kdfparams || {};
  if (p.prf !== "hmac-sha256" || p.dklen !== 32 || !Number.isInteger(p.c) || p.c < 1 || p.c > 10_000_000) {
    throw new BackupError("file", "unusual pbkdf2 parameters");
  }
  const salt = hexField(p.salt, "salt");
  const iv = hexField(c.cipherparams && c.cipherparams.iv, "iv", 16);
  const ciphertext = hexField(c.ciphertext, "ciphertext", 32);
  const mac = hexField(c.mac, "mac", 32);
  const dk = await keystoreKey(password, salt, p.c);
  if (keccak256(concat(dk.slice(16, 32), ciphertext)) !== bytesToHex(mac)) throw new BackupError("password");
  const privateKey = bytesToHex(await aesCtr(dk, iv, ciphertext));
  if (ks.address && getAddress("0x" + String(ks.address).replace(/^0x/, "")) !== addressOf(privateKey)) {
    throw new BackupError("file", "the address does not match the key");
  }
  return privateKey;
}
