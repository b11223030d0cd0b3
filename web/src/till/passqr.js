// Reads the pass QR (`CP2:` + base45 payload, see citypass/passqr.py) in the browser. Online,
// the server reads and checks it (POST /api/check); this copy is for the offline queue only,
// when the till must still know the vouchers to submit them later through redeemBatch.

const B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
export const ANY_PROVIDER = "0x0000000000000000000000000000000000000000";

export class PassQrError extends Error {}

export function base45Decode(text) {
  const out = [];
  for (let i = 0; i < text.length; i += 3) {
    const chunk = text.slice(i, i + 3);
    const digits = [...chunk].map((c) => {
      const d = B45.indexOf(c);
      if (d < 0) throw new PassQrError(`character ${JSON.stringify(c)} is not base45`);
      return d;
    });
    if (digits.length === 1) throw new PassQrError("base45 text has a dangling character");
    const n = digits[0] + digits[1] * 45 + (digits.length === 3 ? digits[2] * 2025 : 0);
    if (digits.length === 3) {
      if (n > 0xffff) throw new PassQrError("base45 group out of range");
      out.push(n >> 8, n & 0xff);
    } else {
      if (n > 0xff) throw new PassQrError("base45 group out of range");
      out.push(n);
    }
  }
  return Uint8Array.from(out);
}

const hex = (bytes) => "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** EIP-2098 compact (r || yParityAndS) -> 65-byte r || s || v hex. */
export function expandSignature(compact) {
  const r = compact.slice(0, 32);
  const vs = compact.slice(32, 64);
  const yParity = vs[0] >> 7;
  const s = Uint8Array.from(vs);
  s[0] &= 0x7f;
  return hex(r) + hex(s).slice(2) + (27 + yParity).toString(16);
}

/** Parse `CP2:...` into {chainId, contract, holder, deadline, provider, entries[{voucher, signature}]}. */
export function parsePassQr(text) {
  const trimmed = String(text).trim();
  if (!trimmed.startsWith("CP2:")) throw new PassQrError("not a CP2 pass code");
  const bytes = base45Decode(trimmed.slice(4));
  let at = 0;
  const take = (n) => {
    if (at + n > bytes.length) throw new PassQrError("pass code is cut short");
    const part = bytes.slice(at, at + n);
    at += n;
    return part;
  };
  const uint = (n) => take(n).reduce((acc, b) => acc * 256n + BigInt(b), 0n);
  const format = Number(uint(1));
  if (format !== 2) throw new PassQrError(`pass code format ${format} is not 2`);
  const chainId = uint(8);
  const contract = hex(take(20));
  const holder = hex(take(20));
  const deadline = uint(5);
  const flag = Number(uint(1));
  if (flag > 1) throw new PassQrError("provider flag must be 0 or 1");
  const provider = flag === 1 ? hex(take(20)) : ANY_PROVIDER;
  const count = Number(uint(1));
  if (count < 1 || count > 8) throw new PassQrError("a pass code holds 1 to 8 vouchers");
  const entries = [];
  for (let i = 0; i < count; i++) {
    const budget = uint(20);
    const maxAmount = uint(4);
    const nonce = uint(4);
    const signature = expandSignature(take(64));
    entries.push({ voucher: { holder, provider, budget, maxAmount, nonce, deadline }, signature });
  }
  if (at !== bytes.length) throw new PassQrError("pass code has extra bytes");
  return { chainId, contract, holder, deadline, provider, entries };
}
