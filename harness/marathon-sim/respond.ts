/**
 * How the simulator answers HTTP the way Marathon (Jetty) does: its JSON headers, `{"message": ...}`
 * error answers, JSON bodies in and out (with the truncateJson fault), and the client's address.
 */
import type http from 'node:http';
import type { Faults } from './faults.js';

/** Headers of every JSON answer, as recorded from a real Marathon (fact 10). */
export const JSON_HEADERS = {
  'Content-Type': 'application/json',
  'Cache-Control': 'no-cache, no-store, must-revalidate',
  Pragma: 'no-cache',
  Expires: '0',
} as const;

/** Answered with `status` and Marathon's `{"message": ...}` body (SimServer.fail). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The client's address as Marathon reports it in events (an IPv4-mapped IPv6 address as plain IPv4). */
export function clientAddress(req: http.IncomingMessage): string {
  return (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
}

/** Writes a JSON answer; chunked like Jetty's (no Content-Length), halved by the truncateJson fault. */
export function sendJson(res: http.ServerResponse, faults: Faults, status: number, body: unknown, headers: Record<string, string> = {}): void {
  let text = JSON.stringify(body);
  if (faults.truncateJson) text = text.slice(0, Math.floor(text.length / 2));
  res.writeHead(status, { ...JSON_HEADERS, ...headers });
  res.write(text);
  res.end();
}

/** The JSON body of a request (`{}` when empty); 413 above 1 MiB, 400 when it does not parse. */
export function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1 << 20) reject(new HttpError(413, 'Request body too large'));
      else chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text === '' ? {} : JSON.parse(text));
      } catch (e) {
        reject(new HttpError(400, `Invalid JSON: ${(e as Error).message}`));
      }
    });
    req.on('error', reject);
  });
}
