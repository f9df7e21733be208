/**
 * Marathon intake: turns Marathon events into few, safe snapshot updates.
 *
 * Events are hints (level-triggered): an event that can change routing only *requests* a fetch.
 * Requests coalesce: at most one fetch is in flight and at most one is pending, whatever the event rate.
 * A fetch asks for the apps its events named (`GET /v2/apps/{id}`, api/event-apps.ts) when every one of
 * them named at most `Marathon.PerAppFetchMax` apps in all and this copy holds the content stored at the
 * version it read; otherwise (startup, resync, retries, a larger burst, an event naming no app) the
 * whole `/v2/apps`. The named apps replace theirs in the stored content; a 404 for a stored app, or a
 * failed answer, is not trusted: the same fetch reads the whole list instead, which alone may remove
 * apps (through the shrink guard). A per-app answer that differs from the list is healed by the next
 * full fetch (resync, any event naming no app).
 * - Leading edge: a request finding no fetch in flight, and none started within
 *   `Marathon.MinFetchIntervalMs`, starts a fetch at once (an event after a quiet spell costs no wait).
 * - Otherwise the request is pending: one more fetch starts `Marathon.FetchDebounceMs` after the
 *   fetch in flight ended (or after the request, when none is in flight), and never sooner than
 *   `MinFetchIntervalMs` after the previous fetch started; every request until then rides on it.
 * - A fetch covers the requests made before its HTTP request is sent (after the snapshot version is
 *   read): those are cleared then, and any later one makes another fetch. So the last fetch always
 *   starts after the last event, and a burst of 1,000 events costs a handful of fetches.
 *
 * A fetch changes the stored snapshot only when it is trustworthy:
 * - a failed, non-2xx, HTML, unparsable or wrongly shaped answer changes nothing (the previous
 *   snapshot stands; the error is recorded for /status and StatsD; a retry is scheduled with backoff);
 * - an answer that is empty after a non-empty snapshot, or drops more than `Marathon.ShrinkGuardPercent`
 *   of the apps or tasks (a Marathon that lost its state, or a proxy answering for it), is held by the
 *   shrink guard (api/shrink-guard.ts): nothing is stored until Marathon has kept answering so for
 *   `Marathon.ShrinkGuardHoldMs`, or an operator confirms it; a normal answer in between drops it;
 * - the write is conditional on the snapshot version read before the fetch, so data fetched earlier
 *   by a slow copy never replaces newer data stored by a faster one (the loser fetches again).
 * A stored change publishes a `marathon` hint carrying the new snapshot version and, when this copy
 * stored the snapshot it replaced and few apps changed, the changed apps (common/core/snapshot-delta.ts), so
 * a worker holding the previous snapshot needs no ZooKeeper read.
 *
 * Sources of events: Marathon's HTTP callbacks (any copy; `callback` mode keeps this api's callback
 * URL subscribed on every endpoint) or the `/v2/events` stream, read by one copy at a time (the
 * leader elected in ZooKeeper). Every copy also fetches on startup and every `ResyncIntervalMs`.
 */
import type { Config } from '../common/config.js';
import type { HintKind } from '../common/adapters/zeromq/bus.js';
import type { Logger } from '../common/log.js';
import { callbackUrlFor } from './edge.js';
import type { Metrics } from '../common/adapters/statsd/metrics.js';
import { appsNamed, MAX_PARSED_EVENT_BYTES } from './event-apps.js';
import { MarathonEventStream, type EventStreamStatus } from '../common/adapters/marathon/event-stream.js';
import type { AppResult, AppsResult, MarathonClient } from '../common/adapters/marathon/marathon.js';
import { MarathonError } from '../common/adapters/marathon/marathon-errors.js';
import { Backoff, LatestWins, monotonicClock, type Clock, type Timer } from '../common/pacing.js';
import { ControlStore, SnapshotConflictError, type MarathonSnapshot, type StoredContent } from '../common/adapters/zookeeper/snapshot.js';
import { type DeltaBody, type SerialisedApps, type SnapshotDelta, type ParsedApps } from '../common/core/snapshot-delta.js';
import { redactUrl } from '../common/config-redact.js';
import type { LeaderElection, LeaderStatus } from './leader.js';
import { ShrinkGuard } from './shrink-guard.js';
import { memoryGuardStore } from './shrink-guard-store.js';
import { countAnswer, type Decision, type HeldAnswer } from './shrink-policy.js';

