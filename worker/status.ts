/**
 * The worker's status: one record, registered in ZooKeeper (ephemeral, `<control>/workers/<name>`)
 * for the fleet view and served as JSON on `GET /status` for health checks.
 *
 * `/status` answers 200 while this host serves a config this worker knows (managed mode: HAProxy
 * running) and its last reconcile could write its files, 503 otherwise; `degraded` lists what is wrong without making it unhealthy (ZooKeeper
 * away, no api publisher, last reconcile not applied). Liveness (`/healthz`) and readiness (`/readyz`)
 * for schedulers are on the same port (worker/health.ts).
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import type { HAProxyProcess, HAProxyState } from '../common/adapters/haproxy/process.js';
import { WORKER_QUARANTINE_DETAILS, type WorkerStatus } from '../common/adapters/zookeeper/registrations.js';
import type { Zk } from '../common/adapters/zookeeper/zk.js';
import { serveHealth } from './health.js';
import type { ApplyOutcome, QuarantinedApp, OutcomeKind, ReconcilerStatus } from './outcome.js';
import type { Reconciler } from './reconciler.js';
import type { TlsStatus } from './tls-status.js';

export interface StatusView extends WorkerStatus {
  healthy: boolean;
  degraded: string[];
  zookeeper: string;
  publishers: string[];
  haproxy: HAProxyState;
  quarantine: QuarantinedApp[];
  reconciles: number;
  outcomes: Record<OutcomeKind, number>;
  /** Stage timings (ms) of the last reconcile, and of the last one that was not a noop. */
  lastStages: ApplyOutcome['stages'];
  lastApplyStages: ApplyOutcome['stages'];
  busy: boolean;
  reloads: ReconcilerStatus['reloads'];
  /**
   * How the Marathon snapshots came in: read whole from ZooKeeper, or applied from a hint's delta that
   * ZooKeeper confirmed; `ignored`: hint deltas not applied (not confirmed by ZooKeeper: forged; or superseded, or a replay).
   */
  snapshots: { reads: number; deltas: number; ignored: number };
  /** The Runtime API: socket (empty: off), fallbacks to a reload, last failure, servers draining. */
  runtime: {
    enabled: boolean;
    socket: string;
    fallbacks: number;
    lastError: { at: number; reason: string } | null;
    draining: number;
    /** Servers added with `add server` (HAProxy.DynamicServers) since the worker started. */
    serversAdded: number;
    /** How the config in force was applied last. */
    lastAppliedVia: 'reload' | 'runtime' | null;
  };
  /** The HTTPS listener's certificates (worker/tls-certs.ts); null when HTTPS is off. Never key material. */
  tls: TlsStatus | null;
}

export interface StatusDeps {
  name: string;
  /** Worker.Groups: the load-balancer groups served ([]: every app). */
  groups?: readonly string[];
  mode: 'managed' | 'command';
  /** The admin socket the Runtime API uses (empty: runtime changes off). */
  adminSocket?: string;
  startedAt: number;
  reconciler: Reconciler;
  haproxy: HAProxyProcess;
  zk: Zk;
  publishers: () => string[];
  /** Snapshot reads and hint deltas applied (ZkDesiredState's counters). */
  snapshots?: () => { reads: number; deltas: number; ignored: number };
  /** The certificates of the HTTPS listener (absent: HTTPS off). */
  tls?: () => TlsStatus;
}

/** The record stored in ZooKeeper (the shared WorkerStatus shape). */
export function statusRecord(d: StatusDeps, r: ReconcilerStatus = d.reconciler.status()): WorkerStatus {
  const { running, last } = r;
  return {
    name: d.name,
    host: hostname(),
    snapshotVersion: running?.snapshotVersion ?? -1,
    configHash: running?.confirmed ? running.hash : '',
    rulesApplied: running?.rulesApplied ?? {},
    lastOutcome: last?.outcome ?? '',
    lastReason: last?.reason ?? '',
    lastOutcomeAt: last?.at ?? 0,
    lastAppliedAt: running?.appliedAt ?? 0,
    quarantined: (running?.quarantined ?? []).map((q) => q.appId),
    // Bounded, so a mass quarantine keeps the record far below ZooKeeper's node size limit.
    quarantine: (running?.quarantined ?? []).slice(0, WORKER_QUARANTINE_DETAILS).map((q) => ({ ...q, error: q.error.slice(0, 300) })),
    startedAt: d.startedAt,
    mode: d.mode,
    groups: [...(d.groups ?? [])],
  };
}

