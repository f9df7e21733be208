/**
 * What changed between two Marathon snapshots, small enough to ride on a ZeroMQ hint.
 *
 * The api tier stores every snapshot whole in ZooKeeper; a worker that is hinted reads it back whole
 * (about 30 ms for 1,000 apps: chunks, gunzip, JSON.parse) and then compares every app with the one it
 * built last time. Most changes touch one app (a task started, died, turned healthy), so the hint of a
 * stored snapshot also carries the apps that changed since the snapshot it replaced. A worker holding
 * exactly that previous snapshot applies the delta in memory: unchanged apps keep their objects (the
 * template-data memo recognises them by identity) and nothing is read. Any other worker, or one that
 * missed a hint, reads ZooKeeper as before: the stored snapshot stays the truth and the delta only a
 * shortcut to it.
 *
 * A hint is unauthenticated by default (anyone who can reach a worker's subscription can send one), so a
 * worker never applies a delta on the hint's word: the api stores the delta's digest (deltaDigest) in
 * the snapshot pointer it writes in the same ZooKeeper operation as the snapshot, and a worker applies a
 * delta only when the pointer it reads shows that digest, that version and that hash (worker/desired.ts).
 *
 * Pure functions; apps are compared by their JSON text, which the api has at hand anyway (it is what it
 * stores).
 */
import { createHash } from 'node:crypto';

/** A snapshot's apps serialised one by one: `json` equals `JSON.stringify(apps)`. */
export interface SerialisedApps {
  /** Each app's `id` (null when it has no string id). */
  ids: (string | null)[];
  /** Each app's JSON text. */
  parts: string[];
  json: string;
}

export interface SnapshotDelta {
  /** The snapshot version this delta applies to. */
  base: number;
  /** The hash of that snapshot's content: a delta applies only to exactly that content. */
  baseHash: string;
  /** The snapshot version it produces, with its hash and fetch time (as stored in ZooKeeper). */
  version: number;
  hash: string;
  fetchedAt: number;
  /** Apps that are new or changed, in their order in the new snapshot. */
  upsert: unknown[];
  /** Ids of the apps that are gone. */
  remove: string[];
  /** Every id in the new snapshot's order, when it is not the old order minus removals plus additions at the end. */
  order?: string[];
}

/**
 * Bounds of a delta: above them a worker reads ZooKeeper instead (a big deployment, the first fetch, a
 * reordering of many apps: the bytes bound covers the new order too).
 * The bytes bound also bounds memory: ZeroMQ queues up to its high-water mark of messages for a
 * subscriber that stopped reading (common/adapters/zeromq/bus.ts), so 1,000 x 64 kB at worst. A typical app with its
 * tasks is 1-3 kB of JSON.
 */
export const DELTA_MAX_APPS = 100;
export const DELTA_MAX_BYTES = 64 * 1024;

/** What a delta changes, without the snapshot it produces (which the pointer names): what the digest covers. */
export type DeltaBody = Pick<SnapshotDelta, 'base' | 'baseHash' | 'upsert' | 'remove' | 'order'>;

/**
 * sha256 of a delta's body, as the api stores it in the snapshot pointer (`delta`). The api computes it
 * over the objects it then sends; the worker over the objects it parsed from the hint. JSON.stringify of
 * JSON.parse of JSON.stringify's output is that output again, so both get the same text.
 */
export function deltaDigest(d: DeltaBody): string {
  return createHash('sha256')
    .update(JSON.stringify([d.base, d.baseHash, d.upsert, d.remove, d.order ?? null]))
    .digest('hex');
}

/** An app's string `id`, or null. */
function appId(a: unknown): string | null {
  const id = a !== null && typeof a === 'object' ? (a as { id?: unknown }).id : undefined;
  return typeof id === 'string' ? id : null;
}

/**
 * The apps serialised one by one. `texts`, when given, are the apps' own JSON texts (cut out of
 * Marathon's answer by parseAppsText) and are used as they are when there is one per app: serialising
 * 1,000 apps again costs about 11 ms. Otherwise each app is serialised.
 */
export function serialiseApps(apps: readonly unknown[], texts?: readonly string[]): SerialisedApps {
  const { ids, parts } = serialiseParts(apps, texts);
  return { ids, parts, json: `[${parts.join(',')}]` };
}

/** serialiseApps without the whole array's text: each app's id and JSON text. */
export function serialiseParts(apps: readonly unknown[], texts?: readonly string[]): Pick<SerialisedApps, 'ids' | 'parts'> {
  const ids: (string | null)[] = new Array(apps.length);
  let parts: string[];
  if (texts && texts.length === apps.length) parts = [...texts];
  else {
    parts = new Array(apps.length);
    // JSON.stringify writes null for array elements it cannot serialise; so must the parts.
    for (let i = 0; i < apps.length; i++) parts[i] = JSON.stringify(apps[i]) ?? 'null';
  }
  for (let i = 0; i < apps.length; i++) ids[i] = appId(apps[i]);
  return { ids, parts };
}

