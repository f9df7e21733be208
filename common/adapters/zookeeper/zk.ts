/**
 * ZooKeeper adapter: a small promise API over node-zookeeper-client that survives connection loss and
 * session expiry without a restart. Its errors: zk-errors.ts; the paths and Bamboo's node names:
 * zk-paths.ts; the library's stats and ACLs in its terms: zk-convert.ts.
 *
 * - Every operation has a timeout and fails fast with ZkUnavailableError while disconnected, so a lost
 *   ensemble turns into clear 503s, never into requests that hang forever.
 * - On session expiry a new session is opened, digest auth re-added, every ephemeral node registered
 *   through `ephemeral()` recreated, and `reconnected` listeners called (they re-arm watches).
 */
import { EventEmitter } from 'node:events';
import zookeeper from 'node-zookeeper-client';
import type { Logger } from '../../log.js';
import { monotonicNow } from '../../pacing.js';
import { EphemeralNodes } from './zk-ephemerals.js';
import { mapError, ZkNoNodeError, ZkUnavailableError } from './zk-errors.js';
import { aclsFor, aclStrings, toStat, type ZkAcl, type ZkStat } from './zk-convert.js';

const { Exception, CreateMode } = zookeeper;

export interface ZkOptions {
  connectionString: string;
  sessionTimeoutMs?: number;
  /** Per-operation timeout (default 5000 ms). */
  opTimeoutMs?: number;
  /** `user:password` for digest auth: added to the session, and new nodes are created with a digest ACL. */
  digest?: string;
  log: Logger;
}

/** One write of a `multi` transaction (nodes are created persistent, with this session's ACL). */
export type ZkWrite =
  | { op: 'create'; path: string; data: Buffer; /** ZooKeeper appends a 10-digit sequence number to the name. */ sequential?: boolean }
  | { op: 'set'; path: string; data: Buffer; version?: number }
  | { op: 'remove'; path: string; version?: number }
  | { op: 'check'; path: string; version: number };

type Client = ReturnType<typeof zookeeper.createClient>;

