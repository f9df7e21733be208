/**
 * The api's HTTP edge, apart from the routes: who may start with which exposure, who a request is
 * (its credential's name), how fast one credential may write, how a Marathon callback is read
 * without buffering it, and that request text is valid UTF-8. Pure pieces with injected clocks, so
 * api/app.ts and the route plugins only wire them and tests can drive them directly.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Readable } from 'node:stream';
import { ConfigError, type Config } from '../common/config.js';
import { credentials } from '../common/config-views.js';
import { ApiError } from '../common/core/errors.js';

/** The credential name of a request that carried no (valid) token. */
export const ANONYMOUS = 'anonymous';

/** Loopback hosts: 127.0.0.0/8, ::1 (also IPv4-mapped), `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return v4 !== null && Number(v4[1]) === 127 && v4.slice(2).every((o) => Number(o) <= 255);
}

/**
 * Secure by default: an api that listens beyond loopback needs a credential for writes, unless the
 * operator opted out with Bamboo.AllowAnonymousWrites. Throws a one-line ConfigError naming the fix.
 */
export function checkExposure(cfg: Pick<Config, 'Bamboo'>, host: string, bind: string): void {
  if (isLoopbackHost(host) || credentials(cfg).length > 0 || cfg.Bamboo.AllowAnonymousWrites) return;
  throw new ConfigError(
    `config: refusing to serve rule writes without a credential on ${bind} (not loopback): set Bamboo.AuthTokens (env BAMBOO_AUTH_TOKENS='{"name":"<token>"}') or Bamboo.AuthToken (env BAMBOO_AUTH_TOKEN), bind 127.0.0.1, or opt out with BAMBOO_ALLOW_ANONYMOUS_WRITES=true`,
  );
}

/** Constant-time comparison of two secrets of any length. */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

/** Who a request is, from its `Authorization: Bearer` header. */
export type Identity = { kind: 'anonymous' } | { kind: 'valid'; name: string } | { kind: 'invalid' };

/**
 * Matches bearer tokens against every configured credential. Every token is compared (no early exit)
 * in constant time, so the answer's timing does not tell which credential, or how much of one, matched.
 */
export class Authenticator {
  private readonly creds: ReadonlyArray<{ name: string; token: string }>;
  constructor(cfg: Pick<Config, 'Bamboo'>) {
    this.creds = credentials(cfg);
  }

  /** True when at least one credential is configured. */
  get enabled(): boolean {
    return this.creds.length > 0;
  }

  get count(): number {
    return this.creds.length;
  }

  identify(header: string | string[] | undefined): Identity {
    if (header === undefined) return { kind: 'anonymous' };
    const m = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) return { kind: 'invalid' };
    let found: string | null = null;
    for (const c of this.creds) {
      if (sameSecret(m[1], c.token) && found === null) found = c.name;
    }
    return found === null ? { kind: 'invalid' } : { kind: 'valid', name: found };
  }
}

/**
 * Token buckets per key (a credential's name, or `anonymous@<address>`): `burst` writes at once, then
 * `perMinute` refill. Keys whose bucket is full again are forgotten, so the map stays as small as the
 * set of clients writing right now (and is capped: past `maxKeys` the fullest are dropped first).
 */
export class WriteLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly burst: number,
    private readonly perMinute: number,
    private readonly now: () => number,
    private readonly maxKeys = 10000,
  ) {}

  get enabled(): boolean {
    return this.perMinute > 0;
  }

  /** Takes one write for `key`: 0 when allowed, else the seconds to wait before the next one fits. */
  take(key: string): number {
    if (!this.enabled) return 0;
    const t = this.now();
    const rate = this.perMinute / 60000; // tokens per ms
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: t };
    b.tokens = Math.min(this.burst, b.tokens + Math.max(0, t - b.at) * rate);
    b.at = t;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      this.buckets.set(key, b);
      this.prune(t);
      return 0;
    }
    this.buckets.set(key, b);
    return Math.max(1, Math.ceil((1 - b.tokens) / rate / 1000));
  }

  private prune(t: number): void {
    if (this.buckets.size <= this.maxKeys) return;
    const rate = this.perMinute / 60000;
    for (const [k, b] of this.buckets) {
      if (b.tokens + (t - b.at) * rate >= this.burst) this.buckets.delete(k);
    }
    while (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
  }
}

