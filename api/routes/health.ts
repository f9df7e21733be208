/**
 * Health for schedulers: liveness apart from readiness, so that losing ZooKeeper never gets every api
 * copy killed and restarted (Marathon health checks, container HEALTHCHECKs), while traffic and
 * rolling deployments still wait for a copy that can do its work.
 *
 * - `GET /healthz` (liveness): the process and its event loop answer. No ZooKeeper, Marathon or HAProxy
 *   call is made, so it stays 200 through any outage of theirs; restart on its failure only.
 * - `GET /readyz` (readiness): 200 while this copy reaches ZooKeeper (it can store rules and serve the
 *   state), 503 with the reasons otherwise; send traffic and continue deployments on it.
 *
 * `GET /status` stays the detailed view (its code follows readiness).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';

/** What readiness looks at. */
export interface HealthDeps {
  zk: { readonly connected: boolean; readonly state: string };
}

/** The api's reasons not to take traffic now (empty: ready). */
export function apiNotReady(d: HealthDeps): string[] {
  return d.zk.connected ? [] : [`zookeeper ${d.zk.state}`];
}

export const healthRoutes: FastifyPluginAsync<HealthDeps> = async (app: FastifyInstance, deps: HealthDeps) => {
  app.get('/healthz', async (_req, reply) => reply.header('Cache-Control', 'no-store').type('application/json; charset=utf-8').send('{"live":true}'));
  app.get('/readyz', async (_req, reply) => {
    const reasons = apiNotReady(deps);
    return reply
      .code(reasons.length === 0 ? 200 : 503)
      .header('Cache-Control', 'no-store')
      .send(reasons.length === 0 ? { ready: true } : { ready: false, reasons });
  });
};
