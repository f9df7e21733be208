/**
 * The shared Marathon snapshot in ZooKeeper under `Bamboo.Zookeeper.ControlPath` (layout in
 * snapshot-format.ts and docs/ARCHITECTURE.md): ControlStore writes it, prunes its old segments, reads
 * its pointer and, through snapshot-read.ts, the whole of it; and lists the registrations.
 */
import { deltaDigest, diffApps, serialiseParts, type DeltaBody, type SerialisedApps, type ParsedApps } from '../../core/snapshot-delta.js';
import { manifestHash, segmentRanges } from '../../core/snapshot-segments.js';
import type { PublisherRecord, WorkerStatus } from './registrations.js';
import { CHUNK_BYTES, SegmentCutter, segmentNodes, snapshotHash, type Pointer } from './snapshot-format.js';
import { readSnapshot, type SegmentCache, type SnapshotRead } from './snapshot-read.js';
import { ControlPaths, childPath } from './zk-paths.js';
import { Zk } from './zk.js';
import { ZkBadVersionError, ZkNodeExistsError, ZkNoNodeError } from './zk-errors.js';

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

/**
 * writeSnapshot with `expectVersion` found a snapshot newer than the one the caller started from:
 * another api copy wrote while this one was fetching. The caller should fetch again (its data may be
 * older than what is stored) rather than overwrite.
 */
export class SnapshotConflictError extends Error {
  override name = 'SnapshotConflictError';
}

