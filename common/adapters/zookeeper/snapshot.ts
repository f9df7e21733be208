/**
 * The shared Marathon snapshot and the registrations, in ZooKeeper under `Bamboo.Zookeeper.ControlPath`
 * (paths in common/adapters/zookeeper/zk-paths.ts, layout in docs/ARCHITECTURE.md). The snapshot pointer holds
 * {"hash","fetchedAt","segments","bytes","delta"?}: the apps array is cut into segments of about 64
 * apps (common/core/snapshot-segments.ts), each stored gzipped in its own node named by its content, so a
 * change of one app writes one segment and the pointer, and a reader reads only the segments it does
 * not hold. (Pointers of earlier versions, {"chunks": n}, name one gzipped array split into n chunks;
 * they are still read.)
 *
 * The api that fetched Marathon writes the snapshot (the new segments and the pointer in one
 * transaction when they fit in one request; then removes segments no longer named, which the intake
 * does only after publishing its hint); workers and other api copies read it when hinted. A worker
 * therefore never calls Marathon and Marathon's load does not grow with the number of workers.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { deltaDigest, diffApps, parseAppsArrayText, type DeltaBody, type SerialisedApps, type ParsedApps } from '../../core/snapshot-delta.js';
import { manifestHash, parseSegmentEntry, segmentEntry, segmentHash, segmentRanges, segmentText } from '../../core/snapshot-segments.js';
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
  /** Manifest: the segments in order (snapshot-segments.ts segmentEntry). */
  segments?: string[];
  /** Earlier pointers: the number of chunks of the one gzipped array. */
  chunks?: number;
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
  /** The segments of the last read (only those: it stays as large as one snapshot). */
  private segments: SegmentCache = new Map();

  constructor(private readonly control: ControlStore) {}

  /** The stored snapshot, or null when none was stored yet; throws what ControlStore.readSnapshot throws. */
  async read(): Promise<MarathonSnapshot | null> {
    const segments: SegmentCache = new Map();
    const read = await this.control.readSnapshot(this.parsed, { held: this.segments, next: segments });
    if (!read) return null;
    const { texts, ...snapshot } = read;
    this.segments = segments;
    // A segmented snapshot is reused segment by segment; the whole texts only serve an older pointer.
    this.parsed = texts && segments.size === 0 ? { texts, apps: snapshot.apps } : null;
    return snapshot;
  }

  /** Segments held for the next read (tests: memos stay as large as one snapshot). */
  get heldSegments(): number {
    return this.segments.size;
  }
}

/** Segments a reader parsed, by manifest entry: the next read takes the unchanged ones as they are. */
export type SegmentCache = Map<string, { texts: string[]; apps: unknown[] }>;

/** What the writer knows of a segment it stored or saw (no gzipped bytes: they are made again if needed). */
interface WrittenSegment {
  entry: string;
  parts: string[];
  bytes: number;
}

/** ZooKeeper's node limit is 1 MB; a segment's gzipped bytes are cut into nodes below it. */
function piecesOf(text: string): number {
  return Math.max(1, Math.ceil(Buffer.byteLength(text) / CHUNK_BYTES));
}

function slices(gz: Buffer, pieces: number): Buffer[] {
  const size = Math.ceil(gz.length / pieces);
  return Array.from({ length: pieces }, (_, i) => gz.subarray(i * size, (i + 1) * size));
}

function sameParts(a: readonly string[], b: readonly string[], from: number): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[from + i]) return false;
  return true;
}

