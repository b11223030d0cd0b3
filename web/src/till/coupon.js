// Paper coupons at the till. The rules are citypass/coupons.py's (the library is the reference;
// tests/web/test_till_coupon.py checks this copy shows the same numbers):
// - a scanned code is a paper coupon when it carries exactly one voucher, for any provider, whose
//   deadline is its budget's end (the budget id's low 40 bits). A phone's pass QR lives 24 hours.
// - its check number is the first 8 bytes of the voucher's EIP-712 digest, big-endian, mod 10^6,
//   as six digits "482 913": the same number is printed on the coupon, so the clerk sees that the
//   code scanned is the coupon in the resident's hand.
// The till can tell both offline: everything comes from the code itself.
import { hashTypedData } from "viem";
import { ANY_PROVIDER } from "./passqr.js";

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
const MASK40 = (1n << 40n) - 1n;

/** The budget's last second, from its id (citypass/budget_id.py). */
export const budgetEnd = (budget) => BigInt(budget) & MASK40;

/** Is this voucher (of a code holding `count` vouchers) a paper coupon? */
export function isCoupon(voucher, count) {
  return count === 1 && String(voucher.provider).toLowerCase() === ANY_PROVIDER
    && BigInt(voucher.deadline) === budgetEnd(voucher.budget);
}

/** The six-digit check number of a voucher, "482 913". */
export function checkNumber(voucher, chainId, contract) {
  const digest = hashTypedData({
    domain: { name: "CityPass", version: "2", chainId: BigInt(chainId), verifyingContract: contract },
    types: VOUCHER_TYPES,
    primaryType: "Voucher",
    message: {
      holder: voucher.holder, provider: voucher.provider, budget: BigInt(voucher.budget),
      maxAmount: BigInt(voucher.maxAmount), nonce: BigInt(voucher.nonce), deadline: BigInt(voucher.deadline),
    },
  });
  const digits = (BigInt(digest.slice(0, 18)) % 1000000n).toString().padStart(6, "0");
  return `${digits.slice(0, 3)} ${digits.slice(3)}`;
}
