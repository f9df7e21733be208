/**
 * The HTTP face of the simulator: Marathon's REST endpoints, the `/v2/events` stream and the
 * callback subscriptions, with basic auth and fault injection in front. It reads SimState and
 * forwards its events; it holds no app state of its own, so a stopped simulator restarts on the
 * same port with the same apps (a Marathon failover or restart).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CallbackDispatcher } from './callbacks.js';
import { servicePortsOf } from './definition.js';
import * as ev from './events.js';
import type { Faults } from './faults.js';
import { deploymentJson } from './plans.js';
import { canonicalAppId, type AppRecord } from './records.js';
import type { SimState } from './state.js';
import { SimulatorError, type AppDefinition, type JsonObject, type RequestRecord, type SimEvent, type TaskState } from './types.js';
import type { Era } from './version.js';
import { matchesIdFilter, matchesLabelSelector, parseEmbed, renderApp, renderTask, type Embed } from './wire.js';

/** `event: <type>\r\ndata: <json>\r\n\r\n` (0.11+) or `data: <json>\r\n\r\n` (0.9/0.10), Jetty's CRLF framing (fact 1). */
export function sseFrame(eventType: string, data: string, framing: 'event' | 'data-only'): string {
  return framing === 'event' ? `event: ${eventType}\r\ndata: ${data}\r\n\r\n` : `data: ${data}\r\n\r\n`;
}

/** Jetty's heartbeat: a bare CRLF, which SSE parsers treat as an empty line and ignore. */
export const SSE_HEARTBEAT = '\r\n';

/** Headers of every JSON answer, as recorded from a real Marathon (fact 10). */
const JSON_HEADERS = {
  'Content-Type': 'application/json',
  'Cache-Control': 'no-cache, no-store, must-revalidate',
  Pragma: 'no-cache',
  Expires: '0',
} as const;

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

