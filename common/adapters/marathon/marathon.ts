/**
 * Marathon adapter: the only code that speaks HTTP to Marathon.
 *
 * - `fetchApps()` reads `/v2/apps` with tasks, deployments and readiness embedded. Every request has a
 *   timeout; the status code, the content type and the JSON shape are checked; each configured
 *   endpoint is tried in turn (starting with the one that answered last). Any failure throws a
 *   MarathonError with a short `reason`, so a caller can keep what it had: an error page or a broken
 *   body never becomes "no apps".
 * - Event subscriptions (http_callback mode, Marathon < 1.5): list, subscribe, unsubscribe. A 404
 *   means the endpoint has no subscriptions API (removed in Marathon 1.5) and is reported as
 *   `unsupported`, never thrown.
 * - `openEventStream()` opens `/v2/events` on one endpoint for MarathonEventStream (event-stream.ts),
 *   which reads it, fails over and reconnects.
 *
 * Redirects (Marathon sends followers' clients to its leader) are followed by hand, up to 5 hops, so
 * the basic-auth credentials go along to the leader and a 307 on the stream works like one on a fetch.
 * Credentials are never logged: endpoints are logged through redactUrl and errors by message only.
 */
import axios, { type AxiosResponse, type ResponseType } from 'axios';
import type { Readable } from 'node:stream';
import { redactUrl } from '../../config-redact.js';
import { APPS_PATH, appPath, EVENTS_PATH, safeJson, SUBSCRIPTIONS_PATH } from '../../core/marathon-api.js';
import { parseAppsText, type ParsedApps } from '../../core/snapshot-delta.js';
import type { Logger } from '../../log.js';
import { describeTransport, MarathonError, transportFailure, type MarathonFailure } from './marathon-errors.js';

export interface MarathonClientOptions {
  /** Base URLs, tried in order (from `Marathon.Endpoint`). */
  endpoints: string[];
  user?: string;
  password?: string;
  /** Per-request timeout (connect + full response), per endpoint. */
  timeoutMs: number;
  log: Logger;
  /** Largest response accepted (default 256 MB). */
  maxResponseBytes?: number;
}

/** One app as GET /v2/apps/{id} answered it, or gone (404). */
export type AppResult =
  | { found: true; app: unknown; text: string; endpoint: string }
  | { found: false; endpoint: string };

export interface AppsResult {
  apps: unknown[];
  /** The endpoint (redacted) that answered. */
  endpoint: string;
  ms: number;
  /** Each app's JSON text as Marathon sent it (absent when the answer could not be cut app by app). */
  texts?: string[];
}

interface RawResponse<T> {
  status: number;
  headers: Record<string, unknown>;
  data: T;
  /** The URL that finally answered (after redirects). */
  url: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

function headerValue(headers: Record<string, unknown>, name: string): string {
  const v = headers[name] ?? headers[name.toLowerCase()];
  if (Array.isArray(v)) return String(v[0] ?? '');
  return v === undefined || v === null ? '' : String(v);
}

function snippet(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > 120 ? `${one.slice(0, 117)}...` : one;
}

export class MarathonClient {
  private preferred = 0;
  readonly endpoints: string[];

  constructor(private readonly opts: MarathonClientOptions) {
    this.endpoints = opts.endpoints.map((e) => e.replace(/\/+$/, ''));
    if (this.endpoints.length === 0) throw new Error('MarathonClient needs at least one endpoint');
  }

  /** Endpoints in the order to try them: the one that answered last first, then the others in order. */
  private order(): number[] {
    const n = this.endpoints.length;
    const out = [this.preferred];
    for (let i = 0; i < n; i++) if (i !== this.preferred) out.push(i);
    return out;
  }

  private auth(): { username: string; password: string } | undefined {
    return this.opts.user ? { username: this.opts.user, password: this.opts.password ?? '' } : undefined;
  }