export class ControlStore {
  readonly paths: ControlPaths;
  /**
   * The segments of the last content this store cut, by their first app's id (or text): an unchanged
   * segment is recognised by its apps' texts and not hashed or gzipped again. Replaced on every write,
   * so it stays as large as one snapshot.
   */
  private written = new Map<string, WrittenSegment>();
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
    const { ids, parts } = serialiseParts(apps, texts);
    const entries = segmentRanges(ids, parts).map(([a, b]) => {
      const text = segmentText(parts, a, b);
      return segmentEntry(segmentHash(text), piecesOf(text));
    });
    return { hash: manifestHash(entries) };
  }

  /**
   * The content cut into segments: each one's manifest entry, and the text and gzipped bytes of those
   * not recognised from the last content this store cut. Replaces that memo.
   */
  private cut(ids: readonly (string | null)[], parts: readonly string[]): { entries: string[]; bytes: number; fresh: Map<string, Buffer[]> } {
    const entries: string[] = [];
    const fresh = new Map<string, Buffer[]>();
    const memo = new Map<string, WrittenSegment>();
    let bytes = 0;
    for (const [a, b] of segmentRanges(ids, parts)) {
      const key = ids[a] ?? parts[a];
      const known = this.written.get(key);
      let seg: WrittenSegment;
      if (known && known.parts.length === b - a && sameParts(known.parts, parts, a)) seg = known;
      else {
        const text = segmentText(parts, a, b);
        const pieces = piecesOf(text);
        const gz = gzipSync(text, { level: 1 });
        seg = { entry: segmentEntry(segmentHash(text), pieces), parts: parts.slice(a, b), bytes: gz.length };
        fresh.set(seg.entry, slices(gz, pieces));
      }
      memo.set(key, seg);
      entries.push(seg.entry);
      bytes += seg.bytes;
    }
    this.written = memo;
    return { entries, bytes, fresh };
  }

  /** The nodes of a manifest entry. */
  private segmentNodes(entry: string): string[] {
    const e = parseSegmentEntry(entry);
    if (!e) return [];
    return Array.from({ length: e.pieces }, (_, i) => childPath(this.chunksPath, `s-${e.hash}-${i}`));
  }

  /** The gzipped bytes of a segment named in the stored manifest that this store must write again. */
  private regzip(entry: string, ids: readonly (string | null)[], parts: readonly string[], ranges: Array<[number, number]>, entries: string[]): Buffer[] {
    const i = entries.indexOf(entry);
    const [a, b] = ranges[i];
    const text = segmentText(parts, a, b);
    return slices(gzipSync(text, { level: 1 }), piecesOf(text));
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
        return { serialised, ...this.cut(serialised.ids, serialised.parts) };
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
        data = this.regzip(entry, serialised.ids, serialised.parts, ranges, entries);
      }
      toWrite.set(entry, data);
    }
    const pointer: Pointer = { hash, fetchedAt, segments: entries, bytes };
    const delta = current ? this.deltaFrom(opts.deltaFrom, current, serialised, apps) : undefined;
    if (delta) pointer.delta = deltaDigest(delta);
    const pointerData = Buffer.from(JSON.stringify(pointer));
    const setVersion = expect === undefined || !current ? -1 : current.stat.version;
    const creates = [...toWrite.entries()].flatMap(([entry, data]) => this.segmentNodes(entry).map((path, i) => ({ path, data: data[i] })));
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
      for (const e of entries) for (const path of this.segmentNodes(String(e))) keep.add(path.slice(this.chunksPath.length + 1));
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
   * The stored snapshot, or null when none was written yet; retries if segments vanish mid-read.
   * `previous`: what this reader parsed last time (see SnapshotLoader); apps whose text is unchanged are those
   * objects, not parsed again. `segments`: the segments this reader holds (`held`, reused without a read)
   * and where the segments of this read go (`next`).
   */
  async readSnapshot(
    previous?: ParsedApps | null,
    segments?: { held: SegmentCache; next: SegmentCache },
  ): Promise<(MarathonSnapshot & { texts?: string[] }) | null> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const node = await this.zk.get(this.snapshotPath);
      if (!node) return null;
      const p = JSON.parse(node.data.toString()) as Pointer;
      try {
        if (Array.isArray(p.segments)) {
          const read = await this.readSegments(p.segments, segments?.held ?? new Map());
          segments?.next.clear();
          for (const [k, v] of read.segments) segments?.next.set(k, v);
          return { version: node.stat.version, hash: p.hash, fetchedAt: p.fetchedAt, apps: read.apps, texts: read.texts };
        }
        const parts: Buffer[] = [];
        for (let i = 0; i < (p.chunks ?? 0); i++) {
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

  /**
   * The apps of a manifest: held segments as they are, the others read (all at once) and parsed, an
   * app whose text was in a held segment no longer named being that segment's object (so per-app memos
   * skip an app that only moved to another segment). Throws ZkNoNodeError when a segment is gone.
   */
  private async readSegments(entries: readonly unknown[], held: SegmentCache): Promise<{ apps: unknown[]; texts: string[]; segments: SegmentCache }> {
    const named = new Set(entries.map(String));
    const missing = [...named].filter((e) => !held.has(e));
    const gone: { texts: string[]; apps: unknown[] } = { texts: [], apps: [] };
    for (const [k, v] of held) {
      if (named.has(k)) continue;
      gone.texts.push(...v.texts);
      gone.apps.push(...v.apps);
    }
    const segments: SegmentCache = new Map();
    await Promise.all(
      missing.map(async (entry) => {
        const nodes = this.segmentNodes(entry);
        if (nodes.length === 0) throw new Error(`the snapshot pointer names a malformed segment ${entry.slice(0, 80)}`);
        const data = await Promise.all(nodes.map((n) => this.zk.get(n)));
        if (data.some((d) => !d)) throw new ZkNoNodeError('segment gone');
        const text = gunzipSync(Buffer.concat(data.map((d) => d!.data))).toString();
        const cut = parseAppsArrayText(text, gone);
        if (!cut) throw new Error('a snapshot segment is not a JSON array of apps');
        segments.set(entry, cut);
      }),
    );
    const apps: unknown[] = [];
    const texts: string[] = [];
    for (const e of entries) {
      const seg = held.get(String(e)) ?? segments.get(String(e))!;
      segments.set(String(e), seg);
      for (let i = 0; i < seg.apps.length; i++) {
        apps.push(seg.apps[i]);
        texts.push(seg.texts[i]);
      }
    }
    return { apps, texts, segments };
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

/** Each app's id and JSON text (Marathon's own texts when given, one per app). */
function serialiseParts(apps: readonly unknown[], texts?: readonly string[]): Pick<SerialisedApps, 'ids' | 'parts'> {
  const ids: (string | null)[] = new Array(apps.length);
  let parts: string[];
  if (texts && texts.length === apps.length) parts = texts.slice();
  else {
    parts = new Array(apps.length);
    // JSON.stringify writes null for array elements it cannot serialise; so must the parts.
    for (let i = 0; i < apps.length; i++) parts[i] = JSON.stringify(apps[i]) ?? 'null';
  }
  for (let i = 0; i < apps.length; i++) {
    const a = apps[i];
    const id = a !== null && typeof a === 'object' ? (a as { id?: unknown }).id : undefined;
    ids[i] = typeof id === 'string' ? id : null;
  }
  return { ids, parts };
}