/** Marathon event types that can change what HAProxy should route to. */
const ROUTING_EVENTS = new Set([
  'status_update_event',
  'health_status_changed_event',
  'instance_health_changed_event',
  'instance_changed_event',
  'unhealthy_task_kill_event',
  'unhealthy_instance_kill_event',
  'unknown_instance_terminated_event',
  'api_post_event',
  'app_terminated_event',
  'group_change_success',
  'add_health_check_event',
  'remove_health_check_event',
  'event_stream_attached',
]);

/** True for events after which the routing may differ (every `deployment_*` event counts). */
export function isRoutingEvent(type: string): boolean {
  return ROUTING_EVENTS.has(type) || type.startsWith('deployment_');
}

export type FetchOutcome = 'changed' | 'unchanged' | 'failed' | 'held' | 'conflict' | 'store_failed' | 'closed';

export interface FetchRecord {
  ok: boolean;
  outcome: FetchOutcome;
  /** `apps`: the named apps only (GET /v2/apps/{id}); `full`: the whole list. */
  scope: 'apps' | 'full';
  at: number;
  ms: number;
  endpoint: string | null;
  apps: number | null;
  error: string | null;
  reason: string | null;
}

export interface IntakeOptions {
  /** Least delay of the fetch that checks a held answer again (default 1000 ms; see the shrink guard). */
  emptyConfirmDelayMs?: number;
  /** Retry after a failed fetch: first delay and cap (defaults 1 s and 30 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** How often the callback subscription is checked (default ResyncIntervalMs, or 60 s when that is 0). */
  subscriptionCheckMs?: number;
  /** Backoff of the event stream reconnects (defaults 250 ms and 10 s). */
  streamBackoffMinMs?: number;
  streamBackoffMaxMs?: number;
  /** The monotonic clock pacing the fetches and their retries (tests inject a fake one). */
  clock?: Clock;
}

/** What the intake asks of Marathon (common/adapters/marathon/marathon.ts MarathonClient is the real one). */
export interface AppsSource {
  endpoints: string[];
  fetchApps(previous?: ParsedApps | null): Promise<AppsResult>;
  /** GET /v2/apps/{id}; without it every fetch reads the whole list. */
  fetchApp?(id: string): Promise<AppResult>;
  subscriptions(endpoint: string): Promise<string[] | 'unsupported'>;
  subscribe(endpoint: string, callbackUrl: string): Promise<'ok' | 'unsupported'>;
  unsubscribe(endpoint: string, callbackUrl: string): Promise<'ok' | 'unsupported'>;
  openEventStream: MarathonClient['openEventStream'];
}

/** Where the intake stores what Marathon answered (common/adapters/zookeeper/snapshot.ts ControlStore). See its writeSnapshot. */
export interface SnapshotWriter {
  /** Whether ZooKeeper can be asked now. */
  readonly available: boolean;
  snapshotVersion(): Promise<number>;
  writeSnapshot(
    apps: unknown[],
    fetchedAt: number,
    opts: { expectVersion?: number; prune?: boolean; texts?: readonly string[]; deltaFrom?: StoredContent | null },
  ): Promise<{ version: number; changed: boolean; hash: string; serialised?: Pick<SerialisedApps, 'ids' | 'parts'>; delta?: DeltaBody }>;
  pruneChunks(keepHash: string): Promise<void>;
}

/** This copy's view of the stored snapshot (api/snapshot-cache.ts SnapshotCache). */
export interface SnapshotReader {
  /** The version of current() (-1 when none). */
  readonly version: number;
  current(): MarathonSnapshot | null;
  refresh(): Promise<void>;
  /** Takes a snapshot this copy has just stored. */
  setLocal(snap: MarathonSnapshot): void;
}

/** Where hints go (common/adapters/zeromq/bus.ts HintPublisher). */
export interface HintSink {
  /** The snapshot version every hint announces. */
  snapshotVersion: number;
  publish(kind: HintKind, extra?: { delta?: SnapshotDelta }): Promise<void>;
}

