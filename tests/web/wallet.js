// A stand-in for the provider's browser wallet, for the browser tests only (never shipped):
// an EIP-1193 provider announced through EIP-6963 and set as window.ethereum. It signs locally
// with a viem local account holding the test key (an Anvil dev key) and sends
// eth_sendRawTransaction through the server's own RPC endpoint, as a real wallet would.
//
// Configured by window.__standInWallet = {key, chainId, rpcPath, mode, name} set before it runs:
//   mode "ok"            behaves
//   mode "reject"        rejects every eth_sendTransaction with 4001
//   mode "rejectConnect" rejects eth_requestAccounts with 4001
//   mode "wrongChain"    starts on chain 1 and knows only it (switch -> 4902, add -> switches)
//   mode "vanish"        announces nothing and sets no window.ethereum
//   mode "failAfterSend" sends the transaction, then throws a non-4001 error (the page must look it up)
// and window.__standInWalletVanish() makes it disappear mid-session (every request fails with 4900).
import { privateKeyToAccount } from "viem/accounts";

const cfg = window.__standInWallet || {};
const account = privateKeyToAccount(cfg.key);
const AUTH = "stand-in-wallet-authorised";
let chainId = cfg.mode === "wrongChain" ? 1 : cfg.chainId;
const known = new Set(cfg.mode === "wrongChain" ? [1] : [1, cfg.chainId]);
const listeners = {};
const log = (window.__standInWalletLog = []);

const err = (code, message) => Object.assign(new Error(message), { code });
const hex = (n) => "0x" + BigInt(n).toString(16);

async function node(method, params = []) {
  const r = await fetch(cfg.rpcPath || "/rpc", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = await r.json();
  if (body.error) throw Object.assign(new Error(body.error.message), { code: body.error.code, data: body.error.data });
  return body.result;
}

function emit(event, value) {
  for (const fn of listeners[event] || []) fn(value);
}

async function sendTransaction(tx) {
  if (cfg.mode === "reject") throw err(4001, "User rejected the request.");
  if (chainId !== cfg.chainId) throw err(4901, "the wallet is not on the chain the till asked for");
  const from = account.address;
  const [nonce, gas, gasPrice] = await Promise.all([
    node("eth_getTransactionCount", [from, "pending"]),
    node("eth_estimateGas", [{ from, to: tx.to, data: tx.data }]),
    node("eth_gasPrice"),
  ]);
  const signed = await account.signTransaction({
    type: "eip1559", chainId: cfg.chainId, to: tx.to, data: tx.data, nonce: Number(BigInt(nonce)),
    gas: (BigInt(gas) * 12n) / 10n, maxFeePerGas: BigInt(gasPrice) * 2n + 1n, maxPriorityFeePerGas: 0n,
  });
  const hash = await node("eth_sendRawTransaction", [signed]);
  log.push({ sent: hash });
  if (cfg.mode === "failAfterSend") throw err(-32603, "the wallet lost its connection");
  return hash;
}

let gone = false;
// A test can make the wallet vanish mid-session: every request then fails (EIP-1193 4900).
window.__standInWalletVanish = () => {
  gone = true;
  emit("disconnect", err(4900, "The wallet is disconnected."));
};

const provider = {
  isStandIn: true,
  async request({ method, params = [] }) {
    log.push({ method });
    if (gone) throw err(4900, "The wallet is disconnected.");
    switch (method) {
      case "eth_requestAccounts":
        if (cfg.mode === "rejectConnect") throw err(4001, "User rejected the request.");
        localStorage.setItem(AUTH, "1");
        return [account.address];
      case "eth_accounts":
        return localStorage.getItem(AUTH) ? [account.address] : [];
      case "eth_chainId":
        return hex(chainId);
      case "wallet_switchEthereumChain": {
        const want = Number(BigInt(params[0].chainId));
        if (!known.has(want)) throw err(4902, `Unrecognized chain ID ${params[0].chainId}`);
        chainId = want;
        emit("chainChanged", hex(chainId));
        return null;
      }
      case "wallet_addEthereumChain": {
        const want = Number(BigInt(params[0].chainId));
        log.push({ added: params[0] });
        known.add(want);
        chainId = want;
        emit("chainChanged", hex(chainId));
        return null;
      }
      case "eth_sendTransaction":
        return sendTransaction(params[0]);
      default:
        return node(method, params);
    }
  },
  on(event, fn) {
    (listeners[event] = listeners[event] || []).push(fn);
  },
  removeListener(event, fn) {
    listeners[event] = (listeners[event] || []).filter((f) => f !== fn);
  },
};

if (cfg.mode !== "vanish") {
  const info = Object.freeze({
    uuid: "3b5f3c2e-7a5d-4b53-9e0c-2a1f6b8d9c01",
    name: cfg.name || "Test Wallet",
    icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 8 8'%3E%3Crect width='8' height='8' fill='%23888'/%3E%3C/svg%3E",
    rdns: "nl.citypass.test-wallet",
  });
  const announce = () => window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
  window.ethereum = provider;
}
