/**
 * The shared Marathon snapshot and the registrations, in ZooKeeper under `Bamboo.Zookeeper.ControlPath`
 * (paths in common/adapters/zookeeper/zk-paths.ts, layout in docs/ARCHITECTURE.md). The snapshot pointer holds
 * {"hash","fetchedAt","chunks","bytes","delta"?}; the chunks gzip(JSON apps array), split under
 * ZooKeeper's 1 MB node limit.
 *
 * The api that fetched Marathon writes the snapshot (chunks first, then the pointer, in one transaction
 * when there is one chunk; then removes old chunks, which the intake does only after publishing its
 * hint); workers and other api copies read it when hinted. A worker therefore never calls Marathon and Marathon's load does not grow with the
 * number of workers.
 */
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { deltaDigest, diffApps, parseAppsArrayText, serialiseApps, type DeltaBody, type SerialisedApps, type ParsedApps } from '../../core/snapshot-delta.js';
import { ControlPaths, childPath } from './zk-paths.js';
import { Zk } from './zk.js';
import { ZkBadVersionError, ZkNodeExistsError, ZkNoNodeError } from './zk-errors.js';

const CHUNK_BYTES = 900 * 1024;

export interface MarathonSnapshot {
  /** ZooKeeper version of the snapshot pointer: increases with every new snapshot. */
  version: number;
  /** sha256 of the apps JSON: equal hashes mean equal content. */
  hash: string;
  /** When the api fetched it (ms epoch). */
  fetchedAt: number;
  /** The raw `apps` array of Marathon's /v2/apps response. */
  apps: unknown[];
}

interface Pointer {
  hash: string;
  fetchedAt: number;
  chunks: number;
  bytes: number;
  /**
   * deltaDigest of the delta from the snapshot this one replaced, when the writer said one: the only
   * delta a worker applies for this version (a hint's delta is confirmed against it).
   */
  delta?: string;
}

/** The snapshot pointer: what a worker reads on every reconcile (about 200 bytes). */
export interface SnapshotPointer {
  version: number;
  /** '' when the pointer cannot be parsed (a full read then fails as it would have). */
  hash: string;
  fetchedAt: number;
  delta?: string;
}

/** A snapshot this writer stored (its content known exactly): what the next delta is said against. */
export interface StoredContent {
  version: number;
  hash: string;
  ids: (string | null)[];
  parts: string[];
}

export interface PublisherRecord {
  id: string;
  /** ZeroMQ address workers connect to. */
  zmq: string;
  /** The api's HTTP base URL. */
  http: string;
  host: string;
  startedAt: number;
  /** Its ZeroMQ CURVE public key (Z85), when it publishes over CURVE. */
  curve?: string;
}

export interface WorkerStatus {
  name: string;
  host: string;
  /** Snapshot version and rules hash the running config was built from. */
  snapshotVersion: number;
  /** sha256 of the haproxy.cfg in force. */
  configHash: string;
  /** The app ids + rule versions applied, as one hash, so the UI can tell whether a rule is live everywhere. */
  rulesApplied: Record<string, number>;
  lastOutcome: string;
  lastReason: string;
  lastOutcomeAt: number;
  lastAppliedAt: number;
  quarantined: string[];
  /**
   * Why each app is quarantined (bounded: the first WORKER_QUARANTINE_DETAILS by id, each error cut
   * to 300 characters); absent in records of older workers.
   */
  quarantine?: WorkerQuarantine[];
  startedAt: number;
  mode: string;
  /** Worker.Groups: the load-balancer groups it serves ([]: every app). Absent from workers that predate it. */
  groups?: string[];
}

/** One quarantined app on one worker, as its status record shows it (worker/outcome.ts QuarantinedApp). */
export interface WorkerQuarantine {
  appId: string;
  level: 'rules' | 'app';
  /** HAProxy's complaint, `port policy: ...`, `reload failed: ...`, `validation timed out ...`. */
  error: string;
  /** Level `rules`: routed by the last good rule (version `lastGoodVersion`) or the default rule. */
  fallback?: 'last-good' | 'default';
  lastGoodVersion?: number;
  /** The quarantined rule's version. */
  ruleVersion?: number;
  /** Since when (ms epoch) this worker quarantines it. */
  since?: number;
}

