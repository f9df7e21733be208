/**
 * MarathonEventStream reads `/v2/events` (server-sent events; CRLF or LF framing; `event:` lines or
 * `data:` lines only), fails over across endpoints, reconnects with backoff and treats a stream silent
 * for longer than the idle timeout as dead. The client opens each connection (it asks for the light
 * plan format, see EVENTS_PATH); an event's JSON is parsed only when its consumer asks for it: the type
 * comes from the `event:` line.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { redactUrl } from '../../config-redact.js';
import { toMarathonEvent, type MarathonEvent } from '../../core/marathon-api.js';
import type { Logger } from '../../log.js';
import { Backoff } from '../../pacing.js';
import type { MarathonClient } from './marathon.js';
import { describeTransport, MarathonError } from './marathon-errors.js';

export interface EventStreamOptions {
  /** A stream with no bytes (not even a heartbeat) for this long is dropped and reopened. */
  idleTimeoutMs: number;
  /** Reconnect backoff: first delay and cap (defaults 250 ms and 10 s). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  log: Logger;
  onEvent(event: MarathonEvent): void;
  /** Called each time a stream is open (events may have been missed before: resync). */
  onConnected?(endpoint: string): void;
  onDisconnected?(endpoint: string, reason: string): void;
  /** Called for every failed attempt or ended stream (metrics): a MarathonFailure reason, or `ended`. */
  onFailure?(reason: string): void;
}

export interface EventStreamStatus {
  running: boolean;
  connected: boolean;
  endpoint: string | null;
  connects: number;
  events: number;
  lastEventAt: number | null;
  lastError: string | null;
}

/**
 * Reads Marathon's event stream until stop(): one connection at a time, failing over to the next
 * endpoint after a failure, with exponential backoff between attempts. Never throws: every failure
 * is logged, recorded in status() and retried.
 */
export class MarathonEventStream {
  private running = false;
  private abort: AbortController | null = null;
  private loopDone: Promise<void> = Promise.resolve();
  private wake: (() => void) | null = null;
  private index = 0;
  private readonly state: EventStreamStatus = {
    running: false, connected: false, endpoint: null, connects: 0, events: 0, lastEventAt: null, lastError: null,
  };

  constructor(
    private readonly client: Pick<MarathonClient, 'endpoints' | 'openEventStream'>,
    private readonly opts: EventStreamOptions,
  ) {}

  status(): EventStreamStatus {
    return { ...this.state };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.state.running = true;
    this.loopDone = this.loop();
  }

  /** Stops reading and waits for the connection to close. Idempotent. */
  async stop(): Promise<void> {
    if (!this.running) return this.loopDone;
    this.running = false;
    this.state.running = false;
    this.abort?.abort();
    this.wake?.();
    await this.loopDone;
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff(this.opts.backoffMinMs ?? 250, this.opts.backoffMaxMs ?? 10000);
    while (this.running) {
      const endpoint = this.client.endpoints[this.index % this.client.endpoints.length];
      const abort = new AbortController();
      this.abort = abort;
      let opened = false;
      try {
        await this.readOnce(endpoint, abort, () => (opened = true));
        this.state.lastError = 'stream ended';
        if (this.running) this.opts.onFailure?.('ended');
      } catch (err) {
        const e = err as MarathonError;
        if (!this.running) break;
        this.state.lastError = e.message;
        this.opts.log.warn({ endpoint: redactUrl(endpoint), reason: e.reason ?? 'error', err: e }, 'marathon event stream failed');
        this.opts.onFailure?.(e.reason ?? 'error');
      } finally {
        if (this.state.connected) this.opts.onDisconnected?.(redactUrl(endpoint), this.state.lastError ?? 'stopped');
        this.state.connected = false;
      }
      if (!this.running) break;
      // A stream that opened and then ended or went silent is reopened soon on the same endpoint; an
      // endpoint that could not be opened makes us try the next one, backing off.
      if (opened) backoff.reset();
      else this.index++;
      const delay = opened ? backoff.initialMs : backoff.fail();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** One connection, until it ends (resolves) or fails (rejects with a MarathonError). */
  private async readOnce(endpoint: string, abort: AbortController, onOpen: () => void): Promise<void> {
    const { body, url } = await this.client.openEventStream(endpoint, abort.signal);
    onOpen();
    this.state.connected = true;
    this.state.endpoint = url;
    this.state.connects++;
    this.opts.log.info({ endpoint: url }, 'marathon event stream open');
    this.opts.onConnected?.(url);
    const parser = createParser({
      maxBufferSize: 64 * 1024 * 1024,
      onEvent: (msg: EventSourceMessage) => {
        const event = toMarathonEvent(msg);
        this.state.events++;
        this.state.lastEventAt = Date.now();
        try {
          this.opts.onEvent(event);
        } catch (err) {
          this.opts.log.error({ err }, 'event handler failed');
        }
      },
    });
    body.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      let idle: NodeJS.Timeout;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => {
          cleanup();
          body.destroy();
          reject(new MarathonError('idle', `event stream from ${url} silent for ${this.opts.idleTimeoutMs} ms; reopening`, url));
        }, this.opts.idleTimeoutMs);
      };
      const cleanup = () => {
        clearTimeout(idle);
        body.off('data', onData);
        body.off('end', onEnd);
        body.off('close', onEnd);
        body.off('error', onError);
      };
      const onData = (chunk: string) => {
        arm();
        try {
          parser.feed(chunk);
        } catch (err) {
          cleanup();
          body.destroy();
          reject(new MarathonError('parse', `event stream from ${url}: ${(err as Error).message}`, url));
        }
      };
      const onEnd = () => {
        cleanup();
        if (abort.signal.aborted) reject(new MarathonError('aborted', 'event stream stopped', url));
        else resolve();
      };
      const onError = (err: Error) => {
        cleanup();
        reject(new MarathonError(abort.signal.aborted ? 'aborted' : 'unreachable', `event stream from ${url}: ${describeTransport(err)}`, url));
      };
      body.on('data', onData);
      body.on('end', onEnd);
      body.on('close', onEnd);
      body.on('error', onError);
      arm();
    });
  }
}
