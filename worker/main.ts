/**
 * The worker process: one per HAProxy host. It subscribes to every api copy's hints, reads the
 * desired state from ZooKeeper, and keeps the local HAProxy on the config it renders.
 *
 * Start-up order matters: subscribe (and find the publishers) before the first full read, so no change
 * can fall between the read and the subscription; then generate on start-up, as Bamboo did. If
 * ZooKeeper or every api copy is away, the last good config keeps serving: the worker never renders
 * from missing data, and a managed HAProxy is started on the existing haproxy.cfg.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { dirname, join } from 'node:path';
import { ManagedHAProxy } from '../common/adapters/haproxy/haproxy.js';
import { sha256 } from '../common/core/hash.js';
import { CommandHAProxy, type HAProxyProcess } from '../common/adapters/haproxy/process.js';
import { validateConfig } from '../common/adapters/haproxy/commands.js';
import { parsePortRange } from '../common/core/port-policy.js';
import { RuntimeApi } from '../common/adapters/haproxy/haproxy-runtime.js';
import { EMPTY_SERVER_STATE } from '../common/core/server-state.js';
import { haproxyEnv, hasLimits, onPath, passEnvNames, type ValidationLimits } from '../common/adapters/haproxy/haproxy-sandbox.js';
import type { Config } from '../common/config.js';
import { curveKeyList, haproxySettings, runtimeDir, tlsDir, workerName } from '../common/config-views.js';
import { parseAllowedDomains, parseWorkerGroups } from '../common/core/labels.js';
import type { Logger } from '../common/log.js';
import { startMemoryLog } from '../common/memory-log.js';
import { createMetrics, type Metrics } from '../common/adapters/statsd/metrics.js';
import { observeZk } from '../common/adapters/zookeeper/zk-metrics.js';
import { createRenderer } from '../common/core/render.js';
import { RuleStore } from '../common/adapters/zookeeper/rules.js';
import { ControlStore } from '../common/adapters/zookeeper/snapshot.js';
import { HintSubscriber, type HintEvent } from '../common/adapters/zeromq/bus.js';
import { Zk } from '../common/adapters/zookeeper/zk.js';
import { ZkDesiredState } from './desired.js';
import { observeReconciler } from './metrics-hooks.js';
import { PublisherDiscovery } from './publishers.js';
import { ConfigFiles, removeStaleTemps, restoreLastGood } from './config-files.js';
import { readRulesAtStart } from './last-good.js';
import { FleetReporter } from './fleet-report.js';
import { FleetStore } from '../common/adapters/zookeeper/fleet.js';
import { Reconciler } from './reconciler.js';
import { startStatusServer, statusRecord, statusView, type StatusDeps, type StatusView } from './status.js';
import { CertManager } from './tls-certs.js';

export interface WorkerOptions {
  /** Address of the `/status` endpoint (`:8001`, `127.0.0.1:0`); empty: no HTTP endpoint. */
  bind?: string;
  /** Managed mode: leave HAProxy running when the worker stops (default: stop it). */
  keepHaproxy?: boolean;
  /** Injected metrics (default: StatsD from the config, or none). */
  metrics?: Metrics;
  /** Managed mode: extra HAProxy arguments (default `['-dR']`, no SO_REUSEPORT). */
  haproxyArgs?: string[];
  /** Retry backoff of failed reloads and reads (default 500 ms doubling to 30 s). */
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export interface WorkerHandle {
  readonly reconciler: Reconciler;
  readonly haproxy: HAProxyProcess;
  readonly subscriber: HintSubscriber;
  readonly discovery: PublisherDiscovery;
  /** The port `/status` listens on (0 without `bind`). */
  readonly port: number;
  /** The status record plus health, as `/status` serves it. */
  status(): StatusView;
  /**
   * Stops the worker: no new reconcile starts, the one in flight finishes, the status registration is
   * removed. Command mode leaves HAProxy serving; managed mode stops it unless `keepHaproxy` (here or
   * in the options) is set. Idempotent.
   */
  close(opts?: { keepHaproxy?: boolean }): Promise<void>;
}

/** Paths the managed HAProxy uses, in HAProxy.RuntimeDir (default: next to OutputPath). */
export function managedPaths(cfg: Pick<Config, 'HAProxy'>): { pidFile: string; masterSocket: string } {
  const dir = runtimeDir(cfg);
  return { pidFile: join(dir, 'haproxy.pid'), masterSocket: join(dir, 'haproxy-master.sock') };
}

