// The API calls of the dashboard: same origin as the page, the admin token as a bearer token.

const TOKEN_KEY = 'weft.adminToken';

/** An API answer other than 2xx, with the API's `{error: {code, message}}`. */
export class ApiFailure extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Takes `#token=...` out of the address bar into sessionStorage (once), then returns the
 * stored token or null.
 * @returns {string | null}
 */
export function takeToken() {
  const m = /^#token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', `${location.pathname}${location.search}#/`);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** @param {string | null} token */
export function storeToken(token) {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

/**
 * GET an API path with the token; resolves with the JSON body, rejects with ApiFailure.
 * @param {string} path @param {string} token @returns {Promise<any>}
 */
export async function getJson(path, token) {
  let res;
  try {
    res = await fetch(path, { headers: { authorization: `Bearer ${token}` }, cache: 'no-store', signal: AbortSignal.timeout(10000) });
  } catch (err) {
    throw new ApiFailure(0, 'WEFT_E_UNREACHABLE', `the control plane does not answer ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: reported below
  }
  if (!res.ok) {
    const e = body && body.error;
    throw new ApiFailure(res.status, e ? e.code : `HTTP_${res.status}`, `${path}: ${e ? `${e.message} (${e.code})` : `HTTP ${res.status} ${text.slice(0, 200)}`}`);
  }
  if (body === null) throw new ApiFailure(res.status, 'WEFT_E_NOT_JSON', `${path}: the answer is not JSON`);
  return body;
}
