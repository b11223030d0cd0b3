// The pass QR (`CP2:` + base45 payload; the format is citypass/passqr.py's docstring), signed
// here with the pass key: one EIP-712 spending-limit voucher per budget, any provider.
import { privateKeyToAccount } from "viem/accounts";

const B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
export const ANY_PROVIDER = "0x0000000000000000000000000000000000000000";
export const MAX_ENTRIES = 8;
const N_HALF = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

const VOUCHER_TYPES = {
  Voucher: [
    { name: "holder", type: "address" },
    { name: "provider", type: "address" },
    { name: "budget", type: "uint256" },
    { name: "maxAmount", type: "uint256" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
};

export function base45(bytes) {
  let out = "";
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    let n = bytes[i] * 256 + bytes[i + 1];
    const c = n % 45;
    n = (n - c) / 45;
    out += B45[c] + B45[n % 45] + B45[Math.floor(n / 45)];
  }
  if (bytes.length % 2) {
    const n = bytes[bytes.length - 1];
    out += B45[n % 45] + B45[Math.floor(n / 45)];
  }
  return out;
}

const hexBytes = (hex) => {
  const h = hex.slice(2);
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
};

function uint(value, width) {
  let v = BigInt(value);
  if (v < 0n || v >= 1n << BigInt(8 * width)) throw new RangeError(`${value} does not fit ${width} bytes`);
  const out = new Uint8Array(width);
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** 65-byte r||s||v signature (0x hex, low s) -> 64-byte EIP-2098 r||yParityAndS. */
export function compact(signature) {
  const bytes = hexBytes(signature);
  const s = BigInt("0x" + signature.slice(66, 130));
  if (s > N_HALF) throw new Error("high-s signature");
  const parity = bytes[64] >= 27 ? bytes[64] - 27 : bytes[64];
  const out = bytes.slice(0, 64);
  out[32] |= parity << 7;
  return out;
}

/**
 * Signs and packs the pass QR text.
 * entries: [{budget: bigint|string, maxAmount: number (cents), nonce: number}], deadline: unix seconds.
 */
export async function signPass(privateKey, { chainId, contract, deadline, entries }) {
  if (entries.length < 1 || entries.length > MAX_ENTRIES) throw new RangeError(`a pass QR holds 1 to ${MAX_ENTRIES} vouchers`);
  const account = privateKeyToAccount(privateKey);
  const domain = { name: "CityPass", version: "2", chainId: Number(chainId), verifyingContract: contract };
  const parts = [Uint8Array.of(2), uint(chainId, 8), hexBytes(contract), hexBytes(account.address), uint(deadline, 5),
    Uint8Array.of(0), Uint8Array.of(entries.length)];
  for (const e of entries) {
    const message = { holder: account.address, provider: ANY_PROVIDER, budget: BigInt(e.budget),
      maxAmount: BigInt(e.maxAmount), nonce: BigInt(e.nonce), deadline: BigInt(deadline) };
    const signature = await account.signTypedData({ domain, types: VOUCHER_TYPES, primaryType: "Voucher", message });
    parts.push(uint(e.budget, 20), uint(e.maxAmount, 4), uint(e.nonce, 4), compact(signature));
  }
  const size = parts.reduce((n, p) => n + p.length, 0);
  const payload = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    payload.set(p, at);
    at += p.length;
  }
  return "CP2:" + base45(payload);
}