export function statusView(d: StatusDeps): StatusView {
  const r = d.reconciler.status();
  const record = statusRecord(d, r);
  const hp = d.haproxy.state();
  const publishers = d.publishers();
  const degraded: string[] = [];
  if (!d.zk.connected) degraded.push('zookeeper unavailable');
  if (publishers.length === 0) degraded.push('no api publisher (relying on the resync timer)');
  const last = r.last;
  if (last && last.outcome !== 'noop' && last.outcome !== 'reloaded' && last.outcome !== 'runtime') degraded.push(`last reconcile: ${last.outcome}`);
  if (last && last.outcome === 'noop' && last.reason !== 'unchanged') degraded.push(`last reconcile: ${last.reason}`);
  const tls = d.tls?.() ?? null;
  if (tls?.error) degraded.push(`tls: ${tls.error}`);
  if (tls && tls.refused.length > 0) degraded.push(`tls: ${tls.refused.length} certificate file(s) refused`);
  const serving = r.running !== null && (d.mode === 'command' || hp.running === true);
  // A disk that takes no new config (full, read-only) leaves this host behind the fleet: unhealthy
  // until a write succeeds again, though the config in force keeps serving.
  const writable = last?.outcome !== 'write-failed';
  return {
    ...record,
    healthy: serving && writable,
    degraded,
    zookeeper: d.zk.state,
    publishers,
    haproxy: hp,
    quarantine: r.running?.quarantined ?? [],
    reconciles: r.reconciles,
    outcomes: r.counts,
    lastStages: last?.stages ?? {},
    lastApplyStages: r.lastApply?.stages ?? {},
    busy: r.busy,
    reloads: r.reloads,
    snapshots: d.snapshots?.() ?? { reads: 0, deltas: 0, ignored: 0 },
    runtime: {
      enabled: !!d.adminSocket,
      socket: d.adminSocket ?? '',
      ...r.runtime,
      lastAppliedVia: r.running?.via ?? null,
    },
    tls,
  };
}

function serveMetrics(res: ServerResponse, metrics: () => Promise<{ contentType: string; text: string } | null>): void {
  metrics().then(
    (e) => {
      if (!e) res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"no metrics registry"}');
      else res.writeHead(200, { 'content-type': e.contentType, 'cache-control': 'no-store' }).end(e.text);
    },
    (err: Error) => res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err.message })),
  );
}

/** Parses `--bind`: `:8001`, `8001`, `127.0.0.1:8001`, `[::1]:8001`. */
export function parseBind(bind: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*))?:?(\d+)$/.exec(bind.trim());
  if (!m) throw new Error(`--bind must be host:port or :port, got ${JSON.stringify(bind)}`);
  const host = m[1] ?? (m[2] || undefined);
  return { host, port: Number(m[3]) };
}

/**
 * Starts the `/status` endpoint (503 `{"starting":true}` while `view` returns null). Resolves with the
 * server and the port actually bound; rejects when the address cannot be bound. Slow clients are cut
 * after `timeouts` (headers, whole request). `metrics` serves `GET /metrics` (Prometheus text;
 * 404 without it or when it has none).
 */
export async function startStatusServer(
  bind: string,
  view: () => StatusView | null,
  timeouts: { headersMs: number; requestMs: number } = { headersMs: 10000, requestMs: 30000 },
  metrics?: () => Promise<{ contentType: string; text: string } | null>,
): Promise<{ server: Server; port: number; host: string }> {
  const { host, port } = parseBind(bind);
  // A client that sends its request slowly is cut (Bamboo.HttpHeadersTimeoutMs, HttpRequestTimeoutMs),
  // checked every second, so idle half-requests cannot pile up on the worker's port.
  const serverOptions = {
    headersTimeout: Math.min(timeouts.headersMs, timeouts.requestMs),
    requestTimeout: timeouts.requestMs,
    connectionsCheckingInterval: Math.min(1000, timeouts.headersMs),
  };
  const server = createServer(serverOptions, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' }).end('{"error":"method not allowed"}');
      return;
    }
    if (serveHealth(path, req, res, view)) return;
    if (path === '/status' || path === '/health' || path === '/') {
      let body: StatusView | null;
      try {
        body = view();
      } catch (err) {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (err as Error).message }));
        return;
      }
      res.writeHead(body?.healthy ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body ?? { healthy: false, starting: true }));
      return;
    }
    if (path === '/metrics' && metrics) {
      serveMetrics(res, metrics);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
  });
  server.setTimeout(timeouts.requestMs); // a connection silent this long is closed
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : port, host: host ?? '0.0.0.0' };
}
