/**
 * How a Marathon snapshot is laid out in ZooKeeper: the pointer node's JSON, and the apps cut into
 * segments, each gzipped into nodes below ZooKeeper's node limit and named by its content.
 */
import { gzipSync } from 'node:zlib';
import { serialiseParts } from '../../core/snapshot-delta.js';
import { manifestHash, parseSegmentEntry, segmentEntry, segmentHash, segmentRanges, segmentText } from '../../core/snapshot-segments.js';
import { childPath } from './zk-paths.js';

export const CHUNK_BYTES = 900 * 1024;

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

/** The snapshot pointer node's JSON. */
export interface Pointer {
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

/** The nodes of a manifest entry, under `chunksPath`. */
export function segmentNodes(chunksPath: string, entry: string): string[] {
  const e = parseSegmentEntry(entry);
  if (!e) return [];
  return Array.from({ length: e.pieces }, (_, i) => childPath(chunksPath, `s-${e.hash}-${i}`));
}

/**
 * The hash a snapshot of these apps has (its manifest's, see snapshot-segments.ts). `texts`: the
 * apps' JSON texts as Marathon sent them, used instead of serialising.
 */
export function snapshotHash(apps: unknown[], texts?: readonly string[]): string {
  const { ids, parts } = serialiseParts(apps, texts);
  const entries = segmentRanges(ids, parts).map(([a, b]) => {
    const text = segmentText(parts, a, b);
    return segmentEntry(segmentHash(text), piecesOf(text));
  });
  return manifestHash(entries);
}

/**
 * A writer's cutting of contents into segments. It keeps the segments of the last content it cut, by
 * their first app's id (or text): an unchanged segment is recognised by its apps' texts and not hashed
 * or gzipped again. Replaced on every cut, so it stays as large as one snapshot.
 */
export class SegmentCutter {
  private written = new Map<string, WrittenSegment>();

  /**
   * The content cut into segments: each one's manifest entry, and the text and gzipped bytes of those
   * not recognised from the last content this cutter cut. Replaces that memo.
   */
  cut(ids: readonly (string | null)[], parts: readonly string[]): { entries: string[]; bytes: number; fresh: Map<string, Buffer[]> } {
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

  /** The gzipped bytes of the segment `entry` of `entries` (cut at `ranges`), made again. */
  regzip(entry: string, parts: readonly string[], ranges: Array<[number, number]>, entries: string[]): Buffer[] {
    const i = entries.indexOf(entry);
    const [a, b] = ranges[i];
    const text = segmentText(parts, a, b);
    return slices(gzipSync(text, { level: 1 }), piecesOf(text));
  }
}