/**
 * The `eventType` member of a JSON object's top level, found by scanning (strings skipped, nesting
 * counted) instead of parsing the whole body; null when there is none. A nested `eventType` (an app
 * label, say) is not the event's.
 */
export function topLevelEventType(text: string): string | null {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let end = text.indexOf('"', i + 1);
      while (end > 0 && isEscaped(text, end)) end = text.indexOf('"', end + 1);
      if (end < 0) return null;
      if (depth === 1 && end - i - 1 === 9 && text.startsWith('eventType', i + 1)) {
        const m = /^\s*:\s*("(?:[^"\\]|\\.){0,200}")/.exec(text.slice(end + 1, end + 420));
        if (m) {
          try {
            return JSON.parse(m[1]) as string;
          } catch {
            return null;
          }
        }
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return null;
}

/** True when the quote at `at` is escaped (preceded by an odd number of backslashes). */
function isEscaped(text: string, at: number): boolean {
  let n = 0;
  for (let k = at - 1; k >= 0 && text.charCodeAt(k) === 0x5c; k--) n++;
  return n % 2 === 1;
}

/**
 * Finds a JSON object's top-level `eventType` in a stream of bytes, keeping only a few hundred bytes
 * whatever the body's size: the same answer as `topLevelEventType` on the whole text,
 * for callbacks whose deployment plans run to megabytes and carry the type at the end. Structural
 * JSON characters are ASCII, so bytes of multi-byte UTF-8 characters can never be mistaken for them.
 */
export class EventTypeScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;
  private expectKey = false;
  /** The top-level key just read, when it is one whose string value is kept: eventType or the app id. */
  private keyWanted: 'eventType' | 'appId' | null = null;
  private valueNext = false;
  private capture: number[] | null = null;
  private first = -1;
  private last = -1;
  bytes = 0;
  eventType: string | null = null;
  /** The top-level `appId` (or `runSpecId`, Marathon 1.4+) string, when there is one: the app the event names. */
  appId: string | null = null;

  push(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === 0x5c) this.escaped = true;
        else if (b === 0x22) {
          this.inString = false;
          this.endString();
          this.last = b;
          continue;
        }
        if (this.capture && this.capture.length < 1024) this.capture.push(b);
        continue;
      }
      if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
      if (this.first < 0) this.first = b;
      this.last = b;
      switch (b) {
        case 0x22: // "
          this.inString = true;
          this.capture = this.depth === 1 && (this.expectKey || this.valueNext) ? [] : null;
          break;
        case 0x7b: // {
        case 0x5b: // [
          if (this.depth === 1) this.valueNext = false;
          this.depth++;
          if (this.depth === 1) this.expectKey = b === 0x7b;
          break;
        case 0x7d: // }
        case 0x5d: // ]
          this.depth--;
          break;
        case 0x2c: // ,
          if (this.depth === 1) this.expectKey = true;
          break;
        case 0x3a: // :
          if (this.depth === 1) {
            this.valueNext = this.keyWanted !== null;
            if (!this.valueNext) this.keyWanted = null;
          }
          break;
        default:
          if (this.depth === 1) this.valueNext = false;
      }
    }
  }

  private endString(): void {
    const cap = this.capture;
    this.capture = null;
    if (this.depth !== 1 || cap === null) return;
    if (this.expectKey) {
      this.expectKey = false;
      const key = cap.length <= 9 ? Buffer.from(cap).toString('latin1') : '';
      this.keyWanted = key === 'eventType' ? 'eventType' : key === 'appId' || key === 'runSpecId' ? 'appId' : null;
    } else if (this.valueNext) {
      this.valueNext = false;
      const wanted = this.keyWanted;
      this.keyWanted = null;
      if (wanted && this[wanted] === null && cap.length <= 800) {
        try {
          this[wanted] = JSON.parse(`"${Buffer.from(cap).toString('utf8')}"`) as string;
        } catch {
          /* a malformed escape: nothing kept */
        }
      }
    }
  }

  /** True when the body looked like one JSON object (starts with `{`, ends with `}`). */
  get isObject(): boolean {
    return this.first === 0x7b && this.last === 0x7d && !this.inString;
  }
}

