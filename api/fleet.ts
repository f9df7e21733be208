/**
 * The api copy's view of the worker fleet: every worker with a status record, live or stale, and
 * every worker gone within `Fleet.GoneRetentionMs` with what it last ran (common/adapters/zookeeper/fleet.ts has the
 * records). Serves `GET /api/workers`, keeps the `bamboo_workers{state}` gauges and removes expired
 * last-seen records.
 *
 * - **stale**: this copy has watched a worker's status record not change for `Fleet.StaleAfterMs`
 *   (workers rewrite it every third of that). Measured on this copy's monotonic clock from the
 *   record's version and mtime, so no two clocks are compared; a copy that just started gives every
 *   worker the benefit of the doubt until it has watched for that long.
 * - **gone**: no status record (the worker's session ended: it stopped, crashed, or lost ZooKeeper
 *   for longer than its session timeout), but a last-seen record younger than the retention, by the
 *   record's ZooKeeper mtime. Older ones are removed by whichever copy sees them first; removal is
 *   conditional on the version read, so a worker of that name coming back keeps its record.
 *
 * The periodic check (every quarter of `StaleAfterMs`, 250 ms to 15 s) reads the stats only. A
 * failed read (ZooKeeper away) changes nothing and is tried again at the next check.
 */
import type { FleetStore, SeenRecord } from '../common/adapters/zookeeper/fleet.js';
import type { Logger } from '../common/log.js';
import type { Metrics } from '../common/adapters/statsd/metrics.js';
import { monotonicNow } from '../common/pacing.js';
import type { WorkerStatus } from '../common/adapters/zookeeper/registrations.js';
import type { ZkStat } from '../common/adapters/zookeeper/zk-convert.js';

export type WorkerState = 'live' | 'stale' | 'gone';

/** A worker with a status record. */
export interface PresentWorker {
  state: 'live' | 'stale';
  /** When its status record was last written (ms epoch, ZooKeeper's clock). */
  lastSeen: number;
  /** Its status record; null when not read (the periodic check) or not readable. */
  status: WorkerStatus | null;
}

/** A worker whose status record is gone, remembered by its last-seen record. */
export interface GoneWorker {
  name: string;
  state: 'gone';
  /** When its last-seen record was last written (ms epoch, ZooKeeper's clock). */
  lastSeen: number;
  /** `stopped`: it stopped cleanly; `lost`: its session ended without a goodbye (crash, kill, partition). */
  how: 'stopped' | 'lost';
  /** What it last ran; null when the record cannot be read. */
  last: SeenRecord | null;
}

export interface FleetView {
  present: PresentWorker[];
  gone: GoneWorker[];
  counts: Record<WorkerState, number>;
}

export interface FleetOptions {
  staleAfterMs: number;
  goneRetentionMs: number;
  /** Wall clock (ms epoch) for retention; default Date.now. */
  now?: () => number;
  /** Monotonic clock for staleness; default performance.now. */
  monotonicNow?: () => number;
}

export class FleetMonitor {
  /** Per status node: what it was when last seen changing, and when (monotonic). */
  private readonly changes = new Map<string, { key: string; at: number }>();
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  private readonly now: () => number;
  private readonly mono: () => number;

  constructor(
    private readonly store: Pick<FleetStore, 'list' | 'prune'>,
    private readonly opts: FleetOptions,
    private readonly metrics: Pick<Metrics, 'gauge'>,
    private readonly log: Logger,
  ) {
    this.now = opts.now ?? Date.now;
    this.mono = opts.monotonicNow ?? monotonicNow;
  }

  /** How often the periodic check runs. */
  get checkIntervalMs(): number {
    return Math.max(250, Math.min(15000, Math.floor(this.opts.staleAfterMs / 4)));
  }

  /** Starts the periodic check (at once, then every checkIntervalMs). Idempotent. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.check(), this.checkIntervalMs);
    this.timer.unref();
    void this.check();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The fleet with every record (for `GET /api/workers`). Throws ZooKeeper's errors. */
  async read(): Promise<FleetView> {
    return this.classify(await this.store.list(true));
  }

  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      await this.classify(await this.store.list(false));
    } catch (err) {
      this.log.debug({ err }, 'fleet check failed');
    } finally {
      this.checking = false;
    }
  }

  private async classify(listing: Awaited<ReturnType<FleetStore['list']>>): Promise<FleetView> {
    const mono = this.mono();
    const now = this.now();
    const present: PresentWorker[] = [];
    const liveNodes = new Set<string>();
    for (const n of listing.live) {
      liveNodes.add(n.node);
      const at = this.changedAt(n.node, n.stat, mono);
      const state = mono - at > this.opts.staleAfterMs ? 'stale' : 'live';
      present.push({ state, lastSeen: n.stat.mtime, status: n.record });
    }
    for (const node of this.changes.keys()) if (!liveNodes.has(node)) this.changes.delete(node);

    const gone: GoneWorker[] = [];
    for (const n of listing.seen) {
      if (liveNodes.has(n.node)) continue;
      if (now - n.stat.mtime > this.opts.goneRetentionMs) {
        try {
          if (await this.store.prune(n.node, n.stat.version)) this.log.info({ worker: n.name, lastSeen: n.stat.mtime }, 'forgot a gone worker');
        } catch (err) {
          this.log.debug({ err, worker: n.name }, 'could not remove an expired last-seen record');
        }
        continue;
      }
      gone.push({ name: n.name, state: 'gone', lastSeen: n.stat.mtime, how: n.record?.stoppedAt ? 'stopped' : 'lost', last: n.record });
    }
    const counts = {
      live: present.filter((p) => p.state === 'live').length,
      stale: present.filter((p) => p.state === 'stale').length,
      gone: gone.length,
    };
    for (const state of ['live', 'stale', 'gone'] as const) this.metrics.gauge(`fleet.workers.${state}`, counts[state]);
    return { present, gone, counts };
  }

  /** When this copy last saw the node change (its version or mtime), on the monotonic clock. */
  private changedAt(node: string, stat: ZkStat, mono: number): number {
    const key = `${stat.version}:${stat.mtime}`;
    const seen = this.changes.get(node);
    if (seen && seen.key === key) return seen.at;
    this.changes.set(node, { key, at: mono });
    return mono;
  }
}
