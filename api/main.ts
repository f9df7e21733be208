/**
 * `bamboo api`: wires the real adapters (ZooKeeper, Marathon, ZeroMQ, StatsD) into one api copy and
 * listens. Starts even while ZooKeeper is down (GET /status answers 503 until it is back; everything
 * recovers by itself). `close()` is idempotent and undoes everything in order: stop taking requests,
 * stop the intake (leave the stream election; unsubscribe the Marathon callback if no other copy
 * runs), unregister, close the publisher, close ZooKeeper.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { HintPublisher } from '../common/adapters/zeromq/bus.js';
import type { Config } from '../common/config.js';
import { credentials, curveKeyList, marathonEndpoints } from '../common/config-views.js';
import type { Logger } from '../common/log.js';
import { startMemoryLog } from '../common/memory-log.js';
import { MarathonClient } from '../common/adapters/marathon/marathon.js';
import { createMetrics, type Metrics } from '../common/adapters/statsd/metrics.js';
import { RuleStore } from '../common/adapters/zookeeper/rules.js';
import { ControlStore } from '../common/adapters/zookeeper/snapshot.js';
import type { PublisherRecord } from '../common/adapters/zookeeper/registrations.js';
import { Zk } from '../common/adapters/zookeeper/zk.js';
import { observeZk } from '../common/adapters/zookeeper/zk-metrics.js';
import { buildApp } from './app.js';
import { FleetMonitor } from './fleet.js';
import { FleetStore } from '../common/adapters/zookeeper/fleet.js';
import { checkExposure, isLoopbackHost } from './edge.js';
import { MarathonIntake } from './intake.js';
import type { IntakeOptions } from './intake-contracts.js';
import { LeaderElection } from './leader.js';
import { RuleChecker } from './rule-check.js';
import { RulesCache } from './rules-cache.js';
import { ShrinkGuard } from './shrink-guard.js';
import { zkGuardStore } from './shrink-guard-store.js';
import { SnapshotCache } from './snapshot-cache.js';
import { AclGuard } from './zk-acl.js';
import { AuditLog } from './audit.js';

export interface RunApiOptions {
  /** HTTP listen address: `:8000` (all interfaces), `127.0.0.1:0` (a free port), `host:port`. */
  bind: string;
  /** Injected metrics (default: from the StatsD config). */
  metrics?: Metrics;
  /** Tuning of the intake's internal delays (tests). */
  intake?: IntakeOptions;
  /** How long startup waits for ZooKeeper before serving anyway (default 3 s). */
  zkWaitMs?: number;
  /** This copy's id (default `<hostname>-<pid>-<random>`). */
  id?: string;
  /** Wall clock for stamps (audit entries, template data's grace periods); default Date.now (tests). */
  now?: () => number;
}

export interface RunningApi {
  /** Base URL of this copy, e.g. `http://127.0.0.1:41234`. */
  url: string;
  app: FastifyInstance;
  id: string;
  zk: Zk;
  intake: MarathonIntake;
  publisher: HintPublisher;
  /** Secures Bamboo's nodes with the digest ACL (api/zk-acl.ts); run on start. */
  acls: AclGuard;
  registration: PublisherRecord;
  close(): Promise<void>;
}

/** `:8000` -> all interfaces; `host:port`; `[::1]:8000`. */
export function parseBind(bind: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(bind.trim());
  if (!m) throw new Error(`bind address must be host:port or :port, got ${JSON.stringify(bind)}`);
  const host = m[1] ?? (m[2] || '0.0.0.0');
  return { host, port: Number(m[3]) };
}

function isWildcard(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1');
  return h === '0.0.0.0' || h === '::' || h === '*' || h === '';
}

/** The ZeroMQ address workers should connect to: the bound one with a reachable host. */
export function advertisedZmq(bound: string, advertiseHost: string): string {
  const m = /^(tcp:\/\/)(\[[^\]]+\]|[^:]+)(:\d+)$/.exec(bound);
  if (!m) return bound;
  const host = advertiseHost || (isWildcard(m[2]) ? hostname() : m[2]);
  return `${m[1]}${host}${m[3]}`;
}

