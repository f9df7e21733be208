/**
 * The UI's only way to the server: the public REST API (docs/api.md), nothing private.
 *
 * Writes carry `Authorization: Bearer <token>` once the operator has given a token. The token is
 * asked for when the server answers 401, and kept in sessionStorage only: it lives as long as the
 * tab, is never written to localStorage, a cookie or a URL, and is not sent on reads (so the
 * unredacted /api/state is never fetched by accident), except the audit trail's, which need it.
 */

const TOKEN_KEY = 'bamboo.token';

export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: the operator is asked on every 401
  }
}

export function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled */
  }
}

/** The URL of one service record; the id is percent-encoded, which the server decodes. */
export function servicePath(id) {
  return `/api/services/${encodeURIComponent(id)}`;
}

/** The version in an `ETag: "3"` header, or null. */
export function versionFromEtag(etag) {
  const m = /^(?:W\/)?"?(\d+)"?$/.exec((etag ?? '').trim());
  return m ? Number(m[1]) : null;
}

/**
 * A client. `askToken({ refused, message })` is called on a 401 and resolves to a token (the request
 * is then sent again with it) or null (the 401 answer is returned to the caller).
 *
 * `request` resolves to `{ status, ok, headers, body }` for every HTTP answer (body: parsed JSON, or
 * `{ code, message }` made up for a non-JSON answer) and rejects only when the server is unreachable.
 */
export function createClient({ askToken }) {
  async function request(method, path, { body, headers = {}, auth = false } = {}) {
    let useToken = auth;
    for (;;) {
      const h = { Accept: 'application/json', ...headers };
      const token = useToken ? storedToken() : null;
      if (token) h.Authorization = `Bearer ${token}`;
      if (body !== undefined) h['Content-Type'] = 'application/json';
      const res = await fetch(path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'same-origin',
      });
      const data = await readBody(res);
      if (res.status === 401) {
        const refused = token !== null;
        if (refused) storeToken(null);
        const entered = await askToken({ refused, message: data.message });
        if (entered) {
          storeToken(entered);
          useToken = true;
          continue;
        }
      }
      return { status: res.status, ok: res.ok, headers: res.headers, body: data };
    }
  }
  return { request };
}

async function readBody(res) {
  if (res.status === 204) return null;
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    return { code: `HTTP_${res.status}`, message: `the server answered ${res.status} ${res.statusText} without a JSON body` };
  }
}
