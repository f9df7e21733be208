/**
 * The worker's health for schedulers, on its status port: liveness apart from readiness.
 *
 * - `GET /healthz` (liveness): the process and its event loop answer; nothing else is looked at, so a
 *   ZooKeeper outage or a failing HAProxy never gets the worker restarted (restarting would not fix
 *   either, and the HAProxy it runs keeps serving the last good config meanwhile).
 * - `GET /readyz` (readiness): 200 while this worker reaches ZooKeeper (it follows changes) and its
 *   HAProxy serves a config the worker applied or started on, and its last reconcile could write;
 *   503 with the reasons otherwise. Meant for schedulers' rollouts (Marathon readinessChecks).
 *
 * `GET /status` stays the detailed view; its code says whether this host serves (a ZooKeeper outage
 * leaves it 200: the config in force keeps serving, and a load balancer must not drain every edge).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** What readiness reads from the status view (worker/status.ts StatusView). */
export interface ReadinessView {
  /** This host serves a config this worker knows, and the last reconcile could write its files. */
  healthy: boolean;
  zookeeper: string;
  haproxy: { mode: string; running: boolean | null };
  lastOutcome: string;
}

/** The worker's reasons not to be ready (empty: ready); `null`: still starting. */
export function workerNotReady(view: ReadinessView | null): string[] {
  if (view === null) return ['starting'];
  const reasons: string[] = [];
  if (view.zookeeper !== 'connected') reasons.push(`zookeeper ${view.zookeeper}`);
  if (!view.healthy) {
    if (view.haproxy.mode === 'managed' && view.haproxy.running !== true) reasons.push('haproxy not running');
    else if (view.lastOutcome === 'write-failed') reasons.push('the last reconcile could not write its files');
    else reasons.push('haproxy serves no config this worker applied');
  }
  return reasons;
}

/**
 * Answers `/healthz` and `/readyz`; returns false for any other path (the caller goes on). `view`
 * is only called for `/readyz`.
 */
export function serveHealth(path: string, req: IncomingMessage, res: ServerResponse, view: () => ReadinessView | null): boolean {
  const headers = { 'content-type': 'application/json', 'cache-control': 'no-store' };
  if (path === '/healthz') {
    res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : '{"live":true}');
    return true;
  }
  if (path === '/readyz') {
    let reasons: string[];
    try {
      reasons = workerNotReady(view());
    } catch (err) {
      reasons = [`status unavailable: ${(err as Error).message}`];
    }
    const body = reasons.length === 0 ? '{"ready":true}' : JSON.stringify({ ready: false, reasons });
    res.writeHead(reasons.length === 0 ? 200 : 503, headers).end(req.method === 'HEAD' ? undefined : body);
    return true;
  }
  return false;
}