export interface IntakeDeps {
  cfg: Pick<Config, 'Marathon' | 'Bamboo'>;
  client: AppsSource;
  control: SnapshotWriter;
  publisher: HintSink;
  snapshots: SnapshotReader;
  metrics: Metrics;
  log: Logger;
  /** Present in stream mode: the election deciding which copy reads the stream. */
  election?: LeaderElection;
  /** Other live api copies (excluding this one), to decide whether to unsubscribe on close. */
  otherCopies?: () => Promise<number>;
  /** The shrink guard (its record shared in ZooKeeper); default: one with its record in memory. */
  guard?: ShrinkGuard;
  options?: IntakeOptions;
}

export type SubscriptionState = 'subscribed' | 'unsupported' | 'error' | 'unknown';

export interface IntakeStatus {
  mode: 'callback' | 'stream';
  lastFetch: FetchRecord | null;
  lastGoodFetchAt: number | null;
  fetches: number;
  /** Fetches of the named apps only (GET /v2/apps/{id}); the others read the whole list. */
  appFetches: number;
  failures: number;
  events: Record<string, number>;
  eventsTotal: number;
  pending: boolean;
  inFlight: boolean;
  /** True while the held answer (below) is an empty app list. */
  suspiciousEmpty: boolean;
  /** The Marathon answer held back by the shrink guard (any copy's), or null. */
  held: HeldAnswer | null;
  callbackUrl: string | null;
  subscriptions: Array<{ endpoint: string; state: SubscriptionState; error: string | null; checkedAt: number | null }>;
  stream: (EventStreamStatus & { leader: LeaderStatus | null }) | null;
}

export class MarathonIntake {
  private readonly emptyConfirmMs: number;
  private readonly clock: Clock;
  /** Fetch pacing (common/pacing.ts): one in flight, one pending, leading edge, debounce, minimum interval. */
  private readonly pacer: LatestWins;
  private readonly retry: Backoff;
  private retryTimer: Timer | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;
  private subscriptionTimer: NodeJS.Timeout | null = null;
  private heldTimer: Timer | null = null;
  /** A fetch at the appliesAt of a held answer seen in ZooKeeper (whichever copy held it). */
  private appliesTimer: Timer | null = null;
  /** Delay of the next check of a held answer: from emptyConfirmDelayMs, doubling to the retry cap. */
  private heldCheckMs: number;
  private readonly retryMaxMs: number;
  readonly guard: ShrinkGuard;
  private closed = false;
  private started = false;
  private stream: MarathonEventStream | null = null;
  private readonly events = new Map<string, number>();
  private eventsTotal = 0;
  private fetches = 0;
  private appFetches = 0;
  private failures = 0;
  /** Apps named by the requests not yet taken by a fetch, unless `fullPending`. */
  private readonly namedPending = new Set<string>();
  /** A request not taken yet wants the whole list. */
  private fullPending = false;
  /** The apps of `lastStored`, in its order (the base a per-app fetch changes). */
  private storedApps: unknown[] | null = null;
  private lastFetch: FetchRecord | null = null;
  private lastGoodFetchAt: number | null = null;
  /** The snapshot this copy last stored (or found stored with the same content), app by app. */
  private lastStored: StoredContent | null = null;
  /**
   * The last answer's apps with their JSON texts: the next fetch parses only apps whose text changed
   * (a cache by content, right whoever stored what since).
   */
  private lastParsed: ParsedApps | null = null;
  private readonly subs = new Map<string, { state: SubscriptionState; error: string | null; checkedAt: number | null; warned: boolean }>();
  readonly callbackUrl: string;
  private readonly onLeader = (leader: boolean) => this.leaderChanged(leader);

  constructor(private readonly deps: IntakeDeps) {
    const o = deps.options ?? {};
    this.emptyConfirmMs = o.emptyConfirmDelayMs ?? 1000;
    this.clock = o.clock ?? monotonicClock;
    this.retry = new Backoff(o.retryMinMs ?? 1000, o.retryMaxMs ?? 30000);
    this.pacer = new LatestWins({
      debounceMs: deps.cfg.Marathon.FetchDebounceMs,
      minIntervalMs: deps.cfg.Marathon.MinFetchIntervalMs,
      // A request is a leading edge when no fetch started within the minimum interval, and one made
      // during a fetch waits the debounce after that fetch ended (see the module comment).
      idleWhen: 'started',
      debounceAfter: 'end',
      clock: this.clock,
      run: async (_reasons, take) => void (await this.fetchOnce(take)),
      onError: (err) => deps.log.error({ err }, 'marathon fetch failed unexpectedly'),
    });
    this.retryMaxMs = o.retryMaxMs ?? 30000;
    this.heldCheckMs = this.emptyConfirmMs;
    this.callbackUrl = callbackUrlFor(deps.cfg);
    for (const e of deps.client.endpoints) this.subs.set(e, { state: 'unknown', error: null, checkedAt: null, warned: false });
    const m = deps.cfg.Marathon;
    this.guard = deps.guard ?? new ShrinkGuard({
      store: memoryGuardStore(),
      policy: { percent: m.ShrinkGuardPercent, minDrop: m.ShrinkGuardMinDrop, holdMs: m.ShrinkGuardHoldMs },
      copy: 'local',
      log: deps.log,
      metrics: deps.metrics,
    });
  }