export class ControlStore {
  readonly paths: ControlPaths;
  /** This store's cutting of contents into segments (it recognises the unchanged ones). */
  private readonly cutter = new SegmentCutter();
  /** The manifest this store replaced with its last write, and that write's hash: kept by the next prune. */
  private replaced: { hash: string; entries: string[] } | null = null;
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
   * The hash a snapshot of these apps has (its manifest's, see snapshot-segments.ts). `texts`: the
   * apps' JSON texts as Marathon sent them, used instead of serialising.
   */
  static hashApps(apps: unknown[], texts?: readonly string[]): { hash: string } {
    return { hash: snapshotHash(apps, texts) };
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
  ): Promise<{ version: number; changed: boolean; hash: string; serialised: Pick<SerialisedApps, 'ids' | 'parts'>; delta?: DeltaBody }> {
    const [current, content] = await Promise.all([
      this.zk.get(this.snapshotPath),
      // Cut (recognising the unchanged segments) while the pointer read travels.
      Promise.resolve().then(() => {
        const serialised = serialiseParts(apps, opts.texts);
        return { serialised, ...this.cutter.cut(serialised.ids, serialised.parts) };
      }),
    ]);
    const { serialised, entries, bytes, fresh } = content;
    const hash = manifestHash(entries);
    let stored: Pointer | null = null;
    if (current) {
      try {
        stored = JSON.parse(current.data.toString()) as Pointer;
        if (stored.hash === hash) return { version: current.stat.version, changed: false, hash, serialised };
      } catch {
        /* a damaged pointer is simply replaced */
      }
    }
    const expect = opts.expectVersion;
    if (expect !== undefined && (current ? current.stat.version : -1) !== expect) {
      throw new SnapshotConflictError(`the snapshot changed since version ${expect}`);
    }
    // Segments the stored manifest names exist (a prune never removes those); every other one is written.
    const present = new Set(Array.isArray(stored?.segments) ? stored.segments : []);
    const toWrite = new Map<string, Buffer[]>();
    let ranges: Array<[number, number]> | null = null;
    for (const entry of entries) {
      if (present.has(entry) || toWrite.has(entry)) continue;
      let data = fresh.get(entry);
      if (!data) {
        ranges ??= segmentRanges(serialised.ids, serialised.parts);
        data = this.cutter.regzip(entry, serialised.parts, ranges, entries);
      }
      toWrite.set(entry, data);
    }
    const pointer: Pointer = { hash, fetchedAt, segments: entries, bytes };
    const delta = current ? this.deltaFrom(opts.deltaFrom, current, serialised, apps) : undefined;
    if (delta) pointer.delta = deltaDigest(delta);
    const pointerData = Buffer.from(JSON.stringify(pointer));
    const setVersion = expect === undefined || !current ? -1 : current.stat.version;
    const creates = [...toWrite.entries()].flatMap(([entry, data]) => segmentNodes(this.chunksPath, entry).map((path, i) => ({ path, data: data[i] })));
    const requestBytes = creates.reduce((n, c) => n + c.data.length + c.path.length, 0) + pointerData.length;
    this.replaced = { hash, entries: Array.isArray(stored?.segments) ? stored.segments : [] };
    if (current && requestBytes < CHUNK_BYTES) {
      // The common case in one transaction (one round trip, one log write): the new segments and the
      // pointer. Only below ZooKeeper's 1 MB request limit (jute.maxbuffer).
      try {
        const versions = await this.zk.multi([
          ...creates.map((c) => ({ op: 'create' as const, path: c.path, data: c.data })),
          { op: 'set', path: this.snapshotPath, data: pointerData, version: setVersion },
        ]);
        if (opts.prune !== false) await this.pruneChunks(hash);
        return { version: versions[versions.length - 1], changed: true, hash, serialised, delta };
      } catch (err) {
        if (err instanceof ZkBadVersionError) throw new SnapshotConflictError(`the snapshot changed while version ${expect} was being replaced`);
        // A segment exists (written by another copy, or left by a failed write) or the parent is gone: step by step below.
        if (!(err instanceof ZkNodeExistsError) && !(err instanceof ZkNoNodeError)) throw err;
      }
    }
    await this.createNodes(creates);
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
    serialised: Pick<SerialisedApps, 'ids' | 'parts'>,
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
   * Creates segment nodes, all at once. The parent is created only when missing (the first snapshot):
   * a mkdirp on every write would cost one ZooKeeper write per path level.
   */
  private async createNodes(creates: ReadonlyArray<{ path: string; data: Buffer }>): Promise<void> {
    const createAll = () =>
      Promise.all(
        creates.map(async (c) => {
          try {
            await this.zk.create(c.path, c.data);
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
   * Removes the segments (and chunks of earlier pointers) that the stored pointer no longer names,
   * except those of the snapshot this store replaced with its write of `keepHash` (readers may be
   * reading it) and those created after the stored pointer was written (another copy's write in
   * progress: ZooKeeper's transaction ids order them). Throws ZooKeeper errors from the reads; failed
   * removals are left for next time.
   */
  async pruneChunks(keepHash: string): Promise<void> {
    const names = await this.zk.children(this.chunksPath);
    const node = await this.zk.get(this.snapshotPath);
    if (!node || node.stat.mzxid === undefined) return;
    let p: Partial<Pointer>;
    try {
      p = JSON.parse(node.data.toString()) as Partial<Pointer>;
    } catch {
      return;
    }
    const keep = new Set<string>();
    const keepEntries = (entries: readonly unknown[]) => {
      for (const e of entries) for (const path of segmentNodes(this.chunksPath, String(e))) keep.add(path.slice(this.chunksPath.length + 1));
    };
    if (Array.isArray(p.segments)) keepEntries(p.segments);
    else for (let i = 0; i < (p.chunks ?? 0); i++) keep.add(`${p.hash}-${i}`);
    if (this.replaced && this.replaced.hash === keepHash) keepEntries(this.replaced.entries);
    const candidates = names.filter((n) => !keep.has(n));
    if (candidates.length === 0) return;
    const pointerZxid = node.stat.mzxid;
    await Promise.all(
      candidates.map(async (n) => {
        const path = childPath(this.chunksPath, n);
        const st = await this.zk.exists(path).catch(() => null);
        if (st && st.czxid !== undefined && st.czxid < pointerZxid) await this.zk.remove(path).catch(() => undefined);
      }),
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
   * The stored snapshot, or null when none was written yet (snapshot-read.ts readSnapshot: `previous`
   * and `segments` are what a reader holds from its last read, see SnapshotLoader).
   */
  readSnapshot(previous?: ParsedApps | null, segments?: { held: SegmentCache; next: SegmentCache }): Promise<SnapshotRead | null> {
    return readSnapshot(this.zk, this.paths, previous, segments);
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
