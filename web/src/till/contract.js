// The few CityPass v2 calls the till makes through the wallet, encoded with viem, and the
// receipts it waits for through the server's RPC endpoint.
import { decodeEventLog, encodeFunctionData, parseAbi } from "viem";
import { Offline, rpc, SLOW_TIMEOUT_MS } from "./api.js";

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

// A transaction the node no longer knows is called dropped only after DROP_AFTER_MS *and*
// DROP_AFTER_BLOCKS new blocks without it (an L2's node may not show pooled transactions, and a
// slow block is no reason to give up), or after DROP_IDLE_MS when no blocks come at all.
export const DROP_AFTER_MS = 4000;
export const DROP_AFTER_BLOCKS = 2;
export const DROP_IDLE_MS = 30000;
const POLL_MAX_MS = 1000; // often enough to show each block of the confirmations

const slow = { timeoutMs: SLOW_TIMEOUT_MS };
const blockNumber = async () => Number(BigInt(await rpc("eth_blockNumber", [], slow)));

/**
 * Wait for a transaction's receipt, `confirmations` blocks deep (blocks on top of its block, as
 * the CLI's --confirmations). Resolves {receipt} once its block has that many blocks on top and
 * is still the chain's block at its height (the receipt is read again then), or {dropped: true}
 * when the node no longer knows the transaction at all. `onProgress({stage, have, want})` says
 * where it is: stage "pending" (sent, not in a block: also after a reorg took it out again) or
 * "confirming" (in a block, `have` of `want` blocks on top). Network errors are retried for ever
 * (`onOffline`; the caller shows that it is still checking): the till never guesses.
 */
export async function waitForReceipt(hash, { onOffline, isDropped, onProgress, confirmations = 0 } = {}) {
  const want = Math.max(0, Number(confirmations) || 0);
  let delay = 150;
  let unknownSince = null;
  let unknownAtBlock = null;
  let said = "";
  const progress = (stage, have = 0) => {
    const key = `${stage}:${have}`;
    if (onProgress && key !== said) onProgress({ stage, have, want });
    said = key;
  };
  for (;;) {
    try {
      const receipt = await rpc("eth_getTransactionReceipt", [hash], slow);
      if (receipt && want === 0) return { receipt };
      if (receipt) {
        unknownSince = null;
        const mined = Number(BigInt(receipt.blockNumber));
        const have = Math.max(0, (await blockNumber()) - mined);
        if (have >= want) {
          // Still the chain's block at that height, and the transaction still in it?
          const block = await rpc("eth_getBlockByNumber", ["0x" + mined.toString(16), false], slow);
          const again = await rpc("eth_getTransactionReceipt", [hash], slow);
          if (block && again && block.hash === receipt.blockHash && again.blockHash === receipt.blockHash) return { receipt: again };
          progress("pending"); // reorganised since: wait for where it lands now
        } else {
          progress("confirming", have);
        }
      } else {
        const tx = await rpc("eth_getTransactionByHash", [hash], slow);
        if (!tx) {
          const head = await blockNumber();
          if (unknownSince === null) [unknownSince, unknownAtBlock] = [Date.now(), head];
          const unknownFor = Date.now() - unknownSince;
          const gone = (unknownFor > DROP_AFTER_MS && head - unknownAtBlock >= DROP_AFTER_BLOCKS) || unknownFor > DROP_IDLE_MS;
          if (gone && (!isDropped || (await isDropped()))) return { dropped: true };
        } else {
          unknownSince = null;
        }
        progress("pending");
      }
    } catch (e) {
      if (!(e instanceof Offline)) throw e;
      said = "";
      if (onOffline) onOffline();
    }
    await sleep(delay);
    delay = Math.min(delay * 1.5, POLL_MAX_MS);
  }
}