/** Quarantine details one worker status record carries at most (the ids are all in `quarantined`). */
export const WORKER_QUARANTINE_DETAILS = 200;

/**
 * writeSnapshot with `expectVersion` found a snapshot newer than the one the caller started from:
 * another api copy wrote while this one was fetching. The caller should fetch again (its data may be
 * older than what is stored) rather than overwrite.
 */
export class SnapshotConflictError extends Error {
  override name = 'SnapshotConflictError';
}

/**
 * One reader's full reads of the stored snapshot (the api's snapshot cache, the worker's desired state):
 * each read parses only the apps whose JSON text changed since this reader's last read; the others are
 * the objects read before, so per-app memos skip them.
 */
export class SnapshotLoader {
  /** The apps of the last read with their texts. */
  private parsed: ParsedApps | null = null;

  constructor(private readonly control: ControlStore) {}

  /** The stored snapshot, or null when none was stored yet; throws what ControlStore.readSnapshot throws. */
  async read(): Promise<MarathonSnapshot | null> {
    const read = await this.control.readSnapshot(this.parsed);
    if (!read) return null;
    const { texts, ...snapshot } = read;
    this.parsed = texts ? { texts, apps: snapshot.apps } : null;
    return snapshot;
  }
}

export class ControlStore {
  readonly paths: ControlPaths;
  constructor(
    private readonly zk: Zk,
    /** Bamboo.Zookeeper.ControlPath */
    readonly root: string,
  ) {
    this.paths = new ControlPaths(root);
  }

  /** Whether ZooKeeper can be asked now (connected). */
  get available(): boolean {
    return this.zk.connected;
  }

  get snapshotPath(): string {
    return this.paths.snapshot;
  }
  get chunksPath(): string {
    return this.paths.chunks;
  }
  get publishersPath(): string {
    return this.paths.publishers;
  }
  get workersPath(): string {
    return this.paths.workers;
  }
  get leaderPath(): string {
    return this.paths.leader;
  }

  /**
   * The apps serialised (app by app, see snapshot-delta.ts; `serialised.json` is the whole) and its
   * hash. `texts`: the apps' JSON texts as Marathon sent them, used instead of serialising.
   */
  static hashApps(apps: unknown[], texts?: readonly string[]): { hash: string; serialised: SerialisedApps } {
    const serialised = serialiseApps(apps, texts);
    return { hash: createHash('sha256').update(serialised.json).digest('hex'), serialised };
  }

