// The server's JSON API (POST application/json on the page's own origin). A network failure
// or a 5xx is `Offline`: the app then works from what it last saw.

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.field = err.field;
  }
}
export class Offline extends Error {}

const TIMEOUT_MS = 8000;

export async function api(route, body) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
  let response;
  try {
    response = await fetch("/api/" + route, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body ?? {}),
      cache: "no-store", signal: ctrl.signal,
    });
  } catch (e) {
    throw new Offline(String((e && e.message) || e));
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
  if (response.status >= 500 || response.status === 424) throw new Offline(`HTTP ${response.status}`);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
