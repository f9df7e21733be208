/**
 * The api's Marathon intake: events and timers request fetches, paced (at most one in flight and one
 * pending); each fetch is asked, stored and hinted by the modules beside it (docs/api.md, "Marathon intake").
 */
import { callbackUrlFor } from './edge.js';
import { appsNamed, isRoutingEvent, MAX_PARSED_EVENT_BYTES } from './event-apps.js';
import { MarathonEventStream } from '../common/adapters/marathon/event-stream.js';
import { MarathonError } from '../common/adapters/marathon/marathon-errors.js';
import { LatestWins, monotonicClock } from '../common/pacing.js';
import { redactUrl } from '../common/config-redact.js';
import type { FetchOutcome, FetchRecord, IntakeDeps, IntakeStatus } from './intake-contracts.js';
import { AppsFetcher, type Answer } from './intake-fetch.js';
import { FetchRechecks } from './intake-rechecks.js';
import { storeAnswer, type StoreStep } from './intake-store.js';
import { CallbackSubscriptions } from './intake-subscriptions.js';
import { ShrinkGuard } from './shrink-guard.js';
import { memoryGuardStore } from './shrink-guard-store.js';
import type { HeldAnswer } from './shrink-policy.js';

export class MarathonIntake {
  /** Fetch pacing (common/pacing.ts): one in flight, one pending, leading edge, debounce, minimum interval. */
  private readonly pacer: LatestWins;
  private readonly fetcher: AppsFetcher;
  private readonly rechecks: FetchRechecks;
  private readonly step: StoreStep;
  private readonly subscriptions: CallbackSubscriptions;
  private resyncTimer: NodeJS.Timeout | null = null;
  private subscriptionTimer: NodeJS.Timeout | null = null;
  readonly guard: ShrinkGuard;
  private closed = false;
  private started = false;
  private stream: MarathonEventStream | null = null;
  private readonly events = new Map<string, number>();
  private eventsTotal = 0;
  private fetches = 0;
  private failures = 0;
  private lastFetch: FetchRecord | null = null;
  private lastGoodFetchAt: number | null = null;
  readonly callbackUrl: string;
  private readonly onLeader = (leader: boolean) => this.leaderChanged(leader);

  constructor(private readonly deps: IntakeDeps) {
    const o = deps.options ?? {};
    const clock = o.clock ?? monotonicClock;
    this.pacer = new LatestWins({
      debounceMs: deps.cfg.Marathon.FetchDebounceMs,
      minIntervalMs: deps.cfg.Marathon.MinFetchIntervalMs,
      // A request is a leading edge when no fetch started within the minimum interval, and one made
      // during a fetch waits the debounce after that fetch ended (docs/api.md, "Coalescing").
      idleWhen: 'started',
      debounceAfter: 'end',
      clock,
      run: async (_reasons, take) => void (await this.fetchOnce(take)),
      onError: (err) => deps.log.error({ err }, 'marathon fetch failed unexpectedly'),
    });
    this.fetcher = new AppsFetcher(deps.client, deps.cfg, deps.log);
    const retry = { emptyConfirmMs: o.emptyConfirmDelayMs ?? 1000, retryMinMs: o.retryMinMs ?? 1000, retryMaxMs: o.retryMaxMs ?? 30000 };
    this.rechecks = new FetchRechecks(clock, retry, (reason) => this.requestFetch(reason));
    this.callbackUrl = callbackUrlFor(deps.cfg);
    this.subscriptions = new CallbackSubscriptions(deps.client, this.callbackUrl, deps.log, () => this.requestFetch('subscribed'));
    const m = deps.cfg.Marathon;
    this.guard = deps.guard ?? new ShrinkGuard({
      store: memoryGuardStore(),
      policy: { percent: m.ShrinkGuardPercent, minDrop: m.ShrinkGuardMinDrop, holdMs: m.ShrinkGuardHoldMs },
      copy: 'local',
      log: deps.log,
      metrics: deps.metrics,
    });
    const { control, publisher, snapshots, metrics, log } = deps;
    this.step = {
      control, publisher, snapshots, metrics, log,
      guard: this.guard,
      fetcher: this.fetcher,
      rechecks: this.rechecks,
      record: (r) => this.record(r),
      requestFetch: (reason) => this.requestFetch(reason),
    };
  }

  get mode(): 'callback' | 'stream' {
    return this.deps.cfg.Marathon.UseEventStream ? 'stream' : 'callback';
  }

