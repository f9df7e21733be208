/** `GET /status`: this api copy's view of ZooKeeper, Marathon, the publisher, auth and HAProxy's rule check. */
import type { FastifyInstance } from 'fastify';
import type { HintPublisher } from '../../common/adapters/zeromq/bus.js';
import type { Config } from '../../common/config.js';
import type { PublisherRecord } from '../../common/adapters/zookeeper/registrations.js';
import type { Zk } from '../../common/adapters/zookeeper/zk.js';
import { redactCallbackUrl, type Authenticator, type WriteLimiter } from '../edge.js';
import type { IntakeStatus } from '../intake-contracts.js';
import type { RuleChecker } from '../rule-check.js';
import type { SnapshotCache } from '../snapshot-cache.js';
import type { AclStatus } from '../zk-acl.js';

export interface StatusDeps {
  bamboo: Pick<Config['Bamboo'], 'AllowAnonymousWrites' | 'CallbackSecret' | 'WriteRateBurst' | 'WriteRatePerMinute'>;
  zk: Pick<Zk, 'connected' | 'state'>;
  intake: { status(): IntakeStatus };
  snapshots: Pick<SnapshotCache, 'current'>;
  publisher: Pick<HintPublisher, 'publisherId' | 'boundAddress' | 'published' | 'snapshotVersion'>;
  ruleCheck: Pick<RuleChecker, 'status'>;
  auth: Pick<Authenticator, 'count' | 'enabled'>;
  limiter: Pick<WriteLimiter, 'enabled'>;
  registration?: () => PublisherRecord | null;
  acls?: () => AclStatus;
}

export async function statusRoutes(app: FastifyInstance, deps: StatusDeps): Promise<void> {
  const { bamboo, zk, intake, snapshots, publisher, ruleCheck, auth, limiter, registration, acls } = deps;
  app.get('/status', async (_req, reply) => {
    const m = intake.status();
    const zkUp = zk.connected;
    const snap = snapshots.current();
    const marathonOk = m.lastFetch ? m.lastFetch.ok : false;
    const haproxy = ruleCheck.status();
    const body = {
      // Rule writes are refused while HAProxy cannot check them: degraded, not down.
      status: !zkUp ? 'unavailable' : marathonOk && snap && haproxy.available !== false ? 'ok' : 'degraded',
      zookeeper: { connected: zkUp, state: zk.state },
      zookeeperAcl: acls?.() ?? null,
      marathon: {
        mode: m.mode,
        lastFetch: m.lastFetch,
        lastGoodFetchAt: m.lastGoodFetchAt,
        fetches: m.fetches,
        appFetches: m.appFetches,
        failures: m.failures,
        suspiciousEmpty: m.suspiciousEmpty,
        held: m.held,
        eventsTotal: m.eventsTotal,
        events: m.events,
        callbackUrl: redactCallbackUrl(m.callbackUrl),
        subscriptions: m.subscriptions,
      },
      snapshot: snap ? { version: snap.version, hash: snap.hash, fetchedAt: snap.fetchedAt, apps: snap.apps.length } : null,
      publisher: {
        id: publisher.publisherId,
        address: registration?.()?.zmq ?? publisher.boundAddress,
        bound: publisher.boundAddress,
        published: publisher.published,
        snapshotVersion: publisher.snapshotVersion,
      },
      auth: {
        credentials: auth.count,
        anonymousWrites: !auth.enabled,
        allowAnonymousWrites: bamboo.AllowAnonymousWrites,
        callbackSecret: bamboo.CallbackSecret !== '',
        writeRate: limiter.enabled ? { burst: bamboo.WriteRateBurst, perMinute: bamboo.WriteRatePerMinute } : null,
      },
      streamLeader: m.stream
        ? { isLeader: m.stream.leader?.isLeader ?? false, leaderId: m.stream.leader?.leaderId ?? null, reading: m.stream.connected, endpoint: m.stream.endpoint, connects: m.stream.connects, events: m.stream.events, lastError: m.stream.lastError }
        : null,
      haproxy,
    };
    return reply.code(zkUp ? 200 : 503).header('Cache-Control', 'no-cache').send(body);
  });
}
