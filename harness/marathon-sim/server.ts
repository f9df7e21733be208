/**
 * The HTTP face of the simulator: the request pipeline (request log, latency, basic auth, the error
 * faults) in front of Marathon's REST endpoints (the app and task ones in app-routes.ts), the
 * `/v2/events` streams (streams.ts) and the callback subscriptions. It reads SimState and
 * forwards its events; it holds no app state of its own, so a stopped simulator restarts on the
 * same port with the same apps (a Marathon failover or restart).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AppRoutes } from './app-routes.js';
import type { CallbackDispatcher } from './callbacks.js';
import * as ev from './events.js';
import type { Faults } from './faults.js';
import { deploymentJson } from './plans.js';
import { clientAddress, HttpError, JSON_HEADERS, sendJson } from './respond.js';
import type { SimState } from './state.js';
import { EventStreams } from './streams.js';
import { SimulatorError, type JsonObject, type RequestRecord, type SimEvent } from './types.js';
import type { Era } from './version.js';

/** Body of the `htmlError` fault: what a reverse proxy in front of a dead Marathon serves. */
const HTML_502 =
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';

/** Everything a SimServer needs; the simulator owns these so they survive a restart. */
export interface ServerContext {
  state: SimState;
  era: Era;
  faults: Faults;
  requests: RequestRecord[];
  callbacks: CallbackDispatcher;
  /** Called with every event this server sends (the simulator's onEvent listeners). */
  onDispatch: (e: SimEvent) => void;
  framing: 'event' | 'data-only';
  heartbeatMs: number;
  auth?: { user: string; password: string };
  subscriptions: boolean;
  /** Value of /v2/leader; default this server's host:port. */
  leader?: string;
  frameworkId: string;
  clock: () => Date;
}

/** One listening HTTP server of the simulator. Single use: listen once, close once. */
export class SimServer {
  private readonly server: http.Server;
  private readonly streams: EventStreams;
  private readonly apps: AppRoutes;
  private readonly wakers = new Set<() => void>();
  private readonly stopListening: () => void;
  private closing = false;
  private address = '';