  /** Fetches once now, then keeps the subscription (callback mode) or joins the stream election. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const { cfg, log } = this.deps;
    this.guard.onHeldSeen((held) => this.rechecks.heldSeen(held.appliesAt));
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
    this.rechecks.close();
    this.guard.close();
    for (const t of [this.resyncTimer, this.subscriptionTimer]) if (t) clearInterval(t);
    this.resyncTimer = this.subscriptionTimer = null;
    const fetching = this.pacer.close();
    if (this.deps.election) {
      this.deps.election.off('leader', this.onLeader);
      await this.deps.election.close();
    }
    await this.stream?.stop();
    this.stream = null;
    await fetching;
    if (this.started && this.mode === 'callback') await this.subscriptions.removeIfLast(this.deps.otherCopies);
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
   * Asks for a fetch (of `apps` only when given and few enough, else of the whole list), coalesced
   * with the other requests by the pacer. Never blocks: a fetch started at once runs in the background.
   */
  requestFetch(reason: string, apps?: readonly string[] | null): void {
    if (this.closed) return;
    if (!this.pacer.busy) this.deps.log.debug({ reason, apps }, 'marathon fetch requested');
    this.fetcher.want(apps);
    this.pacer.request(reason);
  }

  /** Waits until no fetch is pending or in flight (tests and the benchmark). */
  idle(): Promise<void> {
    return this.pacer.whenIdle();
  }

  private record(r: Omit<FetchRecord, 'at'>): void {
    if (!r.ok) this.failures++;
    this.lastFetch = { ...r, at: Date.now() };
    if (r.ok) this.lastGoodFetchAt = this.lastFetch.at;
  }

  /**
   * One fetch and, when trustworthy and new, one snapshot write and one hint. Never throws.
   * `take()` marks the requests made until the HTTP request is sent as answered by this fetch.
   */
  private async fetchOnce(take: () => string[]): Promise<FetchOutcome> {
    const { control, metrics, log } = this.deps;
    this.fetches++;
    let before: number;
    try {
      // The version this copy stored last is as good a base as a fresh read, and saves a ZooKeeper
      // round trip on the event path: if another copy stored one since, the conditional write fails
      // and the next fetch reads the version (lastStored is dropped on every conflict or failure).
      if (!control.available) throw new Error('ZooKeeper is not connected');
      const stored = this.fetcher.lastStored;
      before = stored ? stored.version : await control.snapshotVersion();
    } catch (err) {
      // Without ZooKeeper nothing could be stored: do not load Marathon for nothing.
      // Nothing was taken: the requests stay due, and the retry fetches the whole list anyway.
      this.fetcher.wantAll();
      this.record({ ok: false, outcome: 'store_failed', scope: 'full', ms: 0, endpoint: null, apps: null, error: `cannot read the snapshot version: ${(err as Error).message}`, reason: 'zookeeper' });
      metrics.marathonFetch(0, false, 'zookeeper');
      this.rechecks.retryLater();
      return 'store_failed';
    }
    // Requests made until now are answered by this fetch: Marathon handles it after their events.
    const named = this.fetcher.take();
    take();
    const t0 = performance.now();
    let answer: Answer;
    try {
      answer = await this.fetcher.fetch(named, before);
    } catch (err) {
      const ms = performance.now() - t0;
      const e = err as MarathonError;
      const reason = e instanceof MarathonError ? e.reason : 'error';
      this.record({ ok: false, outcome: 'failed', scope: 'full', ms, endpoint: e.endpoint ?? null, apps: null, error: e.message, reason });
      metrics.marathonFetch(ms, false, reason);
      log.warn({ reason, err: e }, 'marathon fetch failed on every endpoint; keeping the previous snapshot');
      this.rechecks.retryLater();
      return 'failed';
    }
    const ms = performance.now() - t0;
    if (this.closed) return 'closed';
    return storeAnswer(this.step, answer, before, ms);
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

  /** Makes sure every endpoint has our callback URL; re-subscribes when Marathon forgot it. */
  checkSubscriptions(): Promise<void> {
    return this.subscriptions.check();
  }

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
      appFetches: this.fetcher.appFetches,
      failures: this.failures,
      events: Object.fromEntries([...this.events.entries()].sort()),
      eventsTotal: this.eventsTotal,
      pending: this.pacer.hasPending,
      inFlight: this.pacer.running,
      suspiciousEmpty: this.guard.held()?.reason === 'empty',
      held: this.guard.held(),
      callbackUrl: this.mode === 'callback' ? this.callbackUrl : null,
      subscriptions: this.mode === 'callback' ? this.subscriptions.status() : [],
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