  /**
   * One request with redirects followed by hand. Never throws on an HTTP status; throws the raw
   * transport error (timeout, refused, reset) for the caller to classify.
   */
  private async request<T>(
    url: string,
    init: { method?: string; accept: string; responseType: ResponseType; signal: AbortSignal; timeoutMs?: number },
  ): Promise<RawResponse<T>> {
    let current = url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const res: AxiosResponse<T> = await axios.request<T>({
        url: current,
        method: init.method ?? 'GET',
        headers: { Accept: init.accept },
        auth: this.auth(),
        responseType: init.responseType,
        transformResponse: [(d: unknown) => d],
        signal: init.signal,
        timeout: init.timeoutMs ?? 0,
        maxRedirects: 0,
        validateStatus: () => true,
        maxContentLength: this.opts.maxResponseBytes ?? 256 * 1024 * 1024,
        proxy: false,
      });
      const location = headerValue(res.headers as Record<string, unknown>, 'location');
      if (REDIRECTS.has(res.status) && location) {
        if (init.responseType === 'stream') (res.data as unknown as Readable).destroy();
        const next = new URL(location, current).toString();
        this.opts.log.debug({ from: redactUrl(current), to: redactUrl(next), status: res.status }, 'marathon redirect followed');
        current = next;
        continue;
      }
      return { status: res.status, headers: res.headers as Record<string, unknown>, data: res.data, url: current };
    }
    throw Object.assign(new Error(`more than ${MAX_REDIRECTS} redirects`), { code: 'ERR_TOO_MANY_REDIRECTS' });
  }

  /** A JSON request against one endpoint with the full checks; throws MarathonError. */
  private async getJson(endpoint: string, path: string, method = 'GET'): Promise<{ status: number; json: unknown }> {
    const r = await this.getText(endpoint, path, method);
    return r.ok ? { status: r.status, json: this.parse(r.body, endpoint, path, method, r.status) } : r;
  }

  /** JSON.parse with Marathon's error: a body that is not JSON is a failed request. */
  private parse(body: string, endpoint: string, path: string, method: string, status: number): unknown {
    try {
      return JSON.parse(body) as unknown;
    } catch (err) {
      throw new MarathonError('parse', `${method} ${redactUrl(endpoint)}${path.split('?')[0]} answered unparsable JSON (${body.length} bytes): ${(err as Error).message}`, redactUrl(endpoint), status);
    }
  }

  /**
   * A request expecting JSON against one endpoint, with the transport and HTML checks; throws
   * MarathonError. A 2xx answer is its text, still to be parsed; any other is its status with the body
   * parsed if it can be (for its message).
   */
  private async getText(
    endpoint: string,
    path: string,
    method = 'GET',
  ): Promise<{ ok: true; status: number; body: string } | { ok: false; status: number; json: unknown }> {
    const where = redactUrl(endpoint);
    let res: RawResponse<string>;
    try {
      res = await this.request<string>(endpoint + path, {
        method,
        accept: 'application/json',
        responseType: 'text',
        signal: AbortSignal.timeout(this.opts.timeoutMs),
        timeoutMs: this.opts.timeoutMs,
      });
    } catch (err) {
      const e = err as { code?: string };
      if (e?.code === 'ERR_TOO_MANY_REDIRECTS') throw new MarathonError('redirect', `too many redirects from ${where}`, where);
      const reason = transportFailure(err);
      throw new MarathonError(reason, `${method} ${where}${path.split('?')[0]}: ${reason === 'timeout' ? `no answer within ${this.opts.timeoutMs} ms` : describeTransport(err)}`, where);
    }
    const body = typeof res.data === 'string' ? res.data : String(res.data ?? '');
    const type = headerValue(res.headers, 'content-type').toLowerCase();
    if (res.status < 200 || res.status > 299) {
      return { ok: false, status: res.status, json: safeJson(body) };
    }
    if (type.includes('text/html') || /^\s*</.test(body)) {
      throw new MarathonError('html', `${method} ${where}${path.split('?')[0]} answered an HTML page instead of JSON: ${snippet(body)}`, where, res.status);
    }
    return { ok: true, status: res.status, body };
  }

