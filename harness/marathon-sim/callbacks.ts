/**
 * HTTP callback subscribers (`/v2/eventSubscriptions`, Marathon 0.x-1.4): every event is POSTed as
 * a JSON body to every callback URL.
 *
 * Each subscriber has its own queue delivered one POST at a time, so a subscriber sees events in
 * order and a slow or dead subscriber delays nobody else. Each POST has a timeout, and a subscriber
 * that falls far behind loses its oldest events (Marathon also drops events for slow consumers).
 */
import http from 'node:http';

/** Delivery counters, for tests that check a dead subscriber does not block others. */
export interface CallbackStats {
  delivered: number;
  failed: number;
  dropped: number;
}

interface Subscriber {
  url: string;
  queue: string[];
  busy: boolean;
}

/** Delivers events to callback URLs; see the module comment for the ordering and failure rules. */
export class CallbackDispatcher {
  readonly stats: CallbackStats = { delivered: 0, failed: 0, dropped: 0 };
  private readonly subscribers = new Map<string, Subscriber>();
  private readonly inFlight = new Set<http.ClientRequest>();
  private closed = false;

  constructor(
    private readonly timeoutMs: number,
    private readonly maxQueue = 1000,
  ) {}

  /** Adds a callback URL (idempotent, as in Marathon). */
  subscribe(url: string): void {
    if (!this.subscribers.has(url)) this.subscribers.set(url, { url, queue: [], busy: false });
  }

  /** Removes a callback URL; events already queued for it are dropped. */
  unsubscribe(url: string): void {
    this.subscribers.delete(url);
  }

  /** Callback URLs in subscription order. */
  urls(): string[] {
    return [...this.subscribers.keys()];
  }

  /** Queues one event body for every subscriber and returns at once (`body` is read only when there is one). */
  deliver(body: string | (() => string)): void {
    if (this.closed || this.subscribers.size === 0) return;
    if (typeof body === 'function') body = body();
    for (const s of this.subscribers.values()) {
      s.queue.push(body);
      if (s.queue.length > this.maxQueue) {
        s.queue.shift();
        this.stats.dropped++;
      }
      this.pump(s);
    }
  }

  /**
   * Aborts in-flight POSTs and drops queued events, but keeps the subscriptions: Marathon stores them
   * in ZooKeeper, so they outlive a restart. open() resumes delivery.
   */
  close(): void {
    this.closed = true;
    for (const req of this.inFlight) req.destroy();
    this.inFlight.clear();
    for (const s of this.subscribers.values()) s.queue.length = 0;
  }

  /** Resumes delivery after close() (a restarted simulator). */
  open(): void {
    this.closed = false;
  }

  private pump(s: Subscriber): void {
    if (s.busy || this.closed) return;
    const body = s.queue.shift();
    if (body === undefined) return;
    s.busy = true;
    const finish = (ok: boolean): void => {
      if (!s.busy) return;
      s.busy = false;
      if (ok) this.stats.delivered++;
      else this.stats.failed++;
      // A later unsubscribe removes the subscriber from the map; stop feeding it then.
      if (this.subscribers.get(s.url) === s) this.pump(s);
    };
    let req: http.ClientRequest;
    try {
      req = http.request(s.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
        timeout: this.timeoutMs,
      });
    } catch {
      finish(false);
      return;
    }
    this.inFlight.add(req);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => {
        this.inFlight.delete(req);
        finish((res.statusCode ?? 500) < 400);
      });
      res.on('error', () => {
        this.inFlight.delete(req);
        finish(false);
      });
    });
    req.on('timeout', () => req.destroy(new Error('callback timeout')));
    req.on('error', () => {
      this.inFlight.delete(req);
      finish(false);
    });
    req.end(body);
  }
}