/** What the callback route uses of an event: its top-level `eventType` and the app it names (`appId`/`runSpecId`). */
export function callbackFields(text: string): { eventType: string | null; appId: string | null } {
  const scanner = new EventTypeScanner();
  scanner.push(Buffer.from(text));
  return { eventType: scanner.eventType, appId: scanner.appId };
}

/**
 * Reads a callback body to its end through an EventTypeScanner, holding no more than one chunk, and
 * resolves with the scanner. More than `limit` bytes is a 413 (the rest is not read).
 */
export function scanCallbackBody(payload: Readable, limit: number): Promise<EventTypeScanner> {
  const scanner = new EventTypeScanner();
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      if (scanner.bytes + chunk.length > limit) {
        cleanup();
        payload.pause();
        reject(new ApiError('BAMBOO_BODY_TOO_LARGE', `a Marathon callback may be at most ${limit} bytes (Bamboo.MaxBodyBytes x 256)`, {}, { Connection: 'close' }));
        return;
      }
      scanner.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(scanner);
    };
    // A client that goes away (or is cut by the request timeout) mid-body is not an api failure:
    // answer it as a bad request (logged at debug), never as an internal error.
    const onError = () => {
      cleanup();
      reject(new ApiError('BAMBOO_BAD_REQUEST', 'the callback body ended before its announced length', {}, { Connection: 'close' }));
    };
    const cleanup = () => {
      payload.off('data', onData);
      payload.off('end', onEnd);
      payload.off('error', onError);
      payload.off('close', onError);
    };
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onError);
    payload.on('close', onError);
  });
}

/** Where Marathon posts its events. */
export const CALLBACK_PATH = '/api/marathon/event_callback';

/** The callback URL Marathon is given: `<Bamboo.Endpoint>/api/marathon/event_callback[?secret=...]`. */
export function callbackUrlFor(cfg: Pick<Config, 'Bamboo'>): string {
  const base = `${cfg.Bamboo.Endpoint.replace(/\/+$/, '')}${CALLBACK_PATH}`;
  return cfg.Bamboo.CallbackSecret ? `${base}?secret=${encodeURIComponent(cfg.Bamboo.CallbackSecret)}` : base;
}

/** A callback URL fit to show: the secret replaced. */
export function redactCallbackUrl(url: string | null): string | null {
  return url === null ? null : url.replace(/([?&]secret=)[^&]*/, '$1***');
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A request body as text, refusing invalid UTF-8 (a lenient decode would store U+FFFD instead). */
export function decodeBody(body: Buffer): string {
  try {
    return STRICT_UTF8.decode(body);
  } catch {
    let at = 0;
    // Find the first bad byte for the message: decode growing prefixes is too slow; walk sequences.
    for (let i = 0; i < body.length; ) {
      const b = body[i];
      const n = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
      if (n === 0 || i + n > body.length) {
        at = i;
        break;
      }
      try {
        STRICT_UTF8.decode(body.subarray(i, i + n));
      } catch {
        at = i;
        break;
      }
      i += n;
    }
    throw new ApiError('BAMBOO_INVALID_ENCODING', `the request body is not valid UTF-8 (byte 0x${body[at]?.toString(16).padStart(2, '0') ?? '??'} at offset ${at}); send JSON encoded as UTF-8`);
  }
}
