/**
 * Reading the stored snapshot: only the segments a reader does not hold, parsing only the apps whose
 * text changed (or the chunks of an older pointer); SnapshotLoader is one reader's memo across reads.
 */
import { gunzipSync } from 'node:zlib';
import { parseAppsArrayText, type ParsedApps } from '../../core/snapshot-delta.js';
import { segmentNodes, type MarathonSnapshot, type Pointer } from './snapshot-format.js';
import type { ControlPaths } from './zk-paths.js';
import type { Zk } from './zk.js';
import { ZkNoNodeError } from './zk-errors.js';

/** A snapshot as read, with the apps' texts when known. */
export type SnapshotRead = MarathonSnapshot & { texts?: string[] };

/** What a SnapshotLoader reads from (ControlStore). */
export interface SnapshotSource {
  readSnapshot(previous: ParsedApps | null, segments: { held: SegmentCache; next: SegmentCache }): Promise<SnapshotRead | null>;
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

  constructor(private readonly control: SnapshotSource) {}

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

/**
 * The stored snapshot, or null when none was written yet; retries if segments vanish mid-read.
 * `previous`: what this reader parsed last time (see SnapshotLoader); apps whose text is unchanged are those
 * objects, not parsed again. `segments`: the segments this reader holds (`held`, reused without a read)
 * and where the segments of this read go (`next`).
 */
export async function readSnapshot(
  zk: Zk,
  paths: ControlPaths,
  previous?: ParsedApps | null,
  segments?: { held: SegmentCache; next: SegmentCache },
): Promise<SnapshotRead | null> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const node = await zk.get(paths.snapshot);
    if (!node) return null;
    const p = JSON.parse(node.data.toString()) as Pointer;
    try {
      if (Array.isArray(p.segments)) {
        const read = await readSegments(zk, paths, p.segments, segments?.held ?? new Map());
        segments?.next.clear();
        for (const [k, v] of read.segments) segments?.next.set(k, v);
        return { version: node.stat.version, hash: p.hash, fetchedAt: p.fetchedAt, apps: read.apps, texts: read.texts };
      }
      const parts: Buffer[] = [];
      for (let i = 0; i < (p.chunks ?? 0); i++) {
        const c = await zk.get(paths.chunk(p.hash, i));
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
async function readSegments(zk: Zk, paths: ControlPaths, entries: readonly unknown[], held: SegmentCache): Promise<{ apps: unknown[]; texts: string[]; segments: SegmentCache }> {
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
      const nodes = segmentNodes(paths.chunks, entry);
      if (nodes.length === 0) throw new Error(`the snapshot pointer names a malformed segment ${entry.slice(0, 80)}`);
      const data = await Promise.all(nodes.map((n) => zk.get(n)));
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
