/**
 * The `/v2/events` streams of one simulator server: opening them (Jetty's rules), Marathon's
 * framing and heartbeats, sending each event to the streams that asked for it, and the stall and
 * drop faults.
 */
import type http from 'node:http';
import * as ev from './events.js';
import type { Faults } from './faults.js';
import { clientAddress, HttpError } from './respond.js';
import type { SimEvent } from './types.js';

/** `event: <type>\r\ndata: <json>\r\n\r\n` (0.11+) or `data: <json>\r\n\r\n` (0.9/0.10), Jetty's CRLF framing (fact 1). */
export function sseFrame(eventType: string, data: string, framing: 'event' | 'data-only'): string {
  return framing === 'event' ? `event: ${eventType}\r\ndata: ${data}\r\n\r\n` : `data: ${data}\r\n\r\n`;
}

/** Jetty's heartbeat: a bare CRLF, which SSE parsers treat as an empty line and ignore. */
export const SSE_HEARTBEAT = '\r\n';

/** What the streams need from their server. */
export interface StreamsContext {
  faults: Faults;
  framing: 'event' | 'data-only';
  heartbeatMs: number;
  clock: () => Date;
  /** Sends an event the streams cause (attached, detached) the way the server sends every event. */
  dispatch(e: SimEvent): void;
}

interface Stream {
  res: http.ServerResponse;
  filter: Set<string> | null;
  /** Asked for `?plan-format=light` on a Marathon that knows it (1.6; later ones send light anyway). */
  light: boolean;
  remoteAddress: string;
  heartbeat?: NodeJS.Timeout;
}

/** The open (and the stalled) event streams of one server. */
export class EventStreams {
  private readonly streams = new Set<Stream>();
  /** Stream requests that arrived during a stall and wait for it to end. */
  private readonly held = new Set<Stream>();
  private closing = false;

  constructor(private readonly ctx: StreamsContext) {}

  /**
   * GET /v2/events. Jetty's EventSourceServlet only answers `Accept: text/event-stream`; filters by
   * the repeatable `event_type` parameter (1.3.7+); `plan-format=light` (1.6+) drops the deployment
   * plans' original/target; first frame event_stream_attached.
   */
  open(req: http.IncomingMessage, res: http.ServerResponse, params: URLSearchParams, method: string): void {
    if (method !== 'GET') throw new HttpError(405, 'HTTP 405 Method Not Allowed');
    const accepts = (req.headers.accept ?? '').split(',').map((a) => a.split(';')[0]?.trim());
    if (!accepts.includes('text/event-stream')) {
      throw new HttpError(406, 'GET /v2/events needs the header "Accept: text/event-stream"');
    }
    const types = params.getAll('event_type').filter((t) => t !== '');
    // Marathon before 1.6 ignores the parameter; 1.6 drops the plans' original/target when asked.
    const light = params.get('plan-format') === 'light';
    const stream: Stream = { res, filter: types.length > 0 ? new Set(types) : null, light, remoteAddress: clientAddress(req) };
    res.on('close', () => this.detach(stream));
    if (this.ctx.faults.stallStream) this.held.add(stream);
    else this.attach(stream);
  }

  /** Writes one event to the streams whose filter takes it; nothing while the stallStream fault is on. */
  send(e: SimEvent): void {
    if (this.ctx.faults.stallStream) return;
    // Each form is framed once, and only when a stream takes it (an event's full JSON is serialised on
    // first use: with a heavy plan at 10,000 apps that is megabytes no light stream reads).
    let frame: string | undefined;
    let light: string | undefined;
    for (const s of this.streams) {
      if (s.filter && !s.filter.has(e.eventType)) continue;
      if (s.light && e.light !== undefined) s.res.write((light ??= sseFrame(e.eventType, e.light, this.ctx.framing)));
      else s.res.write((frame ??= sseFrame(e.eventType, e.data, this.ctx.framing)));
    }
  }

  /** Ends every open event stream (the dropStream fault, and stop). */
  dropStreams(): void {
    for (const s of [...this.streams]) {
      this.streams.delete(s);
      clearInterval(s.heartbeat);
      s.res.end();
      s.res.socket?.destroySoon();
    }
  }

  /** When a stall ends, held stream requests finally get their headers. */
  stallChanged(stalled: boolean): void {
    if (stalled) return;
    for (const s of [...this.held]) {
      this.held.delete(s);
      this.attach(s);
    }
  }

  /** Ends every stream and drops the held requests; no stream opens after this. */
  close(): void {
    this.closing = true;
    this.dropStreams();
    for (const s of this.held) s.res.destroy();
    this.held.clear();
  }

  private attach(stream: Stream): void {
    const { res } = stream;
    if (res.destroyed || this.closing) return;
    res.writeHead(200, { 'Content-Type': 'text/event-stream;charset=UTF-8', Connection: 'close' });
    res.flushHeaders();
    this.streams.add(stream);
    stream.heartbeat = setInterval(() => {
      if (!this.ctx.faults.stallStream) res.write(SSE_HEARTBEAT);
    }, this.ctx.heartbeatMs);
    const attached = ev.streamEvent('event_stream_attached', stream.remoteAddress, this.ctx.clock().toISOString());
    this.ctx.dispatch({ eventType: 'event_stream_attached', data: JSON.stringify(attached) });
  }

  private detach(stream: Stream): void {
    this.held.delete(stream);
    clearInterval(stream.heartbeat);
    if (!this.streams.delete(stream) || this.closing) return;
    const detached = ev.streamEvent('event_stream_detached', stream.remoteAddress, this.ctx.clock().toISOString());
    this.ctx.dispatch({ eventType: 'event_stream_detached', data: JSON.stringify(detached) });
  }
}