  /**
   * GET /v2/apps from the first endpoint that answers well. Throws the last MarathonError when every
   * endpoint failed; the caller must then keep its previous snapshot.
   */
  async fetchApps(previous?: ParsedApps | null): Promise<AppsResult> {
    let last: MarathonError | null = null;
    for (const i of this.order()) {
      const endpoint = this.endpoints[i];
      const where = redactUrl(endpoint);
      const t0 = performance.now();
      try {
        const r = await this.getText(endpoint, APPS_PATH);
        if (!r.ok) {
          const json = r.json;
          const msg = json && typeof json === 'object' && 'message' in json ? `: ${String((json as { message: unknown }).message)}` : '';
          throw new MarathonError('status', `GET ${where}/v2/apps answered HTTP ${r.status}${snippet(msg)}`, where, r.status);
        }
        // App by app, reusing the previous snapshot's unchanged apps; the whole text when it cannot be cut.
        let cut: { apps: unknown[]; texts: string[] } | null = null;
        try {
          cut = parseAppsText(r.body, previous);
        } catch {
          cut = null; // an app's text is not JSON: the whole parse below says where
        }
        const apps = cut ? cut.apps : (this.parse(r.body, endpoint, APPS_PATH, 'GET', r.status) as { apps?: unknown } | null)?.apps;
        if (!Array.isArray(apps)) {
          throw new MarathonError('shape', `GET ${where}/v2/apps answered JSON without an "apps" array`, where, r.status);
        }
        this.preferred = i;
        return { apps, endpoint: where, ms: performance.now() - t0, ...(cut ? { texts: cut.texts } : {}) };
      } catch (err) {
        last = err instanceof MarathonError ? err : new MarathonError('unreachable', (err as Error).message, where);
        this.opts.log.warn({ endpoint: where, reason: last.reason, err: last }, 'marathon fetch failed');
      }
    }
    throw last!;
  }

  /**
   * GET /v2/apps/{id} (the same embeds as fetchApps) from the first endpoint that answers well: the app
   * (`{"app":{...}}`) with its JSON text, or `found: false` for a 404, which only says that this
   * endpoint does not know the app now (the caller confirms a removal by a full fetch). The single-app
   * answer always embeds `lastTaskFailure`, which the list leaves out: it is dropped, so the app reads
   * as it would in the list. Throws the last MarathonError when no endpoint answered well.
   */
  async fetchApp(id: string): Promise<AppResult> {
    let last: MarathonError | null = null;
    const path = appPath(id);
    for (const i of this.order()) {
      const endpoint = this.endpoints[i];
      const where = redactUrl(endpoint);
      try {
        const r = await this.getText(endpoint, path);
        if (!r.ok && r.status === 404) {
          this.preferred = i;
          return { found: false, endpoint: where };
        }
        if (!r.ok) throw new MarathonError('status', `GET ${where}/v2/apps/{id} answered HTTP ${r.status}`, where, r.status);
        const app = (this.parse(r.body, endpoint, path, 'GET', r.status) as { app?: unknown } | null)?.app;
        if (!app || typeof app !== 'object' || Array.isArray(app) || (app as { id?: unknown }).id !== id) {
          throw new MarathonError('shape', `GET ${where}/v2/apps/{id} answered JSON without an "app" object of that id`, where, r.status);
        }
        delete (app as { lastTaskFailure?: unknown }).lastTaskFailure;
        this.preferred = i;
        return { found: true, app, text: JSON.stringify(app), endpoint: where };
      } catch (err) {
        last = err instanceof MarathonError ? err : new MarathonError('unreachable', (err as Error).message, where);
        this.opts.log.warn({ endpoint: where, reason: last.reason, err: last }, 'marathon app fetch failed');
      }
    }
    throw last!;
  }

  /** The callback URLs subscribed on one endpoint, or 'unsupported' (404: Marathon 1.5+). */
  async subscriptions(endpoint: string): Promise<string[] | 'unsupported'> {
    const { status, json } = await this.getJson(endpoint, SUBSCRIPTIONS_PATH);
    if (status === 404) return 'unsupported';
    if (status < 200 || status > 299) throw this.subscriptionError(endpoint, 'GET', status, json);
    const urls = (json as { callbackUrls?: unknown } | null)?.callbackUrls;
    if (!Array.isArray(urls)) throw new MarathonError('shape', `GET ${redactUrl(endpoint)}${SUBSCRIPTIONS_PATH} answered JSON without "callbackUrls"`, redactUrl(endpoint), status);
    return urls.filter((u): u is string => typeof u === 'string');
  }

