// The /api/v1 client: GETs that throw ApiError, actions that return the answer as it came,
// and the page's one aria-live region where results and errors are announced.

import { withQuery } from './dom.js';

export class ApiError extends Error {
  constructor(status, name, message) {
    super(message);
    this.status = status;
    this.name = name;
  }

  toString() {
    return `${this.name}: ${this.message}`;
  }
}

/** '/api/v1/topics/<name>/partitions' from ['topics', name, 'partitions']. */
export function apiPath(segments) {
  // A segment of dots alone ("..", a legal group id) would be resolved away by the URL parser.
  const enc = (s) => (/^\.+$/.test(s) ? s.replace(/\./g, '%2E') : encodeURIComponent(s));
  return `/api/v1/${segments.map((s) => enc(String(s))).join('/')}`;
}

async function request(method, url, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') {
    // The header a cross-site form cannot send without a preflight (never approved).
    headers['X-Sluice-Console'] = '1';
    headers['Content-Type'] = 'application/json';
    if (body !== undefined) init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, 'NO_ANSWER', `The broker did not answer ${method} ${url} (${e.message}).`);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      throw new ApiError(resp.status, 'BAD_ANSWER', `${method} ${url} answered HTTP ${resp.status} with a body that is not JSON.`);
    }
  }
  return { status: resp.status, ok: resp.ok, data };
}

function errorOf(r, what) {
  const d = r.data || {};
  return new ApiError(r.status, d.error || `HTTP_${r.status}`, d.message || `${what} answered HTTP ${r.status}.`);
}

/** GET /api/v1/<segments>?<query>; throws ApiError on any non-2xx answer. */
export async function get(segments, query) {
  const url = withQuery(apiPath(segments), query);
  const r = await request('GET', url);
  if (!r.ok) throw errorOf(r, `GET ${url}`);
  return r.data;
}

let clusterCache = null;
/** The cluster summary, shared by the views of one render (actions_enabled, broker count). */
export function cluster({ fresh } = {}) {
  const now = Date.now();
  if (fresh || !clusterCache || now - clusterCache.at > 5000) {
    const p = get(['cluster']);
    clusterCache = { at: now, p };
    p.catch(() => {
      if (clusterCache && clusterCache.p === p) clusterCache = null;
    });
  }
  return clusterCache.p;
}

/**
 * An action: METHOD /api/v1/<segments> with a JSON body. Announces the outcome (every failed
 * resource with its Kafka error name and message) and returns {ok, status, data}.
 */
export async function act(method, segments, body, success) {
  const url = apiPath(segments);
  let r;
  try {
    r = await request(method, url, body);
  } catch (e) {
    announce(`Failed: ${e}`, 'err');
    return { ok: false, status: e.status, data: null };
  }
  const d = r.data || {};
  if (r.ok && d.ok !== false) {
    announce(success, 'ok');
    return r;
  }
  if (Array.isArray(d.results) && d.results.length) {
    const failed = d.results.filter((x) => x.error_code !== 0);
    const parts = (failed.length ? failed : d.results).map(
      (x) => `${x.resource}: ${x.error} (code ${x.error_code})${x.message ? ` — ${x.message}` : ''}`,
    );
    announce(`Failed: ${parts.join('; ')}`, 'err');
  } else {
    announce(`Failed: ${errorOf(r, `${method} ${url}`)}`, 'err');
  }
  return { ...r, ok: false };
}

// ---------------------------------------------------------------------------------------------
// The live region (role="status", aria-live="polite") under the page heading.

let announcedAt = 0;

export function announce(text, kind) {
  const region = document.getElementById('live');
  if (!region) return;
  announcedAt = Date.now();
  region.replaceChildren();
  // A fresh node each time, so the same sentence twice is read twice.
  const p = document.createElement('p');
  p.className = `msg ${kind || 'info'}`;
  p.textContent = text;
  region.append(p);
}

/** Clears the region on navigation, unless an action just wrote to it (and then moved on). */
export function clearStale(ms) {
  if (Date.now() - announcedAt > ms) document.getElementById('live')?.replaceChildren();
}