  get mode(): 'callback' | 'stream' {
    return this.deps.cfg.Marathon.UseEventStream ? 'stream' : 'callback';
  }

  /** Fetches once now, then keeps the subscription (callback mode) or joins the stream election. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const { cfg, log } = this.deps;
    this.guard.onHeldSeen((held) => {
      this.appliesTimer?.cancel();
      // appliesAt is wall-clock time shared by every copy (stored in ZooKeeper): only the delay is taken from it.
      this.appliesTimer = this.closed ? null : this.fetchLater(held.appliesAt - Date.now(), () => (this.appliesTimer = null));
    });
    this.guard.start();
    this.requestFetch('startup');
    if (cfg.Marathon.ResyncIntervalMs > 0) {
      this.resyncTimer = setInterval(() => this.requestFetch('resync'), cfg.Marathon.ResyncIntervalMs);
      this.resyncTimer.unref();
    }
    if (this.mode === 'callback') {
      void this.checkSubscriptions();
      const every = this.deps.options?.subscriptionCheckMs ?? (cfg.Marathon.ResyncIntervalMs || 60000);
      this.subscriptionTimer = setInterval(() => void this.checkSubscriptions(), every);
      this.subscriptionTimer.unref();
    } else {
      const election = this.deps.election;
      if (!election) throw new Error('stream mode needs a leader election');
      election.on('leader', this.onLeader);
      election.start();
      if (election.isLeader) this.leaderChanged(true);
    }
    log.info({ mode: this.mode, endpoints: this.deps.client.endpoints.map(redactUrl) }, 'marathon intake started');
  }

  /**
   * Stops everything: timers, the stream, the election; waits for a fetch in flight; removes the
   * callback subscription when no other api copy is registered (they share Bamboo.Endpoint, and
   * unsubscribing it would silence Marathon for all of them). Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of [this.retryTimer, this.heldTimer, this.appliesTimer]) t?.cancel();
    this.heldTimer = this.appliesTimer = null;
    this.guard.close();
    for (const t of [this.resyncTimer, this.subscriptionTimer]) if (t) clearInterval(t);
    this.retryTimer = this.resyncTimer = this.subscriptionTimer = null;
    const fetching = this.pacer.close();
    if (this.deps.election) {
      this.deps.election.off('leader', this.onLeader);
      await this.deps.election.close();
    }
    await this.stream?.stop();
    this.stream = null;
    await fetching;
    if (this.started && this.mode === 'callback') await this.unsubscribeIfLast();
  }

  /**
   * Counts an event (callback or stream) and requests a fetch when it can change routing: of `apps`
   * when given (the apps the event names, see api/event-apps.ts), none when `apps` is empty (an event
   * whose changes other events name), else of the whole list.
   */
  onEvent(type: string, apps?: readonly string[] | null): void {
    const t = type || 'unknown';
    this.eventsTotal++;
    this.events.set(t, (this.events.get(t) ?? 0) + 1);
    this.deps.metrics.marathonEvent(t);
    if (isRoutingEvent(t) && !(apps && apps.length === 0)) this.requestFetch(t, apps);
  }

