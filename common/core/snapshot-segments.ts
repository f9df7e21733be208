/**
 * How a stored snapshot is cut into segments, so that a change writes (and a reader reads) in
 * proportion to what changed, not to the number of apps.
 *
 * The apps array (each app's JSON text, in order) is cut after every app whose id hashes to 0 modulo
 * SEGMENT_APPS, and before a segment would pass SEGMENT_BYTES: the cuts depend only on the apps
 * themselves (content-defined chunking, app by app), so a changed, added or removed app changes only
 * the segment it is in (and at most its neighbour), wherever it is in the list. Each segment is named by
 * the sha256 of its text (`[app,app,...]`); the snapshot's hash is the sha256 of the list of segment
 * names, so equal contents give equal hashes (the contract hints are confirmed against).
 *
 * Pure functions: the store (common/adapters/zookeeper/snapshot-format.ts, snapshot.ts) gzips and writes the segments.
 */
import { createHash } from 'node:crypto';

/** Apps per segment on average (the cut is by the id's hash). */
export const SEGMENT_APPS = 64;
/** A segment is cut before it passes this many characters of JSON (an app may still exceed it alone). */
export const SEGMENT_BYTES = 512 * 1024;

/** FNV-1a of a string's UTF-16 code units: cheap, stable, well spread for short ids. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The segments of an apps array as [start, end) index ranges covering it in order. `ids` are the apps'
 * ids (null for an app without one: its text decides), `parts` their JSON texts.
 */
export function segmentRanges(ids: readonly (string | null)[], parts: readonly string[], opts: { apps?: number; bytes?: number } = {}): Array<[number, number]> {
  const every = opts.apps ?? SEGMENT_APPS;
  const maxBytes = opts.bytes ?? SEGMENT_BYTES;
  const out: Array<[number, number]> = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < parts.length; i++) {
    const len = parts[i].length + 1;
    if (i > start && bytes + len > maxBytes) {
      out.push([start, i]);
      start = i;
      bytes = 0;
    }
    bytes += len;
    const id = ids[i];
    if (fnv1a(id ?? parts[i]) % every === 0) {
      out.push([start, i + 1]);
      start = i + 1;
      bytes = 0;
    }
  }
  if (start < parts.length) out.push([start, parts.length]);
  return out;
}

/** A segment's text: the JSON array of its apps. */
export function segmentText(parts: readonly string[], start: number, end: number): string {
  return `[${parts.slice(start, end).join(',')}]`;
}

/** A segment's name: the first 32 hex digits of the sha256 of its text. */
export function segmentHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/**
 * A manifest entry: the segment's name, with `*k` when its gzipped bytes span k nodes (over the
 * ZooKeeper node limit).
 */
export function segmentEntry(hash: string, pieces: number): string {
  return pieces === 1 ? hash : `${hash}*${pieces}`;
}

/** The segment name and number of nodes of a manifest entry, or null when it is not one. */
export function parseSegmentEntry(entry: unknown): { hash: string; pieces: number } | null {
  if (typeof entry !== 'string') return null;
  const m = /^([0-9a-f]{32})(?:\*([1-9][0-9]{0,3}))?$/.exec(entry);
  return m ? { hash: m[1], pieces: m[2] ? Number(m[2]) : 1 } : null;
}

/** The snapshot hash of a manifest. */
export function manifestHash(entries: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify(entries)).digest('hex');
}
