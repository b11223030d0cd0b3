// A coupon sheet for a resident without a smartphone, made in this page (issue 16). The key is
// made here, lives only in this module's memory while the sheet is made, and never leaves the
// page: the server sees the key's address and the signed coupons (CP2 codes), never the key.
//   1. the server plans the sheet (citypass/coupons.plan_sheet: face values, nonces, deadline);
//   2. a fresh key (crypto.getRandomValues, in a Uint8Array);
//   3. the server prepares the enrolment with credit for the key's address (the usual desk route);
//   4. the key signs every planned coupon (the pass app's CP2 encoder, web/src/pass/passqr.js);
//   5. the server checks each code against the plan (coupons.sheet_from_codes) and draws the PDF;
//   6. the key is overwritten with zeros and dropped; only then the officer's wallet sends the
//      enrolment, and the register is written once the chain shows the pass.
import { bytesToHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { signPass } from "../pass/passqr.js";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** 32 random bytes that are a valid secp256k1 key, in a buffer the caller wipes. */
export function freshKey() {
  for (;;) {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const v = BigInt(bytesToHex(key));
    if (v > 0n && v < N) return key;
    key.fill(0);
  }
}

/** Overwrite the key's bytes (JavaScript cannot wipe the hex strings viem made from it; they are
 * dropped with every reference and left to the garbage collector). */
export function wipe(key) {
  if (key) key.fill(0);
}

export const addressOf = (key) => privateKeyToAccount(bytesToHex(key)).address;

/** Every coupon of the server's plan signed with `key`, in the plan's order. */
export async function signCoupons(key, plan, chainId, contract) {
  const out = [];
  for (const c of plan.coupons) {
    out.push(await signPass(bytesToHex(key), {
      chainId, contract, deadline: c.deadline,
      entries: [{ budget: BigInt(c.budget), maxAmount: c.amount_cents, nonce: c.nonce }],
    }));
  }
  return out;
}

/** base64 -> a PDF Blob. */
export function pdfBlob(base64) {
  const bin = atob(base64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type: "application/pdf" });
}