  /**
   * Asks for a fetch (of `apps` only when given and few enough, else of the whole list); see the
   * module comment for the coalescing rules. Never blocks: a fetch started at once runs in the background.
   */
  requestFetch(reason: string, apps?: readonly string[] | null): void {
    if (this.closed) return;
    if (!this.pacer.busy) this.deps.log.debug({ reason, apps }, 'marathon fetch requested');
    const max = this.deps.cfg.Marathon.PerAppFetchMax;
    if (!this.fullPending) {
      if (apps && apps.length > 0 && apps.length <= max && this.deps.client.fetchApp) {
        for (const id of apps) this.namedPending.add(id);
        if (this.namedPending.size > max) this.fullPending = true;
      } else this.fullPending = true;
      // The set is kept bounded: once the whole list is due, names no longer matter.
      if (this.fullPending) this.namedPending.clear();
    }
    this.pacer.request(reason);
  }

  /** What the requests so far ask for (the apps named, or null for the whole list), and forgets them. */
  private takePlan(): string[] | null {
    const named = this.fullPending || this.namedPending.size === 0 ? null : [...this.namedPending];
    this.fullPending = false;
    this.namedPending.clear();
    return named;
  }

  /** Waits until no fetch is pending or in flight (tests and the benchmark). */
  idle(): Promise<void> {
    return this.pacer.whenIdle();
  }

  private record(r: Omit<FetchRecord, 'at'>): void {
    this.lastFetch = { ...r, at: Date.now() };
    if (r.ok) this.lastGoodFetchAt = this.lastFetch.at;
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.retry.fail();
    this.retryTimer = this.clock.after(delay, () => {
      this.retryTimer = null;
      this.requestFetch('retry');
    }, { unref: true });
  }

