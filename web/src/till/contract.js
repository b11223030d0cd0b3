// The few CityPass v2 calls the till makes through the wallet, encoded with viem, and the
// receipts it waits for through the server's RPC endpoint.
import { decodeEventLog, encodeFunctionData, parseAbi } from "viem";
import { Offline, rpc } from "./api.js";

const VOUCHER = "(address holder,address provider,uint256 budget,uint256 maxAmount,uint256 nonce,uint256 deadline)";
export const ABI = parseAbi([
  `function redeem(${VOUCHER} v, bytes signature, uint256 amount, uint256 coPayment)`,
  `function redeemRefundable(${VOUCHER} v, bytes signature, uint256 amount, uint256 coPayment)`,
  `function redeemBatch(${VOUCHER}[] vouchers, bytes[] signatures, uint256[] amounts, uint256[] coPayments) returns (uint256)`,
  "function refund(address holder, uint256 budget, uint256 nonce, uint256 amount)",
  "event VoucherSkipped(address indexed holder, uint256 indexed budget, uint256 nonce, uint8 reason)",
  "event Redeemed(address indexed holder, uint256 nonce, uint256 coPayment)",
]);

// The contract's Reason enum, in its order (V2-SPEC; citypass/reasons.py mirrors it).
export const REASONS = [
  "Ok", "Paused", "BudgetNotStarted", "BudgetEnded", "BudgetNotEnded", "NoPass", "PassSuspended",
  "PassRevoked", "PassMigrated", "PassExpired", "NotAProvider", "ProviderSuspended", "ProviderRemoved",
  "CategoryNotApproved", "AboveProviderLimit", "InsufficientCredit", "ZeroAmount", "VoucherExpired",
  "NonceUsed", "BadSignature", "TransferNotAllowed", "AboveVoucherLimit", "WrongProvider",
];

const struct = (v) => ({
  holder: v.holder, provider: v.provider, budget: BigInt(v.budget), maxAmount: BigInt(v.maxAmount),
  nonce: BigInt(v.nonce), deadline: BigInt(v.deadline),
});

export const encodeRedeem = ({ voucher, signature, amount, coPayment, refundable }) =>
  encodeFunctionData({
    abi: ABI,
    functionName: refundable ? "redeemRefundable" : "redeem",
    args: [struct(voucher), signature, BigInt(amount), BigInt(coPayment || 0)],
  });

export const encodeBatch = (items) =>
  encodeFunctionData({
    abi: ABI,
    functionName: "redeemBatch",
    args: [
      items.map((i) => struct(i.voucher)),
      items.map((i) => i.signature),
      items.map((i) => BigInt(i.amount)),
      items.map((i) => BigInt(i.coPayment || 0)),
    ],
  });

export const encodeRefund = ({ holder, budget, nonce, amount }) =>
  encodeFunctionData({ abi: ABI, functionName: "refund", args: [holder, BigInt(budget), BigInt(nonce), BigInt(amount)] });

/** VoucherSkipped events of a receipt: [{holder, budget, nonce, reason}] with the reason's name. */
export function skippedIn(receipt, contract) {
  const out = [];
  for (const log of receipt.logs || []) {
    if (log.address.toLowerCase() !== contract.toLowerCase()) continue;
    try {
      const ev = decodeEventLog({ abi: ABI, data: log.data, topics: log.topics });
      if (ev.eventName === "VoucherSkipped") {
        out.push({ holder: ev.args.holder, budget: ev.args.budget, nonce: ev.args.nonce, reason: REASONS[ev.args.reason] || "Unknown" });
      }
    } catch {
      // another event of the contract
    }
  }
  return out;
}

/** The holder of the redemption with `nonce` in a transaction (its Redeemed event), or null. */
export async function redemptionHolder(txHash, contract, nonce) {
  const receipt = await rpc("eth_getTransactionReceipt", [txHash]);
  for (const log of (receipt && receipt.logs) || []) {
    if (log.address.toLowerCase() !== contract.toLowerCase()) continue;
    try {
      const ev = decodeEventLog({ abi: ABI, data: log.data, topics: log.topics });
      if (ev.eventName === "Redeemed" && ev.args.nonce === BigInt(nonce)) return ev.args.holder;
    } catch {
      // another event
    }
  }
  return null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Wait for a transaction's receipt. Resolves {receipt} once it is on chain, or {dropped: true}
 * when the node no longer knows the transaction at all. Network errors are retried for ever
 * (the caller shows that it is still checking): the till never guesses.
 */
export async function waitForReceipt(hash, { onOffline, isDropped } = {}) {
  let delay = 150;
  let unknownSince = null;
  for (;;) {
    try {
      const receipt = await rpc("eth_getTransactionReceipt", [hash]);
      if (receipt) return { receipt };
      const tx = await rpc("eth_getTransactionByHash", [hash]);
      if (!tx) {
        unknownSince = unknownSince ?? Date.now();
        if (Date.now() - unknownSince > 4000 && (!isDropped || (await isDropped()))) return { dropped: true };
      } else {
        unknownSince = null;
      }
    } catch (e) {
      if (!(e instanceof Offline)) throw e;
      if (onOffline) onOffline();
    }
    await sleep(delay);
    delay = Math.min(delay * 1.5, 2000);
  }
}