  /** Subscribes a callback URL on one endpoint; 'unsupported' on 404. */
  async subscribe(endpoint: string, callbackUrl: string): Promise<'ok' | 'unsupported'> {
    return this.subscriptionCall(endpoint, 'POST', callbackUrl);
  }

  /** Removes a callback URL on one endpoint; 'unsupported' on 404 (also when it was not subscribed). */
  async unsubscribe(endpoint: string, callbackUrl: string): Promise<'ok' | 'unsupported'> {
    return this.subscriptionCall(endpoint, 'DELETE', callbackUrl);
  }

  private async subscriptionCall(endpoint: string, method: 'POST' | 'DELETE', callbackUrl: string): Promise<'ok' | 'unsupported'> {
    const { status, json } = await this.getJson(endpoint, `${SUBSCRIPTIONS_PATH}?callbackUrl=${encodeURIComponent(callbackUrl)}`, method);
    if (status === 404) return 'unsupported';
    if (status < 200 || status > 299) throw this.subscriptionError(endpoint, method, status, json);
    return 'ok';
  }

  private subscriptionError(endpoint: string, method: string, status: number, json: unknown): MarathonError {
    const msg = json && typeof json === 'object' && 'message' in json ? `: ${snippet(String((json as { message: unknown }).message))}` : '';
    return new MarathonError('status', `${method} ${redactUrl(endpoint)}${SUBSCRIPTIONS_PATH} answered HTTP ${status}${msg}`, redactUrl(endpoint), status);
  }

  /**
   * Opens `/v2/events` on one endpoint (redirects followed) and resolves with the body once the
   * response headers arrived (within the request timeout). Throws MarathonError when the answer is
   * not a 2xx event stream.
   */
  async openEventStream(endpoint: string, signal: AbortSignal): Promise<{ body: Readable; url: string }> {
    const where = redactUrl(endpoint);
    // The timeout covers connecting and the response headers only; the body may stay open for hours.
    const headerTimeout = new AbortController();
    const timer = setTimeout(() => headerTimeout.abort(), this.opts.timeoutMs);
    const onAbort = () => headerTimeout.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    let res: RawResponse<Readable>;
    try {
      res = await this.request<Readable>(endpoint + EVENTS_PATH, { accept: 'text/event-stream', responseType: 'stream', signal: headerTimeout.signal });
    } catch (err) {
      if (signal.aborted) throw new MarathonError('aborted', 'event stream stopped', where);
      const e = err as { code?: string };
      if (e?.code === 'ERR_TOO_MANY_REDIRECTS') throw new MarathonError('redirect', `too many redirects from ${where}${EVENTS_PATH}`, where);
      const reason = headerTimeout.signal.aborted ? 'timeout' : transportFailure(err);
      throw new MarathonError(reason, `GET ${where}${EVENTS_PATH}: ${reason === 'timeout' ? `no answer within ${this.opts.timeoutMs} ms` : describeTransport(err)}`, where);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
    const type = headerValue(res.headers, 'content-type').toLowerCase();
    if (res.status < 200 || res.status > 299 || !type.includes('text/event-stream')) {
      res.data.destroy();
      const reason: MarathonFailure = res.status < 200 || res.status > 299 ? 'status' : 'not_event_stream';
      throw new MarathonError(reason, `GET ${redactUrl(res.url)} answered HTTP ${res.status} ${type || '(no content type)'}, not an event stream`, where, res.status);
    }
    // Abort from the caller (stop) tears the body down.
    if (signal.aborted) res.data.destroy();
    else signal.addEventListener('abort', () => res.data.destroy(), { once: true });
    return { body: res.data, url: redactUrl(res.url) };
  }
}