  /**
   * Stores a new snapshot unless the stored one has the same hash. Returns the snapshot version in
   * force afterwards, whether it changed, and the apps as serialised (the content of that version, for
   * the caller's next delta).
   *
   * With `opts.expectVersion` (the snapshot version read before fetching; -1 for none) the write only
   * happens if no other snapshot was stored since; otherwise SnapshotConflictError, so data fetched
   * earlier by a slow copy never replaces newer data stored by a faster one.
   *
   * Chunks of older snapshots are removed afterwards, unless `opts.prune` is false: then the caller
   * calls pruneChunks(hash) itself once the time-critical work is done (the intake publishes its hint
   * first). Throws ZooKeeper errors as they come; a failed prune after a stored pointer also throws,
   * with the snapshot stored.
   *
   * With `opts.deltaFrom` (the content this writer stored last) still the stored snapshot, the changes
   * from it are computed (diffApps) and their digest stored in the new pointer, in the same write: the
   * returned `delta` is then the only delta workers accept for the new version (what the hint carries).
   */
  async writeSnapshot(
    apps: unknown[],
    fetchedAt: number,
    opts: { expectVersion?: number; prune?: boolean; texts?: readonly string[]; deltaFrom?: StoredContent | null } = {},
  ): Promise<{ version: number; changed: boolean; hash: string; serialised: SerialisedApps; delta?: DeltaBody }> {
    const [current, { hash, serialised }] = await Promise.all([
      this.zk.get(this.snapshotPath),
      // Serialised (or joined from Marathon's texts) and hashed while the pointer read travels.
      Promise.resolve().then(() => ControlStore.hashApps(apps, opts.texts)),
    ]);
    if (current) {
      try {
        const p = JSON.parse(current.data.toString()) as Pointer;
        if (p.hash === hash) return { version: current.stat.version, changed: false, hash, serialised };
      } catch {
        /* a damaged pointer is simply replaced */
      }
    }
    const expect = opts.expectVersion;
    if (expect !== undefined && (current ? current.stat.version : -1) !== expect) {
      throw new SnapshotConflictError(`the snapshot changed since version ${expect}`);
    }
    const gz = gzipSync(serialised.json, { level: 1 });
    const chunks = Math.max(1, Math.ceil(gz.length / CHUNK_BYTES));
    const pointer: Pointer = { hash, fetchedAt, chunks, bytes: gz.length };
    const delta = current ? this.deltaFrom(opts.deltaFrom, current, serialised, apps) : undefined;
    if (delta) pointer.delta = deltaDigest(delta);
    const pointerData = Buffer.from(JSON.stringify(pointer));
    const setVersion = expect === undefined || !current ? -1 : current.stat.version;
    if (current && chunks === 1) {
      // The common case in one transaction (one round trip, one log write): the chunk and the pointer.
      // Only for one chunk: a request must stay under ZooKeeper's 1 MB limit (jute.maxbuffer).
      try {
        const [, version] = await this.zk.multi([
          { op: 'create', path: this.paths.chunk(hash, 0), data: gz },
          { op: 'set', path: this.snapshotPath, data: pointerData, version: setVersion },
        ]);
        if (opts.prune !== false) await this.pruneChunks(hash);
        return { version, changed: true, hash, serialised, delta };
      } catch (err) {
        if (err instanceof ZkBadVersionError) throw new SnapshotConflictError(`the snapshot changed while version ${expect} was being replaced`);
        // The chunk exists (written by another copy) or its parent is gone: step by step below.
        if (!(err instanceof ZkNodeExistsError) && !(err instanceof ZkNoNodeError)) throw err;
      }
    }
    await this.createChunks(hash, gz, chunks);
    let version: number;
    try {
      if (current) {
        version = await this.zk.set(this.snapshotPath, pointerData, setVersion);
      } else {
        try {
          await this.zk.create(this.snapshotPath, pointerData);
          version = 0;
        } catch (err) {
          if (!(err instanceof ZkNodeExistsError) || expect !== undefined) throw err;
          version = await this.zk.set(this.snapshotPath, pointerData);
        }
      }
    } catch (err) {
      if (err instanceof ZkBadVersionError || err instanceof ZkNodeExistsError) {
        throw new SnapshotConflictError(`the snapshot changed while version ${expect} was being replaced`);
      }
      throw err;
    }
    if (opts.prune !== false) await this.pruneChunks(hash);
    return { version, changed: true, hash, serialised, delta };
  }

  /** The delta from `from` when it is exactly the stored snapshot (version and content) and small enough. */
  private deltaFrom(
    from: StoredContent | null | undefined,
    current: { data: Buffer; stat: { version: number } },
    serialised: SerialisedApps,
    apps: readonly unknown[],
  ): DeltaBody | undefined {
    if (!from || from.version !== current.stat.version) return undefined;
    let storedHash: unknown;
    try {
      storedHash = (JSON.parse(current.data.toString()) as Pointer).hash;
    } catch {
      return undefined;
    }
    if (storedHash !== from.hash) return undefined;
    const d = diffApps(from, serialised, apps);
    return d ? { base: from.version, baseHash: from.hash, ...d } : undefined;
  }