/** Apps with the JSON text each was parsed from: what the next parse may reuse. */
export interface ParsedApps {
  texts: readonly string[];
  apps: readonly unknown[];
}

/**
 * Marathon's `/v2/apps` answer parsed app by app: `apps` as JSON.parse would give them (`.apps` of the
 * whole), `texts` each app's own JSON text. An app whose text equals one in `previous` (the last
 * snapshot's texts and apps) is that app's object, not parsed again: a change usually touches one app
 * in a thousand, and parsing the whole answer costs about 12 ms for 1,000 apps, cutting it about 4.
 *
 * Returns null when the text is not a JSON object whose last `"apps"` key holds an array (or cannot be
 * cut: a key spelt with escapes); the caller then parses the whole text, with its own errors. Throws
 * SyntaxError when an app's text is not valid JSON. The text outside the apps array is checked only for
 * balance (its brackets close, nothing follows), not parsed: it is never used.
 */
export function parseAppsText(
  text: string,
  previous?: ParsedApps | null,
): { apps: unknown[]; texts: string[] } | null {
  const texts = appsArrayParts(text);
  if (!texts) return null;
  const prev = previous && previous.texts.length === previous.apps.length ? previous : null;
  // Compared at the same position first (cheap: most apps stay where they were), then by text (which
  // hashes the text, so only for the apps that moved or changed).
  let known: Map<string, unknown> | null = null;
  const apps: unknown[] = new Array(texts.length);
  for (let i = 0; i < texts.length; i++) {
    const t = texts[i];
    if (prev && i < prev.texts.length && prev.texts[i] === t) {
      apps[i] = prev.apps[i];
      continue;
    }
    if (prev && !known) {
      known = new Map();
      for (let j = 0; j < prev.texts.length; j++) known.set(prev.texts[j], prev.apps[j]);
    }
    apps[i] = known?.has(t) ? known.get(t) : JSON.parse(t);
  }
  return { apps, texts };
}

/**
 * parseAppsText for a stored snapshot, whose text is the apps array itself (`[...]`, see
 * ControlStore): a reader that keeps what it parsed last gets the unchanged apps as the same objects,
 * which the worker's template-data memo recognises by identity.
 */
export function parseAppsArrayText(
  text: string,
  previous?: ParsedApps | null,
): { apps: unknown[]; texts: string[] } | null {
  return parseAppsText(`{"apps":${text}}`, previous);
}

/**
 * The text of each element of the top-level object's `"apps"` array (the last such key, as JSON.parse
 * keeps the last), or null when there is none, when the text is not one object (unbalanced, truncated,
 * something after it) or an `"apps"` key is spelt with escapes. Only strings and brackets are followed:
 * the elements' texts are cut, not validated (parse them).
 */
export function appsArrayParts(text: string): string[] | null {
  const n = text.length;
  // A JSON object, and nothing after it but whitespace (checked at the end).
  let first = 0;
  while (first < n && isJsonSpace(text.charCodeAt(first))) first++;
  if (text.charCodeAt(first) !== 0x7b) return null;
  let end = -1;
  let depth = 0;
  let expectKey = false;
  let key: string | null = null;
  let appsValue = false;
  let inApps = false;
  let start = 0;
  let parts: string[] | null = null;
  let current: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: skip to its closing quote, the first one not escaped by an odd run of backslashes.
      const from = i;
      for (;;) {
        i = text.indexOf('"', i + 1);
        if (i < 0) return null;
        let slashes = 0;
        while (text.charCodeAt(i - 1 - slashes) === 0x5c) slashes++;
        if (slashes % 2 === 0) break;
      }
      if (depth === 1 && expectKey) {
        key = text.slice(from, i + 1);
        expectKey = false;
      }
    } else if (c === 0x7b || c === 0x5b) {
      // { or [
      depth++;
      if (depth === 1) expectKey = true;
      else if (depth === 2 && appsValue && c === 0x5b) {
        inApps = true;
        current = [];
        start = i + 1;
      }
    } else if (c === 0x7d || c === 0x5d) {
      // } or ]
      if (depth === 2 && inApps) {
        const last = jsonTrimmed(text, start, i);
        if (last !== '' || current.length > 0) current.push(last);
        parts = current;
        inApps = false;
        appsValue = false;
      }
      depth--;
      if (depth < 0) return null;
      if (depth === 0) {
        end = i;
        break;
      }
    } else if (c === 0x2c) {
      // ,
      if (depth === 1) {
        expectKey = true;
        appsValue = false;
      } else if (depth === 2 && inApps) {
        current.push(jsonTrimmed(text, start, i));
        start = i + 1;
      }
    } else if (c === 0x3a && depth === 1) {
      // : after a key. A later "apps" replaces an earlier one, as in JSON.parse.
      appsValue = key === '"apps"';
      if (appsValue) parts = null;
    }
  }
  if (end < 0) return null;
  for (let i = end + 1; i < n; i++) if (!isJsonSpace(text.charCodeAt(i))) return null;
  return parts;
}