  /**
   * One fetch and, when trustworthy and new, one snapshot write and one hint. Never throws.
   * `take()` marks the requests made until the HTTP request is sent as answered by this fetch.
   */
  private async fetchOnce(take: () => string[]): Promise<FetchOutcome> {
    const { client, control, publisher, snapshots, metrics, log } = this.deps;
    this.fetches++;
    let before: number;
    try {
      // The version this copy stored last is as good a base as a fresh read, and saves a ZooKeeper
      // round trip on the event path: if another copy stored one since, the conditional write fails
      // and the next fetch reads the version (lastStored is dropped on every conflict or failure).
      if (!control.available) throw new Error('ZooKeeper is not connected');
      before = this.lastStored ? this.lastStored.version : await control.snapshotVersion();
    } catch (err) {
      // Without ZooKeeper nothing could be stored: do not load Marathon for nothing.
      this.failures++;
      // Nothing was taken: the requests stay due, and the retry fetches the whole list anyway.
      this.fullPending = true;
      this.namedPending.clear();
      this.record({ ok: false, outcome: 'store_failed', scope: 'full', ms: 0, endpoint: null, apps: null, error: `cannot read the snapshot version: ${(err as Error).message}`, reason: 'zookeeper' });
      metrics.marathonFetch(0, false, 'zookeeper');
      this.scheduleRetry();
      return 'store_failed';
    }
    // Requests made until now are answered by this fetch: Marathon handles it after their events.
    const named = this.takePlan();
    take();
    const t0 = performance.now();
    let apps: unknown[];
    let endpoint: string;
    let texts: string[] | undefined;
    let scope: FetchRecord['scope'] = 'full';
    try {
      // The named apps only when this copy holds exactly the content stored at the version read.
      const some = named && this.lastStored?.version === before ? await this.fetchNamed(named) : null;
      if (some) {
        scope = 'apps';
        this.appFetches++;
        ({ apps, texts, endpoint } = some);
      } else {
        const r = await client.fetchApps(this.lastParsed);
        apps = r.apps;
        endpoint = r.endpoint;
        texts = r.texts;
      }
      this.lastParsed = texts ? { texts, apps } : null;
    } catch (err) {
      const ms = performance.now() - t0;
      const e = err as MarathonError;
      const reason = e instanceof MarathonError ? e.reason : 'error';
      this.failures++;
      this.record({ ok: false, outcome: 'failed', scope, ms, endpoint: e.endpoint ?? null, apps: null, error: e.message, reason });
      metrics.marathonFetch(ms, false, reason);
      log.warn({ reason, err: e }, 'marathon fetch failed on every endpoint; keeping the previous snapshot');
      this.scheduleRetry();
      return 'failed';
    }
    const ms = performance.now() - t0;
    if (this.closed) return 'closed';

    // Compare with what is stored, not with a cache that may not have caught up yet (startup).
    if (before >= 0 && snapshots.version < before) await snapshots.refresh();
    const previous = snapshots.current();
    const counts = countAnswer(apps);
    let decision: Decision;
    try {
      decision = await this.guard.admit(previous ? countAnswer(previous.apps) : null, counts, () => ControlStore.hashApps(apps, texts).hash);
    } catch (err) {
      this.failures++;
      this.record({ ok: false, outcome: 'store_failed', scope, ms, endpoint, apps: apps.length, error: `cannot read the shrink guard record: ${(err as Error).message}`, reason: 'zookeeper' });
      metrics.marathonFetch(ms, false, 'zookeeper');
      this.scheduleRetry();
      return 'store_failed';
    }
    if (decision.action === 'hold') return this.held(decision.held, ms, endpoint, scope);
    this.heldCheckMs = this.emptyConfirmMs;
    metrics.marathonFetch(ms, true);

    const fetchedAt = Date.now();
    let result: { version: number; changed: boolean; hash: string; serialised?: Pick<SerialisedApps, 'ids' | 'parts'>; delta?: DeltaBody };
    try {
      // Old chunks are pruned after the hint is out: workers should not wait for housekeeping.
      // The delta is said only against a snapshot this copy stored itself (its content known exactly);
      // its digest goes into the pointer, where workers confirm a hint's delta before applying it.
      result = await control.writeSnapshot(apps, fetchedAt, { expectVersion: before, prune: false, texts, deltaFrom: this.lastStored });
    } catch (err) {
      this.lastStored = null;
      this.storedApps = null;
      if (err instanceof SnapshotConflictError) {
        // Another copy stored a snapshot while we fetched; ours may be older: fetch again.
        this.record({ ok: true, outcome: 'conflict', scope, ms, endpoint, apps: apps.length, error: null, reason: null });
        log.debug('snapshot written by another copy meanwhile; fetching again');
        this.requestFetch('conflict');
        return 'conflict';
      }
      this.failures++;
      this.record({ ok: false, outcome: 'store_failed', scope, ms, endpoint, apps: apps.length, error: `cannot store the snapshot: ${(err as Error).message}`, reason: 'zookeeper' });
      log.warn({ err }, 'snapshot write failed');
      this.scheduleRetry();
      return 'store_failed';
    }
    this.retry.reset();
    // A retry still waiting for a failure that this fetch has healed would only load Marathon again.
    this.retryTimer?.cancel();
    this.retryTimer = null;
    this.record({ ok: true, outcome: result.changed ? 'changed' : 'unchanged', scope, ms, endpoint, apps: apps.length, error: null, reason: null });
    if (result.version > publisher.snapshotVersion) publisher.snapshotVersion = result.version;
    snapshots.setLocal({ version: result.version, hash: result.hash, fetchedAt, apps });
    // What is stored now is this answer (or one equal to it): a held answer, if any, is over.
    const settled = this.guard.settle(counts, decision);
    this.lastStored = result.serialised
      ? { version: result.version, hash: result.hash, ids: result.serialised.ids, parts: result.serialised.parts }
      : null;
    this.storedApps = this.lastStored ? apps : null;
    if (!result.changed) {
      await settled;
      return 'unchanged';
    }
    const delta: SnapshotDelta | undefined = result.delta ? { ...result.delta, version: result.version, hash: result.hash, fetchedAt } : undefined;
    await publisher.publish('marathon', delta ? { delta } : {});
    metrics.published('marathon');
    log.info({ snapshotVersion: result.version, apps: apps.length, scope, endpoint, ms: Math.round(ms) }, 'snapshot stored');
    await settled;
    try {
      await control.pruneChunks(result.hash);
    } catch (err) {
      // Harmless: the next stored snapshot prunes again.
      log.warn({ err }, 'removing old snapshot chunks failed');
    }
    return 'changed';
  }

