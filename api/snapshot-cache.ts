/**
 * The api copy's in-memory copy of the Marathon snapshot stored in ZooKeeper, kept fresh by a watch
 * on the snapshot pointer (re-armed each time it fires and after every reconnect), so `/api/state`
 * never calls Marathon and never reads ZooKeeper per request. A copy that wrote the snapshot itself
 * hands it over with `setLocal` and skips the read-back.
 */
import { EventEmitter } from 'node:events';
import { CoalescedRunner } from '../common/coalesce.js';
import type { Logger } from '../common/log.js';
import type { ControlStore } from '../common/adapters/zookeeper/snapshot.js';
import type { MarathonSnapshot } from '../common/adapters/zookeeper/snapshot-format.js';
import { SnapshotLoader } from '../common/adapters/zookeeper/snapshot-read.js';
import type { Zk } from '../common/adapters/zookeeper/zk.js';

export class SnapshotCache extends EventEmitter {
  private snap: MarathonSnapshot | null = null;
  /** Full reads parse only the apps that changed since the last one. */
  private readonly loader: SnapshotLoader;
  private closed = false;
  private readonly reads = new CoalescedRunner(
    async () => {
      await this.readOnce();
      this.lastError = null;
    },
    (err) => {
      this.lastError = err.message;
      this.log.warn({ err: this.lastError }, 'snapshot read failed');
    },
    () => this.closed,
  );
  /** The last read error (for /status), null after a good read. */
  lastError: string | null = null;
  private readonly onWatch = () => this.refresh();
  private readonly onConnected = () => this.refresh();

  constructor(
    private readonly zk: Zk,
    private readonly control: ControlStore,
    private readonly log: Logger,
  ) {
    super();
    this.loader = new SnapshotLoader(control);
  }

  start(): void {
    this.zk.on('connected', this.onConnected);
    if (this.zk.connected) this.refresh();
  }

  close(): void {
    this.closed = true;
    this.zk.off('connected', this.onConnected);
  }

  /** The newest snapshot known to this copy, or null when none was stored yet. */
  current(): MarathonSnapshot | null {
    return this.snap;
  }

  /** The version of current() (-1 when none). */
  get version(): number {
    return this.snap ? this.snap.version : -1;
  }

  /** Takes a snapshot this copy has just stored, unless a newer one is already known. */
  setLocal(snap: MarathonSnapshot): void {
    if (this.snap && this.snap.version >= snap.version) return;
    this.snap = snap;
    this.emit('changed', snap);
  }

  /** Re-reads the pointer (and the chunks when its version moved). Coalesces concurrent calls. */
  refresh(): Promise<void> {
    return this.reads.run();
  }

  private async readOnce(): Promise<void> {
    if (!this.zk.connected) return;
    const node = await this.zk.get(this.control.snapshotPath, this.onWatch);
    if (!node) {
      // No snapshot yet: watch for its creation (a get on a missing node sets no watch).
      const st = await this.zk.exists(this.control.snapshotPath, this.onWatch);
      if (st) this.reads.again();
      return;
    }
    if (this.snap && this.snap.version >= node.stat.version) return;
    const snap = await this.loader.read();
    if (!snap) return;
    if (!this.snap || snap.version > this.snap.version) {
      this.snap = snap;
      this.log.debug({ snapshotVersion: snap.version, apps: snap.apps.length }, 'snapshot loaded');
      this.emit('changed', snap);
    }
  }
}
