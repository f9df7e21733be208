/**
 * The Marathon intake's contracts: what it consumes (Marathon, the snapshot store and cache, the hint
 * sink, its options) and what it reports (each fetch's record, its /status).
 */
import type { Config } from '../common/config.js';
import type { HintKind } from '../common/adapters/zeromq/bus.js';
import type { Logger } from '../common/log.js';
import type { Metrics } from '../common/adapters/statsd/metrics.js';
import type { EventStreamStatus } from '../common/adapters/marathon/event-stream.js';
import type { AppResult, AppsResult, MarathonClient } from '../common/adapters/marathon/marathon.js';
import type { Clock } from '../common/pacing.js';
import type { StoredContent } from '../common/adapters/zookeeper/snapshot.js';
import type { MarathonSnapshot } from '../common/adapters/zookeeper/snapshot-format.js';
import type { DeltaBody, SerialisedApps, SnapshotDelta, ParsedApps } from '../common/core/snapshot-delta.js';
import type { LeaderElection, LeaderStatus } from './leader.js';
import type { ShrinkGuard } from './shrink-guard.js';
import type { HeldAnswer } from './shrink-policy.js';

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
