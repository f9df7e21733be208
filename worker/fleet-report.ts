/**
 * What the worker tells the fleet view besides its outcomes (common/adapters/zookeeper/fleet.ts, api/fleet.ts):
 *
 * - a **heartbeat**: its ephemeral status record is rewritten every third of `Fleet.StaleAfterMs`
 *   (at least every 250 ms apart), so the api can tell a worker that stopped reporting (frozen, or
 *   cut off from ZooKeeper while its session lasts) from one with nothing to apply;
 * - its **last-seen record**, persistent: at start, after each config it applies (a new config hash),
 *   at most every `Fleet.SeenWriteIntervalMs` otherwise, and with `stoppedAt` when it stops cleanly,
 *   so a worker that is gone is still shown with what it last ran.
 *
 * Writes are one at a time (a write asked for while one runs is done after it); a failed write
 * (ZooKeeper away) is logged at debug and done again at the next heartbeat. Nothing here throws.
 */
import { seenRecord, type FleetStore } from '../common/adapters/zookeeper/fleet.js';
import type { Logger } from '../common/log.js';
import { monotonicNow } from '../common/pacing.js';
import type { WorkerStatus } from '../common/adapters/zookeeper/registrations.js';

export interface FleetReportDeps {
  name: string;
  store: Pick<FleetStore, 'writeSeen'>;
  /** Rewrites the ephemeral status record (Zk.updateEphemeral on its path). */
  heartbeat: () => Promise<void>;
  /** The status record now. */
  record: () => WorkerStatus;
  /** Whether ZooKeeper can be written now. */
  connected: () => boolean;
  staleAfterMs: number;
  seenWriteIntervalMs: number;
  log: Logger;
}

export class FleetReporter {
  private timer: NodeJS.Timeout | null = null;
  private lastSeenWrite = -Infinity;
  private lastHash: string | null = null;
  private writing: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(private readonly d: FleetReportDeps) {}

  get heartbeatMs(): number {
    return Math.max(250, Math.floor(this.d.staleAfterMs / 3));
  }

  start(): void {
    this.timer = setInterval(() => this.beat(), this.heartbeatMs);
    this.timer.unref();
    this.writeSeen();
  }

  /** After each outcome: a new config in force is remembered at once. */
  outcome(): void {
    if (this.d.record().configHash !== this.lastHash) this.writeSeen();
  }

  private beat(): void {
    if (this.closed || !this.d.connected()) return;
    this.d.heartbeat().catch((err: Error) => this.d.log.debug({ err }, 'could not refresh the status record'));
    if (monotonicNow() - this.lastSeenWrite >= this.d.seenWriteIntervalMs || this.lastHash === null) this.writeSeen();
  }

  private writeSeen(stoppedAt?: number): Promise<void> {
    if (this.writing) {
      this.again = true;
      return this.writing;
    }
    this.writing = (async () => {
      do {
        this.again = false;
        if (!this.d.connected()) return;
        const status = this.d.record();
        try {
          await this.d.store.writeSeen(this.d.name, seenRecord(status, Date.now(), stoppedAt));
          this.lastSeenWrite = monotonicNow();
          this.lastHash = status.configHash;
        } catch (err) {
          this.d.log.debug({ err }, 'could not write the last-seen record');
          return;
        }
      } while (this.again && !this.closed);
    })().finally(() => {
      this.writing = null;
    });
    return this.writing;
  }

  /** Stops the heartbeat and writes the last-seen record with `stoppedAt`. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.writing?.catch(() => undefined);
    await this.writeSeen(Date.now());
  }
}