export type ZkState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export class Zk extends EventEmitter {
  private client: Client | null = null;
  private stateValue: ZkState = 'connecting';
  private readonly ephemeralNodes: EphemeralNodes = new EphemeralNodes(this);
  private readonly acls: ZkAcl[];
  private readonly opTimeoutMs: number;
  private connectedOnce = false;
  private closing = false;

  constructor(private readonly opts: ZkOptions) {
    super();
    this.opTimeoutMs = opts.opTimeoutMs ?? 5000;
    this.acls = aclsFor(opts.digest);
  }

  get state(): ZkState {
    return this.stateValue;
  }

  /** close() was called: nothing is retried any more. */
  get isClosing(): boolean {
    return this.closing;
  }

  get log(): Logger {
    return this.opts.log;
  }

  get connected(): boolean {
    return this.stateValue === 'connected';
  }

  /**
   * Opens the session. Resolves when connected or after waitMs (default 10 s) either way: a process
   * must be able to start (and report itself degraded) while ZooKeeper is away.
   */
  async start(waitMs = 10000): Promise<boolean> {
    this.openSession();
    if (this.connected) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.off('connected', onConnected);
        resolve(false);
      }, waitMs);
      const onConnected = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.once('connected', onConnected);
    });
  }

  private openSession(): void {
    const client = zookeeper.createClient(this.opts.connectionString, {
      sessionTimeout: this.opts.sessionTimeoutMs ?? 10000,
      spinDelay: 250,
      // No retries inside the library: it resends a request whose connection broke, and a write that
      // had reached ZooKeeper before the break is then applied twice (a set without version), or fails
      // as if someone else had written (a conditional set, a create, a remove). A broken connection
      // surfaces as ZkUnavailableError instead, and the caller decides.
      retries: 0,
    });
    this.client = client;
    if (this.opts.digest) client.addAuthInfo('digest', Buffer.from(this.opts.digest));
    client.on('state', (state: { name: string }) => {
      if (this.client !== client || this.closing) return;
      this.lastStateAt = monotonicNow();
      switch (state.name) {
        case 'SYNC_CONNECTED':
        case 'CONNECTED_READ_ONLY': {
          this.disarmWatchdog();
          const first = !this.connectedOnce;
          this.connectedOnce = true;
          this.stateValue = 'connected';
          this.opts.log.info({ zk: this.opts.connectionString }, 'zookeeper connected');
          this.emit('connected');
          if (!first) this.emit('reconnected');
          void this.ephemeralNodes.recreate();
          break;
        }
        case 'DISCONNECTED':
          if (this.stateValue === 'connected') {
            this.opts.log.warn('zookeeper disconnected');
            this.emit('disconnected');
          }
          this.stateValue = 'disconnected';
          this.armWatchdog(client);
          break;
        case 'EXPIRED':
          this.opts.log.warn('zookeeper session expired, opening a new session');
          this.renewSession(client);
          break;
        case 'AUTH_FAILED':
          this.opts.log.error('zookeeper authentication failed');
          break;
        default:
          break;
      }
    });
    // Each connection attempt shows as a state change of the library's connection manager (the client
    // itself reports only transitions): the reconnection watchdog's sign of progress.
    const manager = (client as unknown as { connectionManager?: EventEmitter }).connectionManager;
    manager?.on?.('state', () => {
      if (this.client === client) this.lastStateAt = monotonicNow();
    });
    this.lastStateAt = monotonicNow();
    client.connect();
    // A client that has not connected yet can stall too: its first attempt reaches a server that
    // accepts the connection and never answers (a ZooKeeper still starting, a half-open path) and the
    // library has no timer to end it, reporting no state at all. Watched from the start, as after a
    // disconnection, so a process that started without ZooKeeper never waits on it forever.
    this.armWatchdog(client);
  }

  private watchdog: NodeJS.Timeout | null = null;

  /** When the current client last reported a state change (each failed connection attempt does). */
  private lastStateAt = 0;

  /**
   * The library reconnects by itself: while ZooKeeper is down every attempt fails and reports a state
   * change, at least once per connect timeout. But an attempt can stall with no timer left to end it
   * (seen after a ZooKeeper restart: the client sat silent and disconnected for a minute with the
   * server serving again). A disconnected client that reported nothing for twice the session timeout
   * (at least 5 s) is given up for a new session, exactly as after an expiry, so recovery never needs
   * a restart; a long outage with attempts still failing keeps its session (it may resume). Armed
   * when a session is opened too (a client that never connected stalls the same way) and on a
   * disconnection; it disarms itself once connected.
   */
  private armWatchdog(client: Client): void {
    if (this.watchdog || this.closing) return;
    const stallMs = Math.max(5000, 2 * (this.opts.sessionTimeoutMs ?? 10000));
    this.watchdog = setInterval(() => {
      if (this.client !== client || this.closing || this.connected) return this.disarmWatchdog();
      const silentMs = monotonicNow() - this.lastStateAt;
      if (silentMs < stallMs) return;
      this.opts.log.warn({ silentMs }, 'zookeeper reconnection stalled, opening a new session');
      this.renewSession(client);
    }, Math.min(1000, stallMs / 4));
    this.watchdog.unref();
  }

  private disarmWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
  }

  /** Drops `client`'s session (expired or stuck) and opens a new one; listeners re-arm on 'expired'. */
  private renewSession(client: Client): void {
    const wasConnected = this.stateValue === 'connected';
    this.stateValue = 'disconnected';
    this.disarmWatchdog();
    if (wasConnected) this.emit('disconnected');
    this.emit('expired');
    this.client = null;
    client.close();
    // A stalled attempt may never see its socket close: end it so the old client is gone for good.
    (client as unknown as { connectionManager?: { socket?: { destroy?: () => void } } }).connectionManager?.socket?.destroy?.();
    setTimeout(() => {
      if (!this.closing) this.openSession();
    }, 100);
  }

  /** Closes the session (ephemeral nodes go at once). Idempotent. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.stateValue = 'closed';
    this.disarmWatchdog();
    this.ephemeralNodes.stop();
    const client = this.client;
    this.client = null;
    if (!client) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 1000);
      client.once('disconnected', () => {
        clearTimeout(t);
        resolve();
      });
      client.close();
    });
  }

  /** Runs one client call with the fail-fast and timeout rules. */
  private op<T>(path: string, fn: (client: Client, cb: (err: unknown, value?: T) => void) => void): Promise<T> {
    const client = this.client;
    if (!client || this.stateValue !== 'connected') {
      return Promise.reject(new ZkUnavailableError(`ZooKeeper unavailable (${this.stateValue})`));
    }
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        reject(new ZkUnavailableError(`ZooKeeper operation on ${path} timed out after ${this.opTimeoutMs} ms`, true));
      }, this.opTimeoutMs);
      fn(client, (err, value) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(mapError(err, path));
        else resolve(value as T);
      });
    });
  }

  /**
   * Data and stat of a node, or null when it does not exist. Watchers (here, in exists and children)
   * are passed through as given, so registering the same function again arms it only once.
   */
  async get(path: string, watcher?: () => void): Promise<{ data: Buffer; stat: ZkStat } | null> {
    try {
      return await this.op(path, (c, cb) =>
        c.getData(path, watcher ? (watcher as never) : (undefined as never), (err, data, stat) =>
          err ? cb(err) : cb(null, { data: data ?? Buffer.alloc(0), stat: toStat(stat as never) }),
        ),
      );
    } catch (err) {
      if (err instanceof ZkNoNodeError) return null;
      throw err;
    }
  }

  /** Stat of a node, or null. With a watcher, it fires once when the node is created, changed or removed. */
  async exists(path: string, watcher?: () => void): Promise<ZkStat | null> {
    return this.op(path, (c, cb) =>
      c.exists(path, watcher ? (watcher as never) : (undefined as never), (err, stat) => (err ? cb(err) : cb(null, stat ? toStat(stat as never) : null))),
    );
  }

  /** Child names; [] when the node does not exist. */
  async children(path: string, watcher?: () => void): Promise<string[]> {
    try {
      return await this.op(path, (c, cb) =>
        c.getChildren(path, watcher ? (watcher as never) : (undefined as never), (err, children) => cb(err, children ?? [])),
      );
    } catch (err) {
      if (err instanceof ZkNoNodeError) return [];
      throw err;
    }
  }

  /** The ACL every node is created with, as `scheme:id:permissions` entries (sorted). */
  get ownAcl(): string[] {
    return aclStrings(this.acls);
  }

  /** A node's ACL as `scheme:id:permissions` entries (sorted) and its ACL version, or null when it does not exist. */
  async acl(path: string): Promise<{ acl: string[]; aversion: number } | null> {
    try {
      return await this.op(path, (c, cb) =>
        c.getACL(path, (err, acls, stat) => (err ? cb(err) : cb(null, { acl: aclStrings(acls ?? []), aversion: (stat as { aversion: number }).aversion }))),
      );
    } catch (err) {
      if (err instanceof ZkNoNodeError) return null;
      throw err;
    }
  }

  /**
   * Gives a node the ACL this session creates nodes with (`aversion`: its ACL version, -1 any). Needs
   * ADMIN permission on it: throws ZooKeeper's NO_AUTH (see isNoAuth) otherwise, ZkNoNodeError when it
   * is gone.
   */
  async setOwnAcl(path: string, aversion = -1): Promise<void> {
    await this.op<void>(path, (c, cb) => c.setACL(path, this.acls, aversion, (err) => cb(err)));
  }

  /** Creates a node; throws ZkNodeExistsError when it exists. Parent nodes must exist. */
  async create(path: string, data: Buffer, mode: 'persistent' | 'ephemeral' | 'ephemeral_sequential' = 'persistent'): Promise<string> {
    const m = mode === 'persistent' ? CreateMode.PERSISTENT : mode === 'ephemeral' ? CreateMode.EPHEMERAL : CreateMode.EPHEMERAL_SEQUENTIAL;
    return this.op(path, (c, cb) => c.create(path, data, this.acls, m, (err, p) => cb(err, p)));
  }

  /** Sets data if the node's version equals `version` (-1: any). Returns the new version. */
  async set(path: string, data: Buffer, version = -1): Promise<number> {
    return this.op(path, (c, cb) => c.setData(path, data, version, (err, stat) => cb(err, stat ? (stat as { version: number }).version : 0)));
  }

  /** Removes a node if its version equals `version` (-1: any). */
  async remove(path: string, version = -1): Promise<void> {
    await this.op<void>(path, (c, cb) => c.remove(path, version, (err) => cb(err)));
  }

  /**
   * Runs several writes as one atomic ZooKeeper transaction (one round trip): all apply or none. A
   * failing op throws the same error its single form would (ZkNoNodeError, ZkNodeExistsError,
   * ZkBadVersionError) naming its path. Returns, per op, the node's new version for `set` (else 0).
   */
  async multi(ops: readonly ZkWrite[]): Promise<number[]> {
    const label = ops.map((o) => o.path).join(', ');
    return this.op(label, (c, cb) => {
      let tx = c.transaction();
      for (const o of ops) {
        if (o.op === 'create') tx = tx.create(o.path, o.data, this.acls, o.sequential ? CreateMode.PERSISTENT_SEQUENTIAL : CreateMode.PERSISTENT);
        else if (o.op === 'set') tx = tx.setData(o.path, o.data, o.version ?? -1);
        else if (o.op === 'remove') tx = tx.remove(o.path, o.version ?? -1);
        else tx = tx.check(o.path, o.version);
        // node-zookeeper-client's Transaction turns version 0 into -1 ("any": `version || -1`), which
        // would make a write conditional on version 0 unconditional: put the version back as given.
        if (o.op !== 'create') {
          const queued = (tx as unknown as { ops: Array<{ version?: number }> }).ops;
          const last = queued[queued.length - 1];
          if (!last || last.version === undefined) throw new Error('unexpected ZooKeeper transaction layout');
          last.version = o.version ?? -1;
        }
      }
      tx.commit((err, results) => {
        if (err) {
          const list = (results ?? []) as Array<{ err?: number }>;
          const i = list.findIndex((r) => r.err !== undefined && r.err !== 0 && r.err !== Exception.RUNTIME_INCONSISTENCY);
          return cb(mapError(err, ops[i >= 0 ? i : 0]?.path ?? label));
        }
        cb(null, ((results ?? []) as Array<{ stat?: { version: number } }>).map((r) => r.stat?.version ?? 0));
      });
    });
  }

  /** Creates the path and its parents (persistent, empty) when missing. */
  async mkdirp(path: string): Promise<void> {
    await this.op<void>(path, (c, cb) => c.mkdirp(path, Buffer.alloc(0), this.acls, CreateMode.PERSISTENT, (err) => cb(err)));
  }

  /**
   * Keeps an ephemeral node at `path` with the data `data()` gives, recreated on every new session
   * (zk-ephemerals.ts) until dropEphemeral.
   */
  async ephemeral(path: string, data: () => Buffer): Promise<void> {
    await this.ephemeralNodes.register(path, data);
  }

  /** Rewrites a registered ephemeral node with its current data (recreating it if it is missing). */
  async updateEphemeral(path: string): Promise<void> {
    await this.ephemeralNodes.update(path);
  }

  async dropEphemeral(path: string): Promise<void> {
    await this.ephemeralNodes.drop(path);
  }
}