  constructor(private readonly ctx: ServerContext) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => this.fail(res, err));
    });
    this.streams = new EventStreams({
      faults: ctx.faults,
      framing: ctx.framing,
      heartbeatMs: ctx.heartbeatMs,
      clock: ctx.clock,
      dispatch: (e) => this.dispatch(e),
    });
    this.apps = new AppRoutes(ctx);
    this.stopListening = ctx.state.onEvent((e) => this.dispatch(e));
  }

  /** Binds and resolves the port actually bound. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const bound = (this.server.address() as AddressInfo).port;
        this.address = `${host}:${bound}`;
        resolve(bound);
      });
    });
  }

  /** Closes every stream and connection; resolves when the port is free. Events no longer flow. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.stopListening();
    for (const wake of this.wakers) wake();
    this.streams.close();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** Sends one event to the matching streams and to every callback subscriber. */
  dispatch(e: SimEvent): void {
    if (this.closing) return;
    this.ctx.onDispatch(e);
    this.streams.send(e);
    if (this.ctx.subscriptions) this.ctx.callbacks.deliver(() => e.data);
  }

  /** Ends every open event stream (the dropStream fault, and stop). */
  dropStreams(): void {
    this.streams.dropStreams();
  }

  /** When a stall ends, held stream requests finally get their headers. */
  stallChanged(stalled: boolean): void {
    this.streams.stallChanged(stalled);
  }

  // ---- request pipeline -------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // A client that goes away mid-answer must not crash the simulator.
    res.on('error', () => undefined);
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q >= 0 ? raw.slice(0, q) : raw;
    const query = q >= 0 ? raw.slice(q + 1) : '';
    const method = req.method ?? 'GET';
    this.ctx.requests.push({ method, path, query, at: Date.now(), headers: { ...req.headers } });
    const params = new URLSearchParams(query);
    const { faults } = this.ctx;

    if (faults.latencyMs > 0) await this.sleep(faults.latencyMs);
    if (this.closing) {
      res.destroy();
      return;
    }
    if (path === '/ping') {
      res.writeHead(200, { ...JSON_HEADERS, 'Content-Type': 'text/plain;charset=iso-8859-1' });
      res.end('pong\n');
      return;
    }
    if (!this.authorised(req)) {
      res.setHeader('WWW-Authenticate', 'Basic realm="Mesosphere Marathon"');
      throw new HttpError(401, 'Invalid username or password.');
    }
    if (faults.htmlError) {
      res.writeHead(502, { 'Content-Type': 'text/html' });
      res.end(HTML_502);
      return;
    }
    if (faults.status !== null) throw new HttpError(faults.status, faultMessage(faults.status));

    if (path === '/v2/events') return this.streams.open(req, res, params, method);
    if (path === '/v2/eventSubscriptions') return this.subscriptions(req, res, params, method);
    if (path === '/v2/apps' || path === '/v2/apps/') {
      if (method === 'GET') return sendJson(res, this.ctx.faults, 200, { apps: this.apps.listApps(params) });
      if (method === 'POST') return this.apps.createApp(req, res, path);
      throw new HttpError(405, 'HTTP 405 Method Not Allowed');
    }
    if (path.startsWith('/v2/apps/')) return this.apps.appRoute(req, res, path, params, method);
    if (method !== 'GET') throw new HttpError(405, 'HTTP 405 Method Not Allowed');
    switch (path) {
      case '/v2/tasks':
        return sendJson(res, this.ctx.faults, 200, { tasks: this.apps.listTasks(this.ctx.state.listApps(), params.get('status')) });
      case '/v2/deployments':
        return sendJson(res, this.ctx.faults, 200, this.ctx.state.listDeployments().map((d) => deploymentJson(d, this.ctx.era)));
      case '/v2/info':
        return sendJson(res, this.ctx.faults, 200, this.info());
      case '/v2/leader':
        return sendJson(res, this.ctx.faults, 200, { leader: this.ctx.leader ?? this.address });
      default:
        throw new HttpError(404, 'HTTP 404 Not Found');
    }
  }

  private authorised(req: http.IncomingMessage): boolean {
    const auth = this.ctx.auth;
    if (!auth) return true;
    const header = req.headers.authorization ?? '';
    const m = /^Basic\s+(.+)$/i.exec(header);
    if (!m) return false;
    return Buffer.from(m[1] as string, 'base64').toString('utf8') === `${auth.user}:${auth.password}`;
  }

  private fail(res: http.ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HttpError) return sendJson(res, this.ctx.faults, err.status, { message: err.message });
    if (err instanceof SimulatorError) return sendJson(res, this.ctx.faults, 400, { message: err.message });
    sendJson(res, this.ctx.faults, 500, { message: err instanceof Error ? err.message : String(err) });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  // ---- info ---------------------------------------------------------------------------------------

  private info(): JsonObject {
    const [host, port] = this.address.split(':');
    return {
      name: 'marathon',
      version: this.ctx.era.version,
      buildref: 'marathon-sim',
      elected: true,
      leader: this.ctx.leader ?? this.address,
      frameworkId: this.ctx.frameworkId,
      ...(this.ctx.subscriptions ? { event_subscriber: { type: 'http_callback', http_endpoints: this.ctx.callbacks.urls() } } : {}),
      marathon_config: {
        checkpoint: true,
        executor: '//cmd',
        ha: true,
        hostname: host,
        local_port_max: 20000,
        local_port_min: 10000,
        master: 'zk://127.0.0.1:2181/mesos',
        mesos_role: null,
        mesos_user: 'root',
        webui_url: null,
      },
      zookeeper_config: { zk: 'zk://127.0.0.1:2181/marathon', zk_timeout: 10000 },
      http_config: { http_port: Number(port), https_port: 8443 },
    };
  }

  // ---- event subscriptions ----------------------------------------------------------------------

  /** /v2/eventSubscriptions (removed in 1.5; kept unless the simulator was built with subscriptions: false). */
  private subscriptions(req: http.IncomingMessage, res: http.ServerResponse, params: URLSearchParams, method: string): void {
    if (!this.ctx.subscriptions) throw new HttpError(404, 'HTTP 404 Not Found');
    const { callbacks } = this.ctx;
    if (method === 'GET') return sendJson(res, this.ctx.faults, 200, { callbackUrls: callbacks.urls() });
    if (method !== 'POST' && method !== 'DELETE') throw new HttpError(405, 'HTTP 405 Method Not Allowed');
    const url = params.get('callbackUrl');
    if (!url) throw new HttpError(400, 'callbackUrl is required');
    const subscribe = method === 'POST';
    if (subscribe) callbacks.subscribe(url);
    const event = ev.subscriptionEvent(subscribe ? 'subscribe_event' : 'unsubscribe_event', clientAddress(req), url, this.ctx.clock().toISOString());
    // Marathon publishes the (un)subscribe on its event bus, so the new subscriber receives its own subscribe_event.
    this.dispatch({ eventType: String(event['eventType']), data: JSON.stringify(event) });
    if (!subscribe) callbacks.unsubscribe(url);
    sendJson(res, this.ctx.faults, 200, event);
  }
}

/** The `message` of a fault answer; Marathon's error bodies are `{"message": "..."}` (fact 9). */
function faultMessage(status: number): string {
  switch (status) {
    case 401:
      return 'Invalid username or password.';
    case 403:
      return 'Not Authorized to perform this action!';
    case 500:
      return 'An unexpected server error occurred.';
    case 503:
      return 'Could not determine the current leader';
    default:
      return `HTTP ${status} ${http.STATUS_CODES[status] ?? 'Error'}`;
  }
}
