/**
 * `GET /metrics` (Prometheus text exposition of this api copy's registry) and the HTTP request
 * metrics, as one plugin: `app.register(metricsRoutes, { metrics })`.
 *
 * Requests are counted by route pattern (`/api/services/*`), never by URL, so an id in a path
 * cannot become a label; a request no route matched counts as `unmatched`. `/metrics` is readable
 * without a credential, like `/status`: it carries counts, credential names and route patterns, no
 * rule text, app id or secret.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { ApiError } from '../../common/core/errors.js';
import type { Metrics } from '../../common/adapters/statsd/metrics.js';

export interface MetricsRoutesOptions {
  metrics: Metrics;
}

const plugin: FastifyPluginAsync<MetricsRoutesOptions> = async (app: FastifyInstance, opts) => {
  const { metrics } = opts;
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.httpRequest(req.method, route, reply.statusCode, reply.elapsedTime / 1000);
  });
  app.get('/metrics', async (_req, reply) => {
    const e = await metrics.exposition();
    if (!e) throw new ApiError('BAMBOO_NOT_FOUND', 'this api copy was started without a metrics registry (injected metrics)');
    return reply.header('Cache-Control', 'no-store').type(e.contentType).send(e.text);
  });
};

// Not encapsulated (what fastify-plugin does): the onResponse hook must see every route of the app.
(plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

export const metricsRoutes = plugin;