export async function runApi(cfg: Readonly<Config>, log: Logger, opts: RunApiOptions): Promise<RunningApi> {
  const id = opts.id ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const { host, port } = parseBind(opts.bind);
  // Before anything starts: an api open to the network without credentials is a config error.
  checkExposure(cfg, host, opts.bind);
  if (credentials(cfg).length === 0 && !isLoopbackHost(host)) {
    log.warn({ bind: opts.bind }, 'anonymous rule writes are allowed (Bamboo.AllowAnonymousWrites): anyone who reaches this api can change routing');
  }
  const ownMetrics = !opts.metrics;
  const metrics = opts.metrics ?? createMetrics(cfg, log, 'api');

  const zk = new Zk({
    connectionString: cfg.Bamboo.Zookeeper.Host,
    sessionTimeoutMs: cfg.Bamboo.Zookeeper.SessionTimeoutMs,
    digest: cfg.Bamboo.Zookeeper.Digest || undefined,
    log: log.child({ component: 'zookeeper' }),
  });
  const unobserveZk = observeZk(zk, metrics);
  const connected = await zk.start(opts.zkWaitMs ?? 3000);
  if (!connected) log.warn({ zk: cfg.Bamboo.Zookeeper.Host }, 'zookeeper not reachable yet; serving 503 on /status until it is');

  const rules = new RuleStore(zk, cfg.Bamboo.Zookeeper.Path);
  const control = new ControlStore(zk, cfg.Bamboo.Zookeeper.ControlPath);
  const acls = new AclGuard(zk, { rules: rules.basePath, control: control.root }, Boolean(cfg.Bamboo.Zookeeper.Digest), log.child({ component: 'zk-acl' }), metrics);
  // With a digest, nodes an older Bamboo created world-writable get the digest ACL (once per process).
  const ensureBase = () =>
    void rules
      .ensureBase()
      .catch((err: Error) => log.warn({ err }, 'cannot create the rules path'))
      .then(() => (acls.done ? undefined : acls.run()));
  zk.on('connected', ensureBase);
  if (zk.connected) ensureBase();

  const z = cfg.ZeroMQ;
  const curve = z.CurveSecretKey ? { publicKey: z.CurvePublicKey, secretKey: z.CurveSecretKey, clientKeys: curveKeyList(z.CurveClientKeys) } : undefined;
  const publisher = new HintPublisher(id, log.child({ component: 'publisher' }), undefined, curve);
  try {
    await publisher.start(cfg.ZeroMQ.PublishBind);
  } catch (err) {
    await zk.close();
    throw new Error(`cannot bind ZeroMQ.PublishBind ${cfg.ZeroMQ.PublishBind}: ${(err as Error).message}`);
  }

  const snapshots = new SnapshotCache(zk, control, log.child({ component: 'snapshot' }));
  snapshots.on('changed', (s: { version: number }) => {
    if (s.version > publisher.snapshotVersion) publisher.snapshotVersion = s.version;
    metrics.snapshotVersion(publisher.snapshotVersion);
  });
  snapshots.start();
  const rulesCache = new RulesCache(zk, rules, log);

  const client = new MarathonClient({
    endpoints: marathonEndpoints(cfg),
    user: cfg.Marathon.User || undefined,
    password: cfg.Marathon.Password || undefined,
    timeoutMs: cfg.Marathon.TimeoutMs,
    log: log.child({ component: 'marathon' }),
  });
  const election = cfg.Marathon.UseEventStream
    ? new LeaderElection(zk, control.leaderPath, id, log.child({ component: 'election' }), cfg.Bamboo.Zookeeper.SessionTimeoutMs)
    : undefined;
  // The shrink guard's record is shared by every copy (any copy can fetch, hold, or take a confirm).
  const guard = new ShrinkGuard({
    store: zkGuardStore(zk, control.paths.shrinkGuard),
    policy: { percent: cfg.Marathon.ShrinkGuardPercent, minDrop: cfg.Marathon.ShrinkGuardMinDrop, holdMs: cfg.Marathon.ShrinkGuardHoldMs },
    copy: id,
    log: log.child({ component: 'shrink-guard' }),
    metrics,
    subscribe: (refresh) => {
      zk.on('connected', refresh);
      return () => zk.off('connected', refresh);
    },
  });
  const intake = new MarathonIntake({
    cfg,
    client,
    control,
    publisher,
    snapshots,
    metrics,
    log: log.child({ component: 'intake' }),
    election,
    otherCopies: async () => (await control.publishers()).filter((p) => p.id !== id).length,
    guard,
    options: opts.intake,
  });

  // Says at start-up (one warning line) when HAProxy cannot be run to check rules.
  const ruleCheck = new RuleChecker({ mode: cfg.Bamboo.RuleCheck, binary: cfg.HAProxy.Binary, timeoutMs: cfg.Bamboo.RuleCheckTimeoutMs, log: log.child({ component: 'rule-check' }) });
  await ruleCheck.start();

  // The fleet view: workers by state (metrics), and last-seen records past the retention removed.
  const fleet = new FleetMonitor(new FleetStore(zk, control.paths), { staleAfterMs: cfg.Fleet.StaleAfterMs, goneRetentionMs: cfg.Fleet.GoneRetentionMs }, metrics, log.child({ component: 'fleet' }));

  let registration: PublisherRecord | null = null;
  const audit = new AuditLog(zk, control.root, { maxEntries: cfg.Audit.MaxEntries, maxAgeMs: cfg.Audit.MaxAgeHours * 3600000, now: opts.now, log: log.child({ component: 'audit' }) });
  audit.start();
  const app = buildApp({ cfg, log, zk, rules, control, snapshots, intake, publisher, metrics, rulesCache, ruleCheck, fleet, audit, now: opts.now, registration: () => registration, acls: () => acls.status() });
  try {
    await app.listen({ host, port });
  } catch (err) {
    await publisher.close();
    await zk.close();
    throw new Error(`cannot listen on ${opts.bind}: ${(err as Error).message}`);
  }
  const addr = app.server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const httpHost = isWildcard(host) ? cfg.ZeroMQ.AdvertiseHost || hostname() : host.includes(':') ? `[${host}]` : host;
  const url = `http://${httpHost}:${actualPort}`;

  registration = {
    id,
    zmq: advertisedZmq(publisher.boundAddress, cfg.ZeroMQ.AdvertiseHost),
    http: url,
    host: hostname(),
    startedAt: Date.now(),
    ...(publisher.curvePublicKey ? { curve: publisher.curvePublicKey } : {}),
  };
  const regPath = control.paths.publisher(id);
  const reg = registration;
  await zk.ephemeral(regPath, () => Buffer.from(JSON.stringify(reg)));
  intake.start();
  fleet.start();
  log.info({ url, zmq: registration.zmq, id, mode: intake.mode }, 'api listening');
  const stopMemoryLog = startMemoryLog(log);

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      stopMemoryLog?.();
      await app.close().catch((err: Error) => log.warn({ err }, 'http close failed'));
      fleet.close();
      await intake.close().catch((err: Error) => log.warn({ err }, 'intake close failed'));
      snapshots.close();
      await zk.dropEphemeral(regPath).catch(() => undefined);
      await publisher.close().catch(() => undefined);
      zk.off('connected', ensureBase);
      await zk.close();
      unobserveZk();
      if (ownMetrics) await metrics.close().catch(() => undefined);
      log.info({ id }, 'api stopped');
    })();
    return closing;
  };

  return { url, app, id, zk, intake, publisher, acls, registration, close };
}
