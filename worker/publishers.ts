/**
 * Finds every api publisher through ZooKeeper (the ephemeral children of ControlStore.publishersPath)
 * and keeps the hint subscriber connected to exactly those, as api copies come and go.
 *
 * The children are read with a watch; the watch fires once, so each change re-reads (and re-arms).
 * After a reconnect (or a new session, which loses watches) the list is read again. Failures are
 * retried every second while connected; reads never throw out of this class.
 *
 * With trusted CURVE keys (ZeroMQ.CurveServerKeys) a publisher is connected to only over CURVE with the
 * key its registration names, when that key is trusted (or with the only trusted key, for a
 * registration that names none): the handshake then fails against anyone without the secret key.
 * Registrations with an untrusted key are not connected to at all, and logged.
 */
import { CoalescedRunner } from '../common/coalesce.js';
import type { PublisherEndpoint } from '../common/adapters/zeromq/bus.js';
import type { Logger } from '../common/log.js';
import type { ControlStore } from '../common/adapters/zookeeper/snapshot.js';
import type { PublisherRecord } from '../common/adapters/zookeeper/registrations.js';
import type { Zk } from '../common/adapters/zookeeper/zk.js';
import { childPath } from '../common/adapters/zookeeper/zk-paths.js';

export interface PublisherSink {
  /** Connect to exactly these publishers (ZeroMQ addresses, with the CURVE server key to require). */
  setEndpoints(endpoints: Iterable<PublisherEndpoint>): void;
}

export class PublisherDiscovery {
  /**
   * Publishers last seen, by registration znode name (unique; the id inside a record is whatever its
   * writer put there, so two registrations claiming one id are still two publishers).
   */
  readonly known = new Map<string, PublisherRecord>();
  /** Registered publishers not connected to because their CURVE key is not trusted, by id. */
  readonly untrusted = new Set<string>();
  private closed = false;
  /** One read at a time, one more if asked meanwhile. */
  private readonly reads = new CoalescedRunner(
    () => this.read(),
    (err) => this.log.debug({ err }, 'could not read publishers'),
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
    /** Publisher CURVE public keys to trust (ZeroMQ.CurveServerKeys); empty: no CURVE. */
    private readonly trustedKeys: readonly string[] = [],
  ) {}

  /** How to connect to a publisher, or null when its key is not trusted. */
  private endpoint(r: PublisherRecord): PublisherEndpoint | null {
    if (this.trustedKeys.length === 0) {
      if (r.curve && !this.untrusted.has(r.id)) {
        this.log.warn({ id: r.id, address: r.zmq }, 'a publisher requires CURVE: add its key to ZeroMQ.CurveServerKeys to receive its hints');
      }
      return r.zmq;
    }
    const key = typeof r.curve === 'string' && r.curve ? r.curve : this.trustedKeys.length === 1 ? this.trustedKeys[0] : '';
    return key && this.trustedKeys.includes(key) ? { address: r.zmq, serverKey: key } : null;
  }

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
          const node = await this.zk.get(childPath(path, name));
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
      records.forEach((r, i) => {
        if (r) now.set(names[i], r);
      });
      const added = [...now.keys()].filter((id) => !this.known.has(id));
      const removed = [...this.known.keys()].filter((id) => !now.has(id));
      this.known.clear();
      for (const [id, r] of now) this.known.set(id, r);
      const endpoints: PublisherEndpoint[] = [];
      for (const [id, r] of now) {
        const e = this.endpoint(r);
        if (e) {
          endpoints.push(e);
          this.untrusted.delete(id);
        } else if (!this.untrusted.has(id)) {
          this.untrusted.add(id);
          this.log.warn({ id, address: r.zmq }, 'not connecting to a publisher: its registration names no CURVE key in ZeroMQ.CurveServerKeys');
        }
      }
      for (const id of [...this.untrusted]) if (!now.has(id)) this.untrusted.delete(id);
      this.sink.setEndpoints(endpoints);
      if (added.length || removed.length) this.log.info({ added, removed, publishers: now.size }, 'publishers changed');
      if (added.length) this.onNew(added);
    } catch (err) {
      this.log.debug({ err }, 'could not read publishers');
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
