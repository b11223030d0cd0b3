// The server: its JSON API (the rules and the numbers, from the Python library) and its
// RPC endpoint for reading the chain. Both are POST application/json on the page's own origin.

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "http_" + status;
    this.field = err.field;
  }
}

/** The chain or the server cannot be reached: the till goes offline. */
export class Offline extends Error {}

// An answer that takes longer than this counts as no answer (the till goes offline). Reads while
// a payment is on its way use the longer SLOW_TIMEOUT_MS: a busy node is slow, not gone.
const TIMEOUT_MS = 8000;
export const SLOW_TIMEOUT_MS = 30000;

async function post(path, body, timeoutMs = TIMEOUT_MS) {
  let response;
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body ?? {}, (k, v) => (typeof v === "bigint" ? v.toString() : v)),
      cache: "no-store",
      signal: ctrl.signal,
    });
  } catch (e) {
    throw new Offline(String(e && e.message ? e.message : e));
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    if (response.status >= 500 || response.status === 0) throw new Offline(`HTTP ${response.status}`);
    throw new ApiError(response.status, null);
  }
  if (response.status === 424 || response.status >= 500) throw new Offline((data && data.error && data.error.message) || `HTTP ${response.status}`);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const api = (route, body, { timeoutMs } = {}) => post("/api/" + route, body, timeoutMs);

let rpcId = 0;
export class RpcError extends Error {
  constructor(error) {
    super(error.message);
    this.code = error.code;
    this.data = error.data;
  }
}

/** One JSON-RPC call through the server's endpoint (the same one the wallet uses). */
export async function rpc(method, params = [], { timeoutMs } = {}) {
  const answer = await post("/rpc", { jsonrpc: "2.0", id: ++rpcId, method, params }, timeoutMs);
  if (answer.error) {
    if (answer.error.code === -32603 && /does not answer/.test(answer.error.message)) throw new Offline(answer.error.message);
    throw new RpcError(answer.error);
  }
  return answer.result;
}