export async function runWorker(cfg: Readonly<Config>, log: Logger, opts: WorkerOptions = {}): Promise<WorkerHandle> {
  const startedAt = Date.now();
  const name = workerName(cfg as Config);
  const outputPath = cfg.HAProxy.OutputPath;
  const timeoutMs = cfg.HAProxy.CommandTimeoutMs;
  const ownMetrics = !opts.metrics;
  const metrics = opts.metrics ?? createMetrics(cfg, log, 'worker');

  // The template is read once; a broken template is a start-up error, not a runtime surprise.
  const templateText = readFileSync(cfg.HAProxy.TemplatePath, 'utf8');
  const renderer = createRenderer(templateText, { filename: cfg.HAProxy.TemplatePath });

  const managed = cfg.HAProxy.ReloadCommand.trim() === '';
  if (managed || cfg.HAProxy.RuntimeDir.trim()) {
    try {
      mkdirSync(runtimeDir(cfg), { recursive: true, mode: 0o750 });
    } catch (err) {
      throw new Error(`cannot create HAProxy.RuntimeDir ${runtimeDir(cfg)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  // HAProxy and every command around it get PATH and HAProxy.PassEnv only: never this process's
  // environment, which holds its secrets (rules can read HAProxy's environment).
  const hpEnv = haproxyEnv(passEnvNames(cfg.HAProxy.PassEnv));
  const limits: ValidationLimits = { cpuSeconds: cfg.HAProxy.ValidationCpuSeconds, memoryMB: cfg.HAProxy.ValidationMemoryMB };
  if (hasLimits(limits) && !onPath('prlimit', hpEnv)) {
    throw new Error('HAProxy.ValidationCpuSeconds and ValidationMemoryMB need prlimit (util-linux) on PATH; set both to 0 to validate without limits');
  }

  // Bound first: a busy port is a start-up error before anything else is started.
  let view: (() => StatusView) | null = null;
  let server: Server | null = null;
  let port = 0;
  if (opts.bind) {
    const timeouts = { headersMs: cfg.Bamboo.HttpHeadersTimeoutMs, requestMs: cfg.Bamboo.HttpRequestTimeoutMs };
    const s = await startStatusServer(opts.bind, () => (view ? view() : null), timeouts, () => metrics.exposition()).catch(async (err: Error) => {
      if (ownMetrics) await metrics.close();
      throw err;
    });
    server = s.server;
    port = s.port;
  }

  mkdirSync(dirname(outputPath), { recursive: true });
  const stale = await removeStaleTemps(outputPath);
  if (stale) log.info({ removed: stale }, 'removed temp files left by a previous run');
  const settings = haproxySettings(cfg as Config);
  // HAProxy warns when its server-state-file is missing; one that restores nothing is the start.
  if (settings.ServerStateFile && !existsSync(settings.ServerStateFile)) {
    try {
      mkdirSync(dirname(settings.ServerStateFile), { recursive: true });
      writeFileSync(settings.ServerStateFile, EMPTY_SERVER_STATE, { mode: 0o640 });
    } catch (err) {
      log.warn({ err, path: settings.ServerStateFile }, 'cannot create the server state file');
    }
  }

  // The admin socket: managed mode knows it (the default template writes it); command mode uses it
  // only when HAProxy.AdminSocket is set explicitly. Whether it answers is found out per change.
  const adminSocket = managed || cfg.HAProxy.AdminSocket.trim() !== '' ? settings.AdminSocket : '';
  // HTTPS: the certificates HAProxy loads are in place before it starts (worker/tls-certs.ts).
  let tls: CertManager | null = null;
  if (settings.HttpsBind) {
    if (!adminSocket) throw new Error('HAProxy.HttpsBind needs the admin socket to apply certificates: set HAProxy.AdminSocket (command mode)');
    tls = new CertManager({
      certDir: cfg.HAProxy.CertDir,
      tlsDir: tlsDir(cfg),
      crtList: settings.CrtList,
      defaultCert: cfg.HAProxy.DefaultCert,
      adminSocket,
      serial: (fn) => (runtime ? runtime.api.serial(fn) : fn()),
      timeoutMs: Math.min(timeoutMs, 5000),
      rescanMs: cfg.HAProxy.CertRescanMs,
      log: log.child({ component: 'tls' }),
      metrics,
    });
    await tls.prepare().catch(async (err: Error) => {
      server?.closeAllConnections();
      server?.close();
      if (ownMetrics) await metrics.close();
      throw err;
    });
  }

  // HAProxy: Bamboo's reload command, or run it ourselves.
  const haproxy: HAProxyProcess = managed
    ? new ManagedHAProxy({
        binary: cfg.HAProxy.Binary,
        configPath: outputPath,
        ...managedPaths(cfg),
        timeoutMs,
        log: log.child({ component: 'haproxy' }),
        extraArgs: opts.haproxyArgs,
        env: hpEnv,
      })
    : new CommandHAProxy(cfg.HAProxy.ReloadCommand, timeoutMs, log, hpEnv);
  let initial: { hash: string; text: string } | null = null;
  if (managed) {
    // Serve the last config written, even before ZooKeeper answers; if HAProxy refuses it (a worker
    // killed in the middle of a refused reload left the candidate there), the last good one.
    let started = await haproxy.start();
    if (!started.ok && /exited on start/.test(started.reason) && (await restoreLastGood(outputPath))) {
      log.warn({ reason: started.reason }, 'haproxy refused the config on disk; starting on the last good config');
      started = await haproxy.start();
    }
    if (started.ok && !started.adopted) {
      const text = readFileSync(outputPath, 'utf8');
      initial = { hash: sha256(text), text };
    }
    if (!started.ok) log.info({ reason: started.reason }, 'haproxy not started yet');
  }

  const zk = new Zk({
    connectionString: cfg.Bamboo.Zookeeper.Host,
    sessionTimeoutMs: cfg.Bamboo.Zookeeper.SessionTimeoutMs,
    digest: cfg.Bamboo.Zookeeper.Digest || undefined,
    log,
  });
  const unobserveZk = observeZk(zk, metrics);
  const connected = await zk.start(Math.min(5000, cfg.Bamboo.Zookeeper.SessionTimeoutMs));
  if (!connected) log.warn({ zk: cfg.Bamboo.Zookeeper.Host }, 'zookeeper not reachable yet; serving the config in force');
  const control = new ControlStore(zk, cfg.Bamboo.Zookeeper.ControlPath);
  const rules = new RuleStore(zk, cfg.Bamboo.Zookeeper.Path);

  const runtime = adminSocket
    ? { api: new RuntimeApi(adminSocket, Math.min(timeoutMs, 5000)), enabled: cfg.HAProxy.RuntimeApi, drainTimeoutMs: cfg.HAProxy.DrainTimeoutMs }
    : null;

  const groups = parseWorkerGroups(cfg.Worker.Groups);
  const source = new ZkDesiredState(zk, control, rules, cfg.Worker.ResyncIntervalMs || 30000, log, () => reconciler.trigger('watch'));
  const reconciler: Reconciler = new Reconciler({
    outputPath,
    renderer,
    settings,
    runtime,
    serverStateFile: settings.ServerStateFile,
    slotHeadroomPercent: cfg.HAProxy.ServerSlotHeadroom,
    // Dynamic servers need the Runtime API: without it a backend without spare slots reloads to grow.
    dynamicServers: !!runtime?.enabled && cfg.HAProxy.DynamicServers,
    tcpPortRange: parsePortRange(cfg.HAProxy.TcpPortRange) ?? undefined,
    routing: { allowedDomains: parseAllowedDomains(cfg.Labels.AllowedDomains), groups },
    // Command mode does not control the reload: validate first there, and where the operator asks.
    validateBeforeReload: !managed || cfg.HAProxy.ValidateBeforeReload || cfg.HAProxy.ReloadValidationCommand.trim() !== '',
    source,
    haproxy,
    validate: (path) =>
      validateConfig(path, { binary: cfg.HAProxy.Binary, command: cfg.HAProxy.ReloadValidationCommand.trim() || undefined, timeoutMs, env: hpEnv, limits }),
    cleanupCommand: cfg.HAProxy.ReloadCleanupCommand.trim() || undefined,
    commandEnv: hpEnv,
    commandTimeoutMs: timeoutMs,
    debounceMs: cfg.Worker.DebounceMs,
    minUpdateIntervalMs: cfg.Worker.MinUpdateIntervalMs,
    minReloadIntervalMs: cfg.Worker.MinReloadIntervalMs,
    maxReloadsPerMinute: cfg.Worker.MaxReloadsPerMinute,
    maxOldGenerations: cfg.Worker.MaxOldGenerations,
    oldGenerationsWaitMs: cfg.Worker.OldGenerationsWaitMs,
    log,
    metrics,
    initial,
    // Each app's last good rule outlives a restart: the rules in force are kept beside the last good config.
    rulesAtStart: readRulesAtStart(new ConfigFiles(outputPath, log).lastGoodRulesPath, startedAt),
    retryInitialMs: opts.retryInitialMs,
    retryMaxMs: opts.retryMaxMs,
  });
  const unobserveReconciler = observeReconciler(reconciler, metrics);

  // Subscribe first, then read: a change published between the two cannot be missed.
  const onHint = (e: HintEvent) => {
    const h = e.hint;
    metrics.hintReceived(h.kind, e.gap);
    // Before the trigger, so the reconcile it starts can confirm it against ZooKeeper and apply it.
    if (h.kind === 'marathon' && h.delta && typeof h.delta === 'object') source.offerDelta(h.delta);
    reconciler.noteHintedSnapshot(h.snapshotVersion);
    if (e.gap) reconciler.trigger('gap');
    else if (h.kind !== 'heartbeat') reconciler.trigger(`hint:${h.kind}`);
    // A heartbeat only matters when it reveals a snapshot this worker has not read.
    else if (h.snapshotVersion > reconciler.status().lastReadSnapshotVersion) reconciler.trigger('heartbeat');
  };
  const z = cfg.ZeroMQ;
  const subscriber = new HintSubscriber(log, onHint, z.CurveSecretKey ? { publicKey: z.CurvePublicKey, secretKey: z.CurveSecretKey } : undefined);
  subscriber.start();
  const discovery = new PublisherDiscovery(zk, control, subscriber, log, () => reconciler.trigger('publisher'), curveKeyList(z.CurveServerKeys));
  await discovery.start();

  const deps: StatusDeps = {
    name,
    groups,
    mode: haproxy.mode,
    adminSocket: runtime?.enabled ? adminSocket : '',
    startedAt,
    reconciler,
    haproxy,
    zk,
    // Untrusted publishers (CURVE) are not connected to: with none left, /status says "no api publisher".
    publishers: () => [...discovery.known].filter(([name]) => !discovery.untrusted.has(name)).map(([, p]) => p.zmq).sort(),
    snapshots: () => ({ reads: source.snapshotReads, deltas: source.deltasApplied, ignored: source.deltasIgnored }),
    ...(tls ? { tls: () => tls.status() } : {}),
  };
  const statusPath = control.paths.worker(name);
  await zk.ephemeral(statusPath, () => Buffer.from(JSON.stringify(statusRecord(deps))));
  // Heartbeat and the last-seen record the fleet view keeps after this worker stops.
  const fleetReport = new FleetReporter({
    name,
    store: new FleetStore(zk, control.paths),
    heartbeat: () => zk.updateEphemeral(statusPath),
    record: () => statusRecord(deps),
    connected: () => zk.connected,
    staleAfterMs: cfg.Fleet.StaleAfterMs,
    seenWriteIntervalMs: cfg.Fleet.SeenWriteIntervalMs,
    log,
  });
  fleetReport.start();
  reconciler.on('outcome', () => {
    zk.updateEphemeral(statusPath).catch((err: Error) => log.debug({ err }, 'could not update the status record'));
    fleetReport.outcome();
  });

  // A reload loads the crt-list from disk: the next certificate pass checks it against CertDir.
  if (tls) {
    const certs = tls;
    reconciler.on('outcome', (o: { outcome: string }) => {
      if (o.outcome === 'reloaded') certs.trigger();
      const apps = reconciler.running?.data?.Apps;
      if (apps) certs.noteApps(apps);
    });
    certs.start();
  }

  const onConnected = () => reconciler.trigger('reconnect');
  zk.on('connected', onConnected);
  const resync =
    cfg.Worker.ResyncIntervalMs > 0 ? setInterval(() => reconciler.trigger('resync'), cfg.Worker.ResyncIntervalMs) : null;
  resync?.unref();

  view = () => statusView(deps);
  reconciler.trigger('startup');
  log.info({ name, mode: haproxy.mode, outputPath, status: port || null }, 'worker started');
  const stopMemoryLog = startMemoryLog(log);

  let closing: Promise<void> | null = null;
  const close = (closeOpts: { keepHaproxy?: boolean } = {}): Promise<void> => {
    closing ??= (async () => {
      stopMemoryLog?.();
      if (resync) clearInterval(resync);
      await tls?.close();
      zk.off('connected', onConnected);
      discovery.close();
      subscriber.close();
      await reconciler.close();
      if (server) {
        const srv = server;
        srv.closeAllConnections();
        await new Promise<void>((r) => srv.close(() => r()));
      }
      await fleetReport.close();
      await zk.dropEphemeral(statusPath).catch(() => undefined);
      await zk.close();
      unobserveZk();
      unobserveReconciler();
      await haproxy.close({ keep: closeOpts.keepHaproxy ?? opts.keepHaproxy ?? false });
      if (ownMetrics) await metrics.close();
      log.info('worker stopped');
    })();
    return closing;
  };

  return {
    reconciler,
    haproxy,
    subscriber,
    discovery,
    port,
    status: () => statusView(deps),
    close,
  };
}