  /**
   * The stored content (`lastStored`, `storedApps`) with the named apps as GET /v2/apps/{id} answers
   * them now, or null when this must be a full fetch instead: an answer failed, or an app this copy
   * stored is gone (a 404 is not trusted to remove an app; the full list confirms it). A named app
   * that is neither stored nor known to Marathon changes nothing; a new one goes at the end.
   */
  private async fetchNamed(ids: readonly string[]): Promise<{ apps: unknown[]; texts: string[]; endpoint: string } | null> {
    const stored = this.lastStored;
    const base = this.storedApps;
    const fetchApp = this.deps.client.fetchApp?.bind(this.deps.client);
    if (!stored || !base || !fetchApp || base.length !== stored.parts.length) return null;
    const answers = await Promise.all(ids.map((id) => fetchApp(id).catch((err: unknown) => err as Error)));
    const at = new Map<string, number>();
    for (const id of ids) at.set(id, stored.ids.indexOf(id));
    const apps = base.slice();
    const texts = stored.parts.slice();
    let endpoint = '';
    for (let k = 0; k < ids.length; k++) {
      const a = answers[k];
      if (a instanceof Error) {
        this.deps.log.debug({ appId: ids[k], err: a }, 'marathon app fetch failed; fetching the whole list');
        return null;
      }
      endpoint = a.endpoint;
      const i = at.get(ids[k])!;
      if (!a.found) {
        if (i >= 0) return null;
        continue;
      }
      if (i >= 0) {
        apps[i] = a.app;
        texts[i] = a.text;
      } else {
        apps.push(a.app);
        texts.push(a.text);
      }
    }
    return { apps, texts, endpoint };
  }

  /**
   * An answer the shrink guard holds: counted as a failed fetch (StatsD `marathon.fetch.failed.
   * suspicious_empty` or `.suspicious_shrink`, /status), logged, and checked again by a fetch (and on
   * every event meanwhile): soon at first (a glitch is over in a second: the held answer is dropped),
   * then less and less often, and when it would apply by itself.
   */
  private held(held: HeldAnswer, ms: number, endpoint: string, scope: FetchRecord['scope']): FetchOutcome {
    const { metrics, log } = this.deps;
    const empty = held.reason === 'empty';
    this.failures++;
    metrics.marathonFetch(ms, false, empty ? 'suspicious_empty' : 'suspicious_shrink');
    const what = `${held.before.apps} apps / ${held.before.tasks} tasks -> ${held.after.apps} apps / ${held.after.tasks} tasks`;
    this.record({
      ok: false, outcome: 'held', scope, ms, endpoint, apps: held.after.apps, reason: empty ? 'suspicious_empty' : 'suspicious_shrink',
      error: `Marathon's answer shrinks ${what}; held back (the previous snapshot stays) until ${new Date(held.appliesAt).toISOString()} or an operator confirms it (POST /api/marathon/held/confirm)`,
    });
    const fields = { endpoint, heldId: held.id, before: held.before, after: held.after, since: held.since, appliesAt: held.appliesAt };
    if (empty) log.warn(fields, 'empty app list after a non-empty one; holding it back');
    else log.warn(fields, 'marathon answer shrinks too much; holding it back');
    if (!this.heldTimer && !this.closed) {
      this.heldTimer = this.fetchLater(Math.min(this.heldCheckMs, held.appliesAt - Date.now()), () => (this.heldTimer = null));
      this.heldCheckMs = Math.min(this.heldCheckMs * 2, Math.max(this.retryMaxMs, this.emptyConfirmMs));
    }
    return 'held';
  }

  /** A fetch `ms` from now (at least emptyConfirmDelayMs) that checks a held answer; `fired` runs first. */
  private fetchLater(ms: number, fired: () => void): Timer {
    return this.clock.after(Math.max(this.emptyConfirmMs, ms), () => {
      fired();
      this.requestFetch('held-check');
    }, { unref: true });
  }

  /**
   * An operator's confirm of the held answer `id` (any copy's; see ShrinkGuard.confirm for the
   * errors), then a fetch, which applies it when Marathon still gives it.
   */
  async confirmHeld(id: string): Promise<HeldAnswer> {
    const held = await this.guard.confirm(id);
    this.requestFetch('held-confirmed');
    return held;
  }

  // --- callback mode ------------------------------------------------------------------------

