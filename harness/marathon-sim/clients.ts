/**
 * Small clients for tests that talk to the simulator: a raw `/v2/events` reader (keeps the exact
 * bytes and parses them with eventsource-parser, a standard SSE parser) and an HTTP callback
 * receiver for `/v2/eventSubscriptions`. Both bind or connect to 127.0.0.1 only.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createParser, type EventSourceMessage } from 'eventsource-parser';

/** Polls `condition` every few ms until it holds; rejects after `timeoutMs` naming `what` was awaited. */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An open `/v2/events` connection. */
export interface SseClient {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Parsed frames so far, in order. */
  readonly events: EventSourceMessage[];
  /** Every body byte so far (decoded as UTF-8), heartbeats included. */
  raw(): string;
  /** True once the server ended the stream. */
  readonly ended: boolean;
  /** Waits until at least `n` frames arrived. */
  waitForEvents(n: number, timeoutMs?: number): Promise<void>;
  /** Waits until the server closes the stream. */
  waitForEnd(timeoutMs?: number): Promise<void>;
  close(): void;
}

/**
 * Opens `GET <baseUrl>/v2/events[?query]` with `Accept: text/event-stream` (override via headers).
 * Resolves once the response headers arrived, whatever the status.
 */
export function openEventStream(
  baseUrl: string,
  opts: { query?: string; headers?: Record<string, string>; path?: string } = {},
): Promise<SseClient> {
  const url = `${baseUrl}${opts.path ?? '/v2/events'}${opts.query ? `?${opts.query}` : ''}`;
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { Accept: 'text/event-stream', ...opts.headers } }, (res) => {
      let raw = '';
      let ended = false;
      const events: EventSourceMessage[] = [];
      const parser = createParser({ onEvent: (e) => events.push(e) });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        raw += chunk;
        parser.feed(chunk);
      });
      const end = (): void => {
        ended = true;
      };
      res.on('end', end);
      res.on('close', end);
      res.on('error', end);
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        raw: () => raw,
        get ended() {
          return ended;
        },
        waitForEvents: (n, timeoutMs) => waitUntil(() => events.length >= n, `${n} SSE frames (have ${events.length})`, timeoutMs),
        waitForEnd: (timeoutMs) => waitUntil(() => ended, 'the event stream to end', timeoutMs),
        close: () => {
          req.destroy();
          ended = true;
        },
      });
    });
    req.on('error', reject);
  });
}

/** One POST received by a callback receiver. */
export interface ReceivedCallback {
  body: string;
  contentType: string | undefined;
  path: string;
}

/** An HTTP server standing in for Bamboo's `/api/marathon/event_callback`. */
export interface CallbackReceiver {
  /** The callback URL to subscribe. */
  url: string;
  readonly received: ReceivedCallback[];
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts a callback receiver on a free 127.0.0.1 port. With `hang: true` it never answers, to
 * model a dead subscriber.
 */
export function startCallbackReceiver(opts: { hang?: boolean } = {}): Promise<CallbackReceiver> {
  const received: ReceivedCallback[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ body: Buffer.concat(chunks).toString('utf8'), contentType: req.headers['content-type'], path: req.url ?? '' });
      if (!opts.hang) res.end();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}/api/marathon/event_callback`,
        received,
        waitFor: (n, timeoutMs) => waitUntil(() => received.length >= n, `${n} callback POSTs (have ${received.length})`, timeoutMs),
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
