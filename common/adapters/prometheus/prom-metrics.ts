/**
 * The Prometheus sink behind the `Metrics` domain methods: one prom-client registry per process,
 * served as text exposition on `GET /metrics` (api and worker). Families, labels and their StatsD
 * equivalents are listed in docs/metrics.md.
 *
 * Labels stay low-cardinality on purpose: no app id, task or URL ever becomes a label. Every label
 * value comes from a set the code bounds (outcome kinds, reason classes, stages, Marathon's event
 * types, route patterns, configured credential names); anything outside such a set is `other`.
 * Recording never throws: a metric must not affect routing.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One finished reconcile as the metrics see it (the worker builds it from its ApplyOutcome). */
export interface ReconcileRecord {
  outcome: string;
  /** A bounded class of the outcome's free-text reason (worker/outcome-class.ts). */
  reasonClass: string;
  ms: number;
  /** Time spent per stage (ms). */
  stages: Record<string, number | undefined>;
  /** `runtime` outcomes: servers changed and drained through the Runtime API. */
  servers?: { changed: number; drained: number };
  /** This reconcile tried the Runtime API and fell back to a reload. */
  runtimeFallback?: boolean;
  /** The snapshot version in force after it (absent: unknown). */
  snapshotVersion?: number;
}

/** Marathon's documented event types; any other `eventType` is counted as `other`. */
export const MARATHON_EVENT_TYPES: ReadonlySet<string> = new Set([
  'api_post_event',
  'status_update_event',
  'framework_message_event',
  'subscribe_event',
  'unsubscribe_event',
  'event_stream_attached',
  'event_stream_detached',
  'add_health_check_event',
  'remove_health_check_event',
  'failed_health_check_event',
  'health_status_changed_event',
  'unhealthy_task_kill_event',
  'unhealthy_instance_kill_event',
  'group_change_success',
  'group_change_failed',
  'deployment_success',
  'deployment_failed',
  'deployment_info',
  'deployment_step_success',
  'deployment_step_failure',
  'app_terminated_event',
  'instance_changed_event',
  'instance_health_changed_event',
  'unknown_instance_terminated_event',
  'pod_created_event',
  'pod_updated_event',
  'pod_deleted_event',
  'scheduler_registered_event',
  'scheduler_reregistered_event',
  'scheduler_disconnected_event',
]);

