/**
 * Finds every api publisher through ZooKeeper (the ephemeral children of ControlStore.publishersPath)
 * and keeps the hint subscriber connected to exactly those, as api copies come and go.
 *
 * The children are read with a watch; the watch fires once, so each change re-reads (and re-arms).
 * After a reconnect (or a new session, which loses watches) the list is read again. Failures are
 * retried every second while connected; reads never throw out of this class.
 */
import { CoalescedRunner } from '../common/coalesce.js';
import type { Logger } from '../common/log.js';
import type { ControlStore, PublisherRecord } from '../common/snapshot.js';
import type { Zk } from '../common/zk.js';

export interface PublisherSink {
  /** Connect to exactly these ZeroMQ addresses. */
  setEndpoints(addresses: Iterable<string>): void;
}

export class PublisherDiscovery {
  /** Publishers last seen, by registration id. */
  readonly known = new Map<string, PublisherRecord>();
  private closed = false;
  /** One read at a time, one more if asked meanwhile. */
  private readonly reads = new CoalescedRunner(
    () => this.read(),
    (err) => this.log.debug({ err: err.message }, 'could not read publishers'),
    () => this.closed,
  );
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly onConnected = () => this.refresh();

  constructor(
    private readonly zk: Zk,
    private readonly control: ControlStore,
    private readonly sink: PublisherSink,
    private readonly log: Logger,
    /** Called with the ids of publishers that appeared (a reason to reconcile). */
    private readonly onNew: (ids: string[]) => void,
  ) {}

  /** Reads the publishers once (resolves even if ZooKeeper is away) and keeps watching. */
  async start(): Promise<void> {
    this.zk.on('connected', this.onConnected);
    await this.reads.run();
  }

  /** Re-reads the list (coalesced: one read at a time, one more if asked meanwhile). */
  refresh(): void {
    void this.reads.run();
  }

  private async read(): Promise<void> {
    try {
      const path = this.control.publishersPath;
      // getChildren cannot watch a missing node: make sure it exists (persistent, empty).
      await this.zk.mkdirp(path);
      const names = await this.zk.children(path, () => this.refresh());
      const records = await Promise.all(
        names.map(async (name) => {
          const node = await this.zk.get(`${path}/${name}`);
          if (!node) return null;
          try {
            const rec = JSON.parse(node.data.toString()) as PublisherRecord;
            return typeof rec.zmq === 'string' && rec.zmq ? { ...rec, id: rec.id || name } : null;
          } catch {
            this.log.warn({ name }, 'ignoring an unreadable publisher registration');
            return null;
          }
        }),
      );
      if (this.closed) return;
      const now = new Map<string, PublisherRecord>();
      for (const r of records) if (r) now.set(r.id, r);
      const added = [...now.keys()].filter((id) => !this.known.has(id));
      const removed = [...this.known.keys()].filter((id) => !now.has(id));
      this.known.clear();
      for (const [id, r] of now) this.known.set(id, r);
      this.sink.setEndpoints([...now.values()].map((r) => r.zmq));
      if (added.length || removed.length) this.log.info({ added, removed, publishers: now.size }, 'publishers changed');
      if (added.length) this.onNew(added);
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'could not read publishers');
      // While disconnected the 'connected' event brings us back; otherwise try again shortly.
      if (this.zk.connected && !this.retryTimer && !this.closed) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.refresh();
        }, 1000);
        this.retryTimer.unref();
      }
    }
  }

  close(): void {
    this.closed = true;
    this.zk.off('connected', this.onConnected);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }
}