/** text[from, to) without JSON whitespace around it (String#trim removes more than JSON allows). */
function jsonTrimmed(text: string, from: number, to: number): string {
  while (from < to && isJsonSpace(text.charCodeAt(from))) from++;
  while (to > from && isJsonSpace(text.charCodeAt(to - 1))) to--;
  return text.slice(from, to);
}

function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function uniqueIds(ids: readonly (string | null)[]): Set<string> | null {
  const set = new Set<string>();
  for (const id of ids) {
    if (id === null || set.has(id)) return null;
    set.add(id);
  }
  return set;
}

/**
 * The changes from `prev` to `next` (`apps` are next's parsed apps), or null when they cannot be said
 * by id (an app without an id, a duplicate id) or exceed the bounds.
 */
export function diffApps(
  prev: Pick<SerialisedApps, 'ids' | 'parts'>,
  next: Pick<SerialisedApps, 'ids' | 'parts'>,
  apps: readonly unknown[],
  limits: { maxApps?: number; maxBytes?: number } = {},
): Pick<SnapshotDelta, 'upsert' | 'remove' | 'order'> | null {
  const maxApps = limits.maxApps ?? DELTA_MAX_APPS;
  const maxBytes = limits.maxBytes ?? DELTA_MAX_BYTES;
  const prevIds = uniqueIds(prev.ids);
  const nextIds = uniqueIds(next.ids);
  if (!prevIds || !nextIds || apps.length !== next.parts.length) return null;
  const prevPart = new Map<string, string>();
  prev.ids.forEach((id, i) => prevPart.set(id as string, prev.parts[i]));
  const upsert: unknown[] = [];
  let bytes = 0;
  for (let i = 0; i < next.ids.length; i++) {
    if (prevPart.get(next.ids[i] as string) === next.parts[i]) continue;
    upsert.push(apps[i]);
    bytes += next.parts[i].length;
    if (upsert.length > maxApps || bytes > maxBytes) return null;
  }
  const remove = (prev.ids as string[]).filter((id) => !nextIds.has(id));
  if (upsert.length + remove.length > maxApps) return null;
  // The order applyDelta produces without help: the old one, minus removals, plus additions at the end.
  const implied = [...(prev.ids as string[]).filter((id) => nextIds.has(id)), ...(next.ids as string[]).filter((id) => !prevIds.has(id))];
  const same = implied.every((id, i) => id === next.ids[i]);
  if (same) return { upsert, remove };
  // The order lists every app: bounded like the rest, so a hint stays small (a worker refuses big ones).
  let orderBytes = 0;
  for (const id of next.ids as string[]) orderBytes += id.length + 3;
  return bytes + orderBytes > maxBytes ? null : { upsert, remove, order: next.ids as string[] };
}

/**
 * `prevApps` with the delta applied, or null when it does not fit them (an app without an id, an
 * order naming an app it does not have). Unchanged apps are the same objects as in `prevApps`.
 */
export function applyDelta(prevApps: readonly unknown[], delta: Pick<SnapshotDelta, 'upsert' | 'remove' | 'order'>): unknown[] | null {
  if (!Array.isArray(delta.upsert) || !Array.isArray(delta.remove)) return null;
  const byId = new Map<string, unknown>();
  const order: string[] = [];
  for (const a of prevApps) {
    const id = appId(a);
    if (id === null || byId.has(id)) return null;
    byId.set(id, a);
    order.push(id);
  }
  const removed = new Set(delta.remove);
  for (const id of removed) byId.delete(id);
  const added: string[] = [];
  for (const a of delta.upsert) {
    const id = appId(a);
    if (id === null) return null;
    if (!byId.has(id)) added.push(id);
    byId.set(id, a);
  }
  const ids = delta.order ?? [...order.filter((id) => !removed.has(id)), ...added];
  if (ids.length !== byId.size || new Set(ids).size !== ids.length) return null;
  const out: unknown[] = new Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    if (!byId.has(ids[i])) return null;
    out[i] = byId.get(ids[i]);
  }
  return out;
}
