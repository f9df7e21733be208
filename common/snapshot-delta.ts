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
 * Pure functions; apps are compared by their JSON text, which the api has at hand anyway (it is what it
 * stores).
 */

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
 * Bounds of a delta: above them a worker reads ZooKeeper instead (a big deployment, the first fetch).
 * The bytes bound also bounds memory: ZeroMQ queues up to its high-water mark of messages for a
 * subscriber that stopped reading (common/bus.ts), so 1,000 x 64 kB at worst. A typical app with its
 * tasks is 1-3 kB of JSON.
 */
export const DELTA_MAX_APPS = 100;
export const DELTA_MAX_BYTES = 64 * 1024;

/** An app's string `id`, or null. */
function appId(a: unknown): string | null {
  const id = a !== null && typeof a === 'object' ? (a as { id?: unknown }).id : undefined;
  return typeof id === 'string' ? id : null;
}

export function serialiseApps(apps: readonly unknown[]): SerialisedApps {
  const ids: (string | null)[] = new Array(apps.length);
  const parts: string[] = new Array(apps.length);
  for (let i = 0; i < apps.length; i++) {
    // JSON.stringify writes null for array elements it cannot serialise; so must the parts.
    parts[i] = JSON.stringify(apps[i]) ?? 'null';
    ids[i] = appId(apps[i]);
  }
  return { ids, parts, json: `[${parts.join(',')}]` };
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
  return same ? { upsert, remove } : { upsert, remove, order: next.ids as string[] };
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