  /** Makes sure every endpoint has our callback URL; re-subscribes when Marathon forgot it. */
  async checkSubscriptions(): Promise<void> {
    const { client, log } = this.deps;
    await Promise.all(
      client.endpoints.map(async (endpoint) => {
        const s = this.subs.get(endpoint)!;
        const where = redactUrl(endpoint);
        try {
          const urls = await client.subscriptions(endpoint);
          let state: SubscriptionState;
          if (urls === 'unsupported') state = 'unsupported';
          else if (urls.includes(this.callbackUrl)) state = 'subscribed';
          else {
            state = (await client.subscribe(endpoint, this.callbackUrl)) === 'ok' ? 'subscribed' : 'unsupported';
            if (state === 'subscribed') {
              log.info({ endpoint: where, callbackUrl: this.callbackUrl }, 'marathon event subscription registered');
              // Events may have been missed while we were not subscribed.
              this.requestFetch('subscribed');
            }
          }
          if (state === 'unsupported' && !s.warned) {
            s.warned = true;
            log.warn(
              { endpoint: where },
              'marathon has no event subscriptions API (removed in Marathon 1.5): set Marathon.UseEventStream=true (MARATHON_USE_EVENT_STREAM=true) to read /v2/events instead',
            );
          }
          Object.assign(s, { state, error: state === 'unsupported' ? 'no /v2/eventSubscriptions (Marathon 1.5+): use Marathon.UseEventStream' : null, checkedAt: Date.now() });
        } catch (err) {
          Object.assign(s, { state: 'error', error: (err as Error).message, checkedAt: Date.now() });
          log.warn({ endpoint: where, err }, 'marathon event subscription check failed');
        }
      }),
    );
  }

  private async unsubscribeIfLast(): Promise<void> {
    const { client, log } = this.deps;
    let others = 0;
    try {
      others = this.deps.otherCopies ? await this.deps.otherCopies() : 0;
    } catch (err) {
      log.warn({ err }, 'cannot tell whether other api copies run; keeping the marathon subscription');
      return;
    }
    if (others > 0) {
      log.info({ others }, 'other api copies still run; keeping the marathon subscription');
      return;
    }
    await Promise.all(
      client.endpoints.map(async (endpoint) => {
        if (this.subs.get(endpoint)?.state !== 'subscribed') return;
        try {
          await client.unsubscribe(endpoint, this.callbackUrl);
          log.info({ endpoint: redactUrl(endpoint) }, 'marathon event subscription removed');
        } catch (err) {
          log.warn({ endpoint: redactUrl(endpoint), err }, 'marathon event subscription removal failed');
        }
      }),
    );
  }

  // --- stream mode --------------------------------------------------------------------------

  private leaderChanged(leader: boolean): void {
    if (this.closed) return;
    if (leader && !this.stream) {
      const { cfg, client, log } = this.deps;
      this.stream = new MarathonEventStream(client, {
        idleTimeoutMs: cfg.Marathon.StreamIdleTimeoutMs,
        backoffMinMs: this.deps.options?.streamBackoffMinMs,
        backoffMaxMs: this.deps.options?.streamBackoffMaxMs,
        log,
        // The type comes from the SSE event: line; a payload is parsed only for the apps it names
        // (never a heavy deployment plan: those fetch the whole list).
        onEvent: (e) => this.onEvent(e.type, isRoutingEvent(e.type) && e.data.length <= MAX_PARSED_EVENT_BYTES ? appsNamed(e.type, e.payload()) : null),
        // Events may have been missed while no stream was open.
        onConnected: () => this.requestFetch('stream-connected'),
        onFailure: (reason) => this.deps.metrics.marathonStreamFailed(reason),
      });
      this.stream.start();
    } else if (!leader && this.stream) {
      const s = this.stream;
      this.stream = null;
      void s.stop();
    }
  }

  status(): IntakeStatus {
    return {
      mode: this.mode,
      lastFetch: this.lastFetch,
      lastGoodFetchAt: this.lastGoodFetchAt,
      fetches: this.fetches,
      appFetches: this.appFetches,
      failures: this.failures,
      events: Object.fromEntries([...this.events.entries()].sort()),
      eventsTotal: this.eventsTotal,
      pending: this.pacer.hasPending,
      inFlight: this.pacer.running,
      suspiciousEmpty: this.guard.held()?.reason === 'empty',
      held: this.guard.held(),
      callbackUrl: this.mode === 'callback' ? this.callbackUrl : null,
      subscriptions:
        this.mode === 'callback'
          ? [...this.subs.entries()].map(([e, s]) => ({ endpoint: redactUrl(e), state: s.state, error: s.error, checkedAt: s.checkedAt }))
          : [],
      stream:
        this.mode === 'stream'
          ? {
              ...(this.stream?.status() ?? { running: false, connected: false, endpoint: null, connects: 0, events: 0, lastEventAt: null, lastError: null }),
              leader: this.deps.election?.status() ?? null,
            }
          : null,
    };
  }
}
