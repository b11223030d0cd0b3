// A stand-in for an officer's browser wallet, for the back office's browser tests only (never
// shipped): EIP-1193 announced through EIP-6963 and set as window.ethereum. It signs locally with
// a viem local account holding the test key (an Anvil dev key): `personal_sign` for Sign-In with
// Ethereum, `eth_signTypedData_v4` for a Safe transaction (EIP-712, as a Safe owner's wallet signs
// it), transactions (with or without ETH value) sent as eth_sendRawTransaction through the
// server's own /rpc, as a real wallet would. Configured by window.__officerWallet = {key, chainId} (reject: refuse every request; badSignature: answer
// eth_signTypedData_v4 with a malformed signature).
// window.__officerWalletLog lists every request and every hash sent (tests count what was sent).
import { privateKeyToAccount } from "viem/accounts";
import { hexToString } from "viem";

const cfg = window.__officerWallet || {};
const account = privateKeyToAccount(cfg.key);
const log = (window.__officerWalletLog = []);
const err = (code, message) => Object.assign(new Error(message), { code });

async function node(method, params = []) {
  const r = await fetch("/rpc", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
  const body = await r.json();
  if (body.error) throw Object.assign(new Error(body.error.message), { code: body.error.code, data: body.error.data });
  return body.result;
}

async function sendTransaction(tx) {
  if (cfg.reject) throw err(4001, "User rejected the request.");
  const from = account.address;
  const value = tx.value ? BigInt(tx.value) : 0n;
  const call = { from, to: tx.to, data: tx.data || "0x", value: "0x" + value.toString(16) };
  const [nonce, gas, gasPrice] = await Promise.all([node("eth_getTransactionCount", [from, "pending"]), node("eth_estimateGas", [call]), node("eth_gasPrice")]);
  const signed = await account.signTransaction({
    type: "eip1559", chainId: cfg.chainId, to: tx.to, data: tx.data || "0x", value, nonce: Number(BigInt(nonce)),
    gas: (BigInt(gas) * 12n) / 10n, maxFeePerGas: BigInt(gasPrice) * 2n + 1n, maxPriorityFeePerGas: 0n,
  });
  const hash = await node("eth_sendRawTransaction", [signed]);
  log.push({ sent: hash, to: tx.to });
  return hash;
}

// eth_signTypedData_v4 takes [address, JSON text]; viem wants bigints for the integer fields and
// derives the EIP712Domain type from the domain itself.
function signTypedData([address, json]) {
  if (cfg.reject) throw err(4001, "User rejected the request.");
  if (String(address).toLowerCase() !== account.address.toLowerCase()) throw err(4100, "This account is not in this wallet.");
  const { types, primaryType, domain, message } = typeof json === "string" ? JSON.parse(json) : json;
  const { EIP712Domain, ...rest } = types;
  const ints = (fields, values) => Object.fromEntries(Object.entries(values).map(([k, v]) => {
    const type = (fields.find((f) => f.name === k) || {}).type || "";
    return [k, /^u?int\d*$/.test(type) ? BigInt(v) : v];
  }));
  if (cfg.badSignature) return "0x1234"; // a broken wallet (tests: the page must refuse it with a sentence)
  log.push({ signedTypedData: primaryType });
  return account.signTypedData({ domain: ints(EIP712Domain || [], domain), types: rest, primaryType, message: ints(rest[primaryType], message) });
}

const provider = {
  isStandIn: true,
  async request({ method, params = [] }) {
    log.push({ method });
    switch (method) {
      case "eth_requestAccounts":
      case "eth_accounts":
        return [account.address];
      case "eth_chainId":
        return "0x" + cfg.chainId.toString(16);
      case "wallet_switchEthereumChain":
      case "wallet_addEthereumChain":
        return null;
      case "personal_sign": {
        if (cfg.reject) throw err(4001, "User rejected the request.");
        const text = hexToString(params[0]);
        log.push({ signed: text });
        return account.signMessage({ message: text });
      }
      case "eth_sendTransaction":
        return sendTransaction(params[0]);
      case "eth_signTypedData_v4":
        return signTypedData(params);
      default:
        return node(method, params);
    }
  },
  on() {},
  removeListener() {},
};

const info = Object.freeze({
  uuid: "6f1c2a9e-3b7d-4c51-8e2f-0a9b8c7d6e5f", name: "Officer Test Wallet", rdns: "nl.citypass.officer-test-wallet",
  icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 8 8'%3E%3Crect width='8' height='8' fill='%23888'/%3E%3C/svg%3E",
});
const announce = () => window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
window.addEventListener("eip6963:requestProvider", announce);
announce();
window.ethereum = provider;
