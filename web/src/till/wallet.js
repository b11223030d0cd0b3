// The provider's browser wallet: found through EIP-6963 (falling back to window.ethereum),
// asked for its account and chain, switched to the till's chain, and asked to send the
// transactions the till builds. The till holds no key.

export const REJECTED = 4001;
export const UNKNOWN_CHAIN = 4902;

/** Wallets that announce themselves (EIP-6963), else window.ethereum; waits briefly for announcements. */
export function discoverWallets(waitMs = 300) {
  return new Promise((resolve) => {
    const found = new Map();
    const onAnnounce = (event) => {
      const { info, provider } = event.detail || {};
      if (info && provider && !found.has(info.uuid)) found.set(info.uuid, { info, provider });
    };
    window.addEventListener("eip6963:announceProvider", onAnnounce);
    window.dispatchEvent(new Event("eip6963:requestProvider"));
    setTimeout(() => {
      window.removeEventListener("eip6963:announceProvider", onAnnounce);
      const list = [...found.values()];
      if (!list.length && window.ethereum && typeof window.ethereum.request === "function") {
        list.push({ info: { uuid: "window.ethereum", name: window.ethereum.isMetaMask ? "MetaMask" : "Browser wallet", icon: null, rdns: "" }, provider: window.ethereum });
      }
      resolve(list);
    }, waitMs);
  });
}

export class Wallet {
  constructor({ info, provider }) {
    this.info = info;
    this.provider = provider;
    this.account = null;
    this.chainId = null;
  }

  request(method, params) {
    return this.provider.request(params === undefined ? { method } : { method, params });
  }

  async connect() {
    const accounts = await this.request("eth_requestAccounts");
    if (!accounts || !accounts.length) throw Object.assign(new Error("the wallet gave no account"), { code: REJECTED });
    this.account = accounts[0];
    this.chainId = Number(BigInt(await this.request("eth_chainId")));
    return this.account;
  }

  /** Switch to the till's chain, adding it to the wallet when the wallet does not know it. */
  async switchTo(deployment) {
    try {
      await this.request("wallet_switchEthereumChain", [{ chainId: deployment.chain_id_hex }]);
    } catch (e) {
      if (e && (e.code === UNKNOWN_CHAIN || (e.data && e.data.originalError && e.data.originalError.code === UNKNOWN_CHAIN))) {
        await this.request("wallet_addEthereumChain", [{
          chainId: deployment.chain_id_hex,
          chainName: deployment.chain_name,
          nativeCurrency: deployment.native_currency,
          rpcUrls: [deployment.rpc_url],
        }]);
      } else {
        throw e;
      }
    }
    this.chainId = Number(BigInt(await this.request("eth_chainId")));
  }

  on(event, handler) {
    if (typeof this.provider.on === "function") this.provider.on(event, handler);
  }

  /** Ask the wallet to sign and send a call to the contract; resolves with the tx hash. */
  send(to, data) {
    return this.request("eth_sendTransaction", [{ from: this.account, to, data }]);
  }
}

export function isRejection(error) {
  return Boolean(error) && (error.code === REJECTED || (error.cause && error.cause.code === REJECTED));
}