  /**
   * Creates the chunks of one snapshot, all at once. The chunks' parent is created only when missing
   * (the first snapshot): a mkdirp on every write would cost one ZooKeeper write per path level.
   */
  private async createChunks(hash: string, gz: Buffer, chunks: number): Promise<void> {
    const createAll = () =>
      Promise.all(
        Array.from({ length: chunks }, async (_, i) => {
          try {
            await this.zk.create(this.paths.chunk(hash, i), gz.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES));
          } catch (err) {
            if (!(err instanceof ZkNodeExistsError)) throw err; // same content written by another copy
          }
        }),
      );
    try {
      await createAll();
    } catch (err) {
      if (!(err instanceof ZkNoNodeError)) throw err;
      await this.zk.mkdirp(this.chunksPath);
      await createAll();
    }
  }

  /**
   * Removes chunks of older snapshots (keeping `keepHash`, the current one, and one previous, for
   * readers mid-read). Throws ZooKeeper errors from listing; failed removals are left for next time.
   */
  async pruneChunks(keepHash: string): Promise<void> {
    const names = await this.zk.children(this.chunksPath);
    const hashes = [...new Set(names.map((n) => n.replace(/-\d+$/, '')))];
    if (hashes.length <= 2) return;
    const stats = await Promise.all(
      hashes.map(async (h) => ({ h, mtime: (await this.zk.exists(this.paths.chunk(h, 0)).catch(() => null))?.mtime ?? 0 })),
    );
    stats.sort((a, b) => b.mtime - a.mtime);
    const keep = new Set([keepHash, ...stats.filter((s) => s.h !== keepHash).slice(0, 1).map((s) => s.h)]);
    await Promise.all(
      names.filter((n) => !keep.has(n.replace(/-\d+$/, ''))).map((n) => this.zk.remove(childPath(this.chunksPath, n)).catch(() => undefined)),
    );
  }

  /**
   * The snapshot pointer (null when none): its version, hash and delta digest, in one small read. What
   * a worker checks a hint's delta against before applying it.
   */
  async snapshotPointer(): Promise<SnapshotPointer | null> {
    const node = await this.zk.get(this.snapshotPath);
    if (!node) return null;
    try {
      const p = JSON.parse(node.data.toString()) as Partial<Pointer>;
      return {
        version: node.stat.version,
        hash: typeof p.hash === 'string' ? p.hash : '',
        fetchedAt: typeof p.fetchedAt === 'number' ? p.fetchedAt : 0,
        ...(typeof p.delta === 'string' ? { delta: p.delta } : {}),
      };
    } catch {
      return { version: node.stat.version, hash: '', fetchedAt: 0 };
    }
  }

  /** The version of the stored snapshot (-1 when none), one cheap read. */
  async snapshotVersion(): Promise<number> {
    const st = await this.zk.exists(this.snapshotPath);
    return st ? st.version : -1;
  }

  /**
   * The stored snapshot, or null when none was written yet; retries if chunks vanish mid-read.
   * `previous`: what this reader parsed last time (see SnapshotLoader); apps whose text is unchanged are those
   * objects, not parsed again.
   */
  async readSnapshot(previous?: ParsedApps | null): Promise<(MarathonSnapshot & { texts?: string[] }) | null> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const node = await this.zk.get(this.snapshotPath);
      if (!node) return null;
      const p = JSON.parse(node.data.toString()) as Pointer;
      try {
        const parts: Buffer[] = [];
        for (let i = 0; i < p.chunks; i++) {
          const c = await this.zk.get(this.paths.chunk(p.hash, i));
          if (!c) throw new ZkNoNodeError('chunk gone');
          parts.push(c.data);
        }
        const text = gunzipSync(Buffer.concat(parts)).toString();
        let cut: ReturnType<typeof parseAppsArrayText> = null;
        try {
          cut = parseAppsArrayText(text, previous);
        } catch {
          cut = null; // not JSON app by app: the whole parse below throws as it always did
        }
        if (!cut) return { version: node.stat.version, hash: p.hash, fetchedAt: p.fetchedAt, apps: JSON.parse(text) as unknown[] };
        return { version: node.stat.version, hash: p.hash, fetchedAt: p.fetchedAt, apps: cut.apps, texts: cut.texts };
      } catch (err) {
        if (!(err instanceof ZkNoNodeError)) throw err;
      }
    }
    return null;
  }

  async publishers(): Promise<PublisherRecord[]> {
    return this.readAll<PublisherRecord>(this.publishersPath);
  }

  async workers(): Promise<WorkerStatus[]> {
    return this.readAll<WorkerStatus>(this.workersPath);
  }

  private async readAll<T>(path: string): Promise<T[]> {
    const names = await this.zk.children(path);
    const out = await Promise.all(
      names.map(async (n) => {
        const node = await this.zk.get(childPath(path, n));
        if (!node) return null;
        try {
          return JSON.parse(node.data.toString()) as T;
        } catch {
          return null;
        }
      }),
    );
    return out.filter((x): x is Awaited<T> => x !== null) as T[];
  }
}
