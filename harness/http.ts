/** Tiny real HTTP backends for routing tests: each answers with its own name. */
import { createServer, request, type Server } from 'node:http';

export interface Backend {
  name: string;
  port: number;
  hits: number;
  server: Server;
  close(): Promise<void>;
}

export async function startBackend(name: string, port = 0): Promise<Backend> {
  const b: Partial<Backend> & { hits: number } = { name, hits: 0 };
  const server = createServer((req, res) => {
    b.hits++;
    res.setHeader('content-type', 'text/plain');
    res.end(`${name} ${req.url}\n`);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const addr = server.address();
  b.port = typeof addr === 'object' && addr ? addr.port : 0;
  b.server = server;
  b.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return b as Backend;
}

export interface SimpleResponse {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One HTTP GET with an optional Host header; never throws on status, rejects on connection errors. */
export function httpGet(url: string, opts: { host?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'GET', agent: false,
        headers: { ...(opts.host ? { host: opts.host } : {}), ...(opts.headers ?? {}) }, timeout: opts.timeoutMs ?? 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON (null when it is not JSON). The api's answers are checked field by field. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** How long the call took. */
  ms: number;
}

/**
 * One HTTP call to the api: an object body is sent as JSON (with its content type), a string body
 * as it is (content type only if `headers` says). Throws on a connection error or after `timeoutMs`.
 */
export async function jsonCall(method: string, url: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs = 10000): Promise<JsonResponse> {
  const t0 = performance.now();
  const init: RequestInit = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    if (typeof body !== 'string') (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const r = await fetch(url, init);
  const text = await r.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: r.status, headers: r.headers, text, json, ms: performance.now() - t0 };
}