/** Seconds: reconciles and reloads run from milliseconds (noop) to tens of seconds (big reloads). */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** HTTP requests and Marathon fetches. */
const REQUEST_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** A label value from a code-bounded set, made safe: anything odd or long becomes `other`. */
function bounded(v: string, allowed?: ReadonlySet<string>): string {
  if (allowed) return allowed.has(v) ? v : 'other';
  return /^[A-Za-z0-9_.:/*-]{1,64}$/.test(v) ? v : 'other';
}

/** Implements common/adapters/statsd/metrics.ts's `Metrics` (structurally: that module imports this one). */
export class PromMetrics {
  readonly registry = new Registry();
  private readonly reconciles: Counter<'outcome' | 'reason'>;
  private readonly reconcileSeconds: Histogram<'outcome'>;
  private readonly stageSeconds: Histogram<'stage'>;
  private readonly runtimeServers: Counter<'action'>;
  private readonly routingConflicts: Gauge;
  private readonly labelsIgnored: Gauge;
  private readonly runtimeFallbacks: Counter;
  private readonly reloads: Counter;
  private readonly reloadSeconds: Histogram;
  private readonly reloadFailures: Counter;
  private readonly reloadDeferrals: Counter<'reason'>;
  private readonly reloadWaitSeconds: Histogram<'reason'>;
  private readonly quarantine: Gauge;
  private readonly oldGenerations: Gauge;
  private readonly aclUnsecured: Gauge;
  private readonly tlsCertificates: Gauge;
  private readonly held: Gauge;
  private readonly heldEnded: Counter<'how'>;
  private readonly fetches: Counter<'result'>;
  private readonly fetchSeconds: Histogram<'result'>;
  private readonly streamFailures: Counter<'reason'>;
  private readonly events: Counter<'type'>;
  private readonly hintsPublished: Counter<'kind'>;
  private readonly received: Counter<'kind'>;
  private readonly gaps: Counter;
  private readonly zkConnected: Gauge;
  private readonly zkExpiries: Counter;
  private readonly ruleWrites: Counter<'credential' | 'action'>;
  private readonly apiErrors: Counter<'code'>;
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpSeconds: Histogram<'method' | 'route'>;
  private readonly snapshot: Gauge;
  private readonly workers: Gauge<'state'>;
  private readonly defaults: boolean;

  /**
   * `role` (`api` | `worker`) is a constant label of `bamboo_info`, so dashboards can tell the
   * processes apart without relying on scrape job names. `defaults`: prom-client's process and
   * Node.js metrics, unprefixed (`process_*`, `nodejs_*`) as every Node.js dashboard expects.
   */
  constructor(role: string, opts: { defaults?: boolean } = {}) {
    const r = [this.registry];
    this.defaults = opts.defaults !== false;
    new Gauge({ name: 'bamboo_info', help: 'Always 1; `role` says which Bamboo process this is (api or worker).', labelNames: ['role'], registers: r }).set({ role }, 1);
    this.reconciles = new Counter({ name: 'bamboo_reconcile_total', help: 'Reconciles finished, by outcome and reason class.', labelNames: ['outcome', 'reason'], registers: r });
    this.reconcileSeconds = new Histogram({ name: 'bamboo_reconcile_duration_seconds', help: 'Duration of one reconcile, trigger to outcome, by outcome.', labelNames: ['outcome'], buckets: DURATION_BUCKETS, registers: r });
    this.stageSeconds = new Histogram({ name: 'bamboo_reconcile_stage_duration_seconds', help: 'Time spent in each stage of a reconcile (read, build, render, validate, wait, install, reload, cleanup, runtime).', labelNames: ['stage'], buckets: DURATION_BUCKETS, registers: r });
    this.runtimeServers = new Counter({ name: 'bamboo_runtime_servers_total', help: 'Servers changed through the HAProxy Runtime API (action: changed | drained).', labelNames: ['action'], registers: r });
    this.runtimeFallbacks = new Counter({ name: 'bamboo_runtime_fallbacks_total', help: 'Runtime API changes that failed or did not verify and fell back to a reload.', registers: r });
    this.reloads = new Counter({ name: 'bamboo_haproxy_reloads_total', help: 'HAProxy reloads that succeeded.', registers: r });
    this.reloadSeconds = new Histogram({ name: 'bamboo_haproxy_reload_duration_seconds', help: 'Duration of a successful HAProxy reload.', buckets: DURATION_BUCKETS, registers: r });
    this.reloadFailures = new Counter({ name: 'bamboo_haproxy_reload_failures_total', help: 'HAProxy reloads that failed.', registers: r });
    this.reloadDeferrals = new Counter({ name: 'bamboo_haproxy_reload_deferrals_total', help: 'Reloads held back by a bound (reason: interval | retry | rate | generations).', labelNames: ['reason'], registers: r });
    this.reloadWaitSeconds = new Histogram({ name: 'bamboo_haproxy_reload_wait_seconds', help: 'How long a deferred reload waited, by reason.', labelNames: ['reason'], buckets: DURATION_BUCKETS, registers: r });
    this.quarantine = new Gauge({ name: 'bamboo_quarantined_apps', help: 'Apps left out of the config in force (quarantined).', registers: r });
    this.routingConflicts = new Gauge({ name: 'bamboo_routing_conflicts', help: 'Host claims (labels or rule Config) lost to another app in the config in force (docs/labels.md).', registers: r });
    this.labelsIgnored = new Gauge({ name: 'bamboo_routing_labels_ignored', help: 'Routing labels and rule Config keys left out (invalid, or a host outside the allowed domains) in the config in force.', registers: r });
    this.oldGenerations = new Gauge({ name: 'bamboo_haproxy_old_generations', help: 'Old HAProxy generations still running (last count).', registers: r });
    this.aclUnsecured = new Gauge({ name: 'bamboo_zookeeper_acl_unsecured_nodes', help: 'Bamboo ZooKeeper nodes found without the digest ACL (last check).', registers: r });
    this.tlsCertificates = new Gauge({ name: 'bamboo_tls_certificates', help: 'Certificates of the HTTPS listener: served, expired (served all the same), refused (last certificate pass).', labelNames: ['state'], registers: r });
    this.held = new Gauge({ name: 'bamboo_marathon_answer_held', help: '1 while a shrunken Marathon answer is held back by the shrink guard.', registers: r });
    this.heldEnded = new Counter({ name: 'bamboo_marathon_held_answers_ended_total', help: 'Held Marathon answers that ended (how: recovered | expired | confirmed).', labelNames: ['how'], registers: r });
    this.fetches = new Counter({ name: 'bamboo_marathon_fetches_total', help: 'Marathon fetches by result (ok, or the failure reason).', labelNames: ['result'], registers: r });
    this.fetchSeconds = new Histogram({ name: 'bamboo_marathon_fetch_duration_seconds', help: 'Duration of a Marathon fetch (result: ok | failed).', labelNames: ['result'], buckets: REQUEST_BUCKETS, registers: r });
    this.streamFailures = new Counter({ name: 'bamboo_marathon_stream_failures_total', help: 'Marathon event stream failures or ends (the stream is reopened).', labelNames: ['reason'], registers: r });
    this.events = new Counter({ name: 'bamboo_marathon_events_total', help: 'Marathon events received (callback or stream), by Marathon event type; unknown types as `other`.', labelNames: ['type'], registers: r });
    this.hintsPublished = new Counter({ name: 'bamboo_hints_published_total', help: 'Hints published to the workers, by kind.', labelNames: ['kind'], registers: r });
    this.received = new Counter({ name: 'bamboo_hints_received_total', help: 'Hints received from api copies, by kind.', labelNames: ['kind'], registers: r });
    this.gaps = new Counter({ name: 'bamboo_hint_gaps_total', help: 'Gaps detected in a publisher\'s hint sequence (each triggers a full reconcile).', registers: r });
    this.zkConnected = new Gauge({ name: 'bamboo_zookeeper_connected', help: '1 while the ZooKeeper session is connected, 0 otherwise.', registers: r });
    this.zkExpiries = new Counter({ name: 'bamboo_zookeeper_session_expiries_total', help: 'ZooKeeper sessions that expired (a new session is opened).', registers: r });
    this.ruleWrites = new Counter({ name: 'bamboo_rule_writes_total', help: 'Rule writes and deletes acknowledged, by credential name (`anonymous` without one) and action.', labelNames: ['credential', 'action'], registers: r });
    this.apiErrors = new Counter({ name: 'bamboo_api_errors_total', help: 'API requests answered with a coded error, by code.', labelNames: ['code'], registers: r });
    this.httpRequests = new Counter({ name: 'bamboo_http_requests_total', help: 'HTTP requests answered, by method, route pattern and status code.', labelNames: ['method', 'route', 'status'], registers: r });
    this.httpSeconds = new Histogram({ name: 'bamboo_http_request_duration_seconds', help: 'HTTP request duration by method and route pattern.', labelNames: ['method', 'route'], buckets: REQUEST_BUCKETS, registers: r });
    this.snapshot = new Gauge({ name: 'bamboo_snapshot_version', help: 'Marathon snapshot version: the newest published (api) or the one in force (worker); -1 unknown.', registers: r });
    this.workers = new Gauge({ name: 'bamboo_workers', help: 'Workers by state as this api copy sees them: live, stale (no report within Fleet.StaleAfterMs), gone (stopped within Fleet.GoneRetentionMs).', labelNames: ['state'], registers: r });
    this.zkConnected.set(0);
    this.quarantine.set(0);
    this.held.set(0);
    this.snapshot.set(-1);
  }

  marathonEvent(type: string): void {
    this.events.inc({ type: bounded(type, MARATHON_EVENT_TYPES) });
  }
  marathonFetch(ms: number, ok: boolean, reason?: string): void {
    this.fetches.inc({ result: ok ? 'ok' : bounded(reason ?? 'failed') });
    this.fetchSeconds.observe({ result: ok ? 'ok' : 'failed' }, ms / 1000);
  }
  marathonStreamFailed(reason: string): void {
    this.streamFailures.inc({ reason: bounded(reason) });
  }
  answerHeld(held: boolean): void {
    this.held.set(held ? 1 : 0);
  }
  heldAnswerEnded(how: string): void {
    this.heldEnded.inc({ how: bounded(how) });
  }
  published(kind: string): void {
    this.hintsPublished.inc({ kind: bounded(kind) });
  }
  hintReceived(kind: string, gap: boolean): void {
    this.received.inc({ kind: bounded(kind) });
    if (gap) this.gaps.inc();
  }
  apiError(code: string): void {
    this.apiErrors.inc({ code: bounded(code) });
  }
  ruleChanged(credential?: string, action?: string): void {
    this.ruleWrites.inc({ credential: bounded(credential ?? 'anonymous'), action: bounded(action ?? 'other') });
  }
  /** Counted by `reconciled`, which also knows the reason class and stages. */
  reconcile(): void {}
  reconciled(o: ReconcileRecord): void {
    this.reconciles.inc({ outcome: bounded(o.outcome), reason: bounded(o.reasonClass) });
    this.reconcileSeconds.observe({ outcome: bounded(o.outcome) }, o.ms / 1000);
    for (const [stage, ms] of Object.entries(o.stages)) {
      if (typeof ms === 'number') this.stageSeconds.observe({ stage: bounded(stage) }, ms / 1000);
    }
    if (o.servers) {
      this.runtimeServers.inc({ action: 'changed' }, o.servers.changed);
      this.runtimeServers.inc({ action: 'drained' }, o.servers.drained);
    }
    if (o.runtimeFallback) this.runtimeFallbacks.inc();
    if (o.snapshotVersion !== undefined) this.snapshot.set(o.snapshotVersion);
  }
  reloadDone(ms: number): void {
    this.reloads.inc();
    this.reloadSeconds.observe(ms / 1000);
  }
  reloadFailed(): void {
    this.reloadFailures.inc();
  }
  reloadDeferred(reason: string, ms: number): void {
    this.reloadDeferrals.inc({ reason: bounded(reason) });
    this.reloadWaitSeconds.observe({ reason: bounded(reason) }, ms / 1000);
  }
  quarantined(count: number): void {
    this.quarantine.set(count);
  }
  routing(conflicts: number, ignored: number): void {
    this.routingConflicts.set(conflicts);
    this.labelsIgnored.set(ignored);
  }
  zookeeperConnected(connected: boolean): void {
    this.zkConnected.set(connected ? 1 : 0);
  }
  zookeeperSessionExpired(): void {
    this.zkExpiries.inc();
  }
  snapshotVersion(version: number): void {
    this.snapshot.set(version);
  }
  httpRequest(method: string, route: string, status: number, seconds: number): void {
    const m = bounded(method, HTTP_METHODS);
    this.httpRequests.inc({ method: m, route: bounded(route), status: String(status) });
    this.httpSeconds.observe({ method: m, route: bounded(route) }, seconds);
  }
  /** The generic gauges Bamboo sends to StatsD that have a Prometheus family; others are StatsD only. */
  gauge(name: string, value: number): void {
    if (name === 'haproxy.old_generations') this.oldGenerations.set(value);
    else if (name === 'zookeeper.acl.unsecured') this.aclUnsecured.set(value);
    else if (FLEET_GAUGES.has(name)) this.workers.set({ state: name.slice('fleet.workers.'.length) }, value);
    else if (name === 'tls.certificates.served' || name === 'tls.certificates.expired' || name === 'tls.certificates.refused') this.tlsCertificates.set({ state: name.slice(17) }, value);
  }
  async exposition(): Promise<{ contentType: string; text: string }> {
    const own = await this.registry.metrics();
    return { contentType: this.registry.contentType, text: this.defaults ? own + (await processRegistry().metrics()) : own };
  }
  async close(): Promise<void> {
    this.registry.clear();
  }
}

let shared: Registry | null = null;

/**
 * prom-client's default metrics describe the process, not one api or worker inside it: collected
 * once per process (their collectors cannot be stopped) into a registry every exposition appends.
 */
function processRegistry(): Registry {
  if (!shared) {
    shared = new Registry();
    collectDefaultMetrics({ register: shared });
  }
  return shared;
}

/** The fleet gauges of an api copy (api/fleet.ts): `bamboo_workers{state}`. */
const FLEET_GAUGES: ReadonlySet<string> = new Set(['fleet.workers.live', 'fleet.workers.stale', 'fleet.workers.gone']);

const HTTP_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