interface Stream {
  res: http.ServerResponse;
  filter: Set<string> | null;
  /** Asked for `?plan-format=light` on a Marathon that knows it (1.6; later ones send light anyway). */
  light: boolean;
  remoteAddress: string;
  heartbeat?: NodeJS.Timeout;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function clientAddress(req: http.IncomingMessage): string {
  return (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
}

/** One listening HTTP server of the simulator. Single use: listen once, close once. */
export class SimServer {
  private readonly server: http.Server;
  private readonly streams = new Set<Stream>();
  /** Stream requests that arrived during a stall and wait for it to end. */
  private readonly held = new Set<Stream>();
  private readonly wakers = new Set<() => void>();
  private readonly stopListening: () => void;
  private closing = false;
  private address = '';

  constructor(private readonly ctx: ServerContext) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => this.fail(res, err));
    });
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
    this.dropStreams();
    for (const s of this.held) s.res.destroy();
    this.held.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** Sends one event to the matching streams and to every callback subscriber. */
  dispatch(e: SimEvent): void {
    if (this.closing) return;
    this.ctx.onDispatch(e);
    if (!this.ctx.faults.stallStream) {
      const frame = sseFrame(e.eventType, e.data, this.ctx.framing);
      let light: string | undefined;
      for (const s of this.streams) {
        if (s.filter && !s.filter.has(e.eventType)) continue;
        if (s.light && e.light !== undefined) s.res.write((light ??= sseFrame(e.eventType, e.light, this.ctx.framing)));
        else s.res.write(frame);
      }
    }
    if (this.ctx.subscriptions) this.ctx.callbacks.deliver(e.data);
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

    if (path === '/v2/events') return this.openStream(req, res, params, method);
    if (path === '/v2/eventSubscriptions') return this.subscriptions(req, res, params, method);
    if (path === '/v2/apps' || path === '/v2/apps/') {
      if (method === 'GET') return this.sendJson(res, 200, { apps: this.listApps(params) });
      if (method === 'POST') return this.createApp(req, res, path);
      throw new HttpError(405, 'HTTP 405 Method Not Allowed');
    }
    if (path.startsWith('/v2/apps/')) return this.appRoute(req, res, path, params, method);
    if (method !== 'GET') throw new HttpError(405, 'HTTP 405 Method Not Allowed');
    switch (path) {
      case '/v2/tasks':
        return this.sendJson(res, 200, { tasks: this.listTasks(this.ctx.state.listApps(), params.get('status')) });
      case '/v2/deployments':
        return this.sendJson(res, 200, this.ctx.state.listDeployments().map((d) => deploymentJson(d, this.ctx.era)));
      case '/v2/info':
        return this.sendJson(res, 200, this.info());
      case '/v2/leader':
        return this.sendJson(res, 200, { leader: this.ctx.leader ?? this.address });
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
    if (err instanceof HttpError) return this.sendJson(res, err.status, { message: err.message });
    if (err instanceof SimulatorError) return this.sendJson(res, 400, { message: err.message });
    this.sendJson(res, 500, { message: err instanceof Error ? err.message : String(err) });
  }

  /** Writes a JSON answer; chunked like Jetty's (no Content-Length), halved by the truncateJson fault. */
  private sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    let text = JSON.stringify(body);
    if (this.ctx.faults.truncateJson) text = text.slice(0, Math.floor(text.length / 2));
    res.writeHead(status, { ...JSON_HEADERS, ...headers });
    res.write(text);
    res.end();
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

  private readBody(req: http.IncomingMessage): Promise<unknown> {
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

  // ---- apps and tasks ---------------------------------------------------------------------------

  /** GET /v2/apps: counts and deployments are always embedded (Marathon 1.x, kept for compatibility). */
  private listApps(params: URLSearchParams): JsonObject[] {
    if (this.ctx.faults.emptyApps) return [];
    const keep = this.ctx.faults.keepApps;
    if (keep !== null) return this.listAppsUnfaulted(params).slice(0, keep);
    return this.listAppsUnfaulted(params);
  }

  private listAppsUnfaulted(params: URLSearchParams): JsonObject[] {
    const embed = parseEmbed(params.getAll('embed'));
    embed.add('counts').add('deployments');
    const id = params.get('id');
    const label = params.get('label');
    const cmd = params.get('cmd');
    return this.ctx.state
      .listApps()
      .filter((a) => (id ? matchesIdFilter(String(a.def['id']), id) : true))
      .filter((a) => (label ? matchesLabelSelector((a.def['labels'] ?? {}) as Record<string, unknown>, label) : true))
      .filter((a) => (cmd ? String(a.def['cmd'] ?? '').includes(cmd) : true))
      .map((a) => this.render(a, embed));
  }

  private render(app: AppRecord, embed: ReadonlySet<Embed>): JsonObject {
    return renderApp(app, embed, this.ctx.state.deploymentIdsOf(String(app.def['id'])));
  }

  private listTasks(apps: AppRecord[], status: string | null): JsonObject[] {
    const wanted = status ? (`TASK_${status.toUpperCase()}` as TaskState) : null;
    return apps.flatMap((a) => {
      const servicePorts = servicePortsOf(a.def);
      return a.tasks.filter((t) => !wanted || t.state === wanted).map((t) => renderTask(t, servicePorts));
    });
  }

  private mustApp(appId: string): AppRecord {
    const app = this.ctx.state.findApp(appId);
    if (!app) throw new HttpError(404, `App '${canonicalAppId(appId)}' does not exist`);
    return app;
  }

  /** Routes /v2/apps/{id}[/tasks[/{taskId}] | /restart]; ids contain slashes, clients may double them. */
  private async appRoute(req: http.IncomingMessage, res: http.ServerResponse, path: string, params: URLSearchParams, method: string): Promise<void> {
    let rest: string;
    try {
      rest = decodeURIComponent(path.slice('/v2/apps'.length));
    } catch {
      throw new HttpError(400, 'Invalid path encoding');
    }
    const state = this.ctx.state;
    const taskMatch = /^(.*)\/tasks\/([^/]+)$/.exec(rest);
    if (taskMatch && state.findApp(taskMatch[1] as string)) {
      if (method !== 'DELETE') throw new HttpError(405, 'HTTP 405 Method Not Allowed');
      const app = this.mustApp(taskMatch[1] as string);
      const task = app.tasks.find((t) => t.id === taskMatch[2]);
      if (!task) throw new HttpError(404, `Task '${taskMatch[2]}' does not exist`);
      const rendered = renderTask(task);
      const scale = params.get('scale') === 'true';
      const out = state.killTask(task.id, { scale });
      if (scale) return this.sendJson(res, 200, { version: String(app.def['version'] ?? ''), deploymentId: out.deploymentId });
      return this.sendJson(res, 200, { task: rendered });
    }
    if (rest.endsWith('/tasks') && state.findApp(rest.slice(0, -'/tasks'.length))) {
      if (method !== 'GET') throw new HttpError(405, 'HTTP 405 Method Not Allowed');
      const app = this.mustApp(rest.slice(0, -'/tasks'.length));
      return this.sendJson(res, 200, { tasks: this.listTasks([app], params.get('status')) });
    }
    if (rest.endsWith('/restart') && method === 'POST' && state.findApp(rest.slice(0, -'/restart'.length))) {
      const { deploymentId } = state.rollingRestart(rest.slice(0, -'/restart'.length));
      const app = this.mustApp(rest.slice(0, -'/restart'.length));
      return this.sendJson(res, 200, { version: String(app.def['version'] ?? ''), deploymentId });
    }
    switch (method) {
      case 'GET': {
        // GET /v2/apps/{id} always embeds tasks, counts, deployments and lastTaskFailure (AppsResource.show).
        const embed = parseEmbed(params.getAll('embed'));
        for (const e of ['counts', 'tasks', 'deployments', 'lastTaskFailure'] as const) embed.add(e);
        // A Marathon that lost its state (emptyApps, keepApps) knows the lost apps no more one by one.
        const f = this.ctx.faults;
        const lost = f.emptyApps || (f.keepApps !== null && state.listApps().findIndex((a) => a === state.findApp(rest)) >= f.keepApps);
        if (lost || f.unknownApps.has(canonicalAppId(rest))) throw new HttpError(404, `App '${canonicalAppId(rest)}' does not exist`);
        return this.sendJson(res, 200, { app: this.render(this.mustApp(rest), embed) });
      }
      case 'PUT': {
        const body = (await this.readBody(req)) as JsonObject;
        if (!state.findApp(rest)) return this.createApp(req, res, path, { ...body, id: rest });
        const keys = Object.keys(body).filter((k) => k !== 'id');
        if (keys.length !== 1 || keys[0] !== 'instances' || typeof body['instances'] !== 'number') {
          throw new HttpError(400, 'marathon-sim only supports {"instances": n} updates; use the simulator controls for other changes');
        }
        const { deploymentId } = state.scaleApp(rest, body['instances'], { clientIp: clientAddress(req) });
        return this.sendJson(res, 200, { version: String(this.mustApp(rest).def['version']), deploymentId });
      }
      case 'DELETE': {
        this.mustApp(rest);
        const { deploymentId } = state.destroyApp(rest);
        return this.sendJson(res, 200, { version: this.ctx.clock().toISOString(), deploymentId });
      }
      default:
        throw new HttpError(405, 'HTTP 405 Method Not Allowed');
    }
  }

  /** POST /v2/apps (or PUT of an unknown id): 201 with the app and its deployment. */
  private async createApp(req: http.IncomingMessage, res: http.ServerResponse, path: string, given?: JsonObject): Promise<void> {
    const body = given ?? ((await this.readBody(req)) as JsonObject);
    if (typeof body['id'] !== 'string' || body['id'].replace(/\//g, '') === '') throw new HttpError(422, 'Object is not valid: id must be given');
    if (this.ctx.state.findApp(body['id'])) throw new HttpError(409, `An app with id [${canonicalAppId(body['id'])}] already exists.`);
    const { deploymentId, appId } = this.ctx.state.deployApp(body as AppDefinition, { clientIp: clientAddress(req), uri: path });
    const app = this.mustApp(appId);
    const out = { ...renderApp(app, new Set<Embed>(['counts']), []), deployments: [{ id: deploymentId }] };
    this.sendJson(res, 201, out, { Location: `/v2/apps${appId}`, 'Marathon-Deployment-Id': deploymentId });
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
    if (method === 'GET') return this.sendJson(res, 200, { callbackUrls: callbacks.urls() });
    if (method !== 'POST' && method !== 'DELETE') throw new HttpError(405, 'HTTP 405 Method Not Allowed');
    const url = params.get('callbackUrl');
    if (!url) throw new HttpError(400, 'callbackUrl is required');
    const subscribe = method === 'POST';
    if (subscribe) callbacks.subscribe(url);
    const event = ev.subscriptionEvent(subscribe ? 'subscribe_event' : 'unsubscribe_event', clientAddress(req), url, this.ctx.clock().toISOString());
    // Marathon publishes the (un)subscribe on its event bus, so the new subscriber receives its own subscribe_event.
    this.dispatch({ eventType: String(event['eventType']), data: JSON.stringify(event) });
    if (!subscribe) callbacks.unsubscribe(url);
    this.sendJson(res, 200, event);
  }

  // ---- event stream -----------------------------------------------------------------------------

  /**
   * GET /v2/events. Jetty's EventSourceServlet only answers `Accept: text/event-stream`; filters by
   * the repeatable `event_type` parameter (1.3.7+); `plan-format=light` (1.6+) drops the deployment
   * plans' original/target; first frame event_stream_attached.
   */
  private openStream(req: http.IncomingMessage, res: http.ServerResponse, params: URLSearchParams, method: string): void {
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
    this.dispatch({ eventType: 'event_stream_attached', data: JSON.stringify(attached) });
  }

  private detach(stream: Stream): void {
    this.held.delete(stream);
    clearInterval(stream.heartbeat);
    if (!this.streams.delete(stream) || this.closing) return;
    const detached = ev.streamEvent('event_stream_detached', stream.remoteAddress, this.ctx.clock().toISOString());
    this.dispatch({ eventType: 'event_stream_detached', data: JSON.stringify(detached) });
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
