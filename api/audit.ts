/**
 * The audit trail of rule writes: who changed which app's rule, from where, when, and what it was
 * before and after (docs/api.md, `GET /api/audit`).
 *
 * Each entry is a persistent sequential node under `<Control>/audit` (common/adapters/zookeeper/zk-paths.ts), written in
 * the same ZooKeeper transaction as the rule change it records (common/adapters/zookeeper/rules.ts `ChangeNote`): a write
 * is never stored without its entry, and a refused or failed write leaves none. The node's name is
 * `<at ms>-<credential>-<app key>-<sequence>` (the app key: 12 hex digits of the app id's sha256), so
 * order, age, paging and the filters need no reads: only the entries answered are read. Entries never
 * change once written, so every copy keeps those it has read in memory and reads each one at most once.
 *
 * Retention (`Audit.MaxEntries`, `Audit.MaxAgeHours`): entries past either bound are never shown and
 * are deleted, oldest first, by whichever copy prunes first (after its writes, and every minute).
 * Copies race freely: an entry deleted by another copy is simply gone.
 */
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../common/core/errors.js';
import type { Logger } from '../common/log.js';
import { LatestWins } from '../common/pacing.js';
import type { ServiceRecord } from '../common/core/model.js';
import { serializeRecord, type ChangeNote, type StoredRecord } from '../common/adapters/zookeeper/rules.js';
import { ControlPaths } from '../common/adapters/zookeeper/zk-paths.js';
import { type Zk } from '../common/adapters/zookeeper/zk.js';
import { ZkNoNodeError } from '../common/adapters/zookeeper/zk-errors.js';
import type { ClientAddress } from './client-address.js';

export type AuditOp = 'create' | 'update' | 'delete' | 'revert';

/** One audit entry as `GET /api/audit` answers it. */
export interface AuditEntry {
  /** The entry's node name, `<at ms>-<who>-<app key>-<10-digit sequence>`; newer entries have larger sequences. */
  id: string;
  /** When the api copy wrote it (ms since the epoch, that copy's clock). */
  at: number;
  /** The credential's name, or `anonymous`. */
  who: string;
  /** The address the request came from (the TCP peer). */
  from: string;
  /** The client a trusted proxy (`Bamboo.TrustedProxies`) forwarded for, or null. */
  forwardedFor: string | null;
  op: AuditOp;
  appId: string;
  /** The record's version before (null: there was none) and after (null: deleted). */
  versionBefore: number | null;
  versionAfter: number | null;
  before: ServiceRecord | null;
  after: ServiceRecord | null;
  /** For a revert: the entry it reverted. */
  revertOf: string | null;
  /** Config values were left out to keep the entry small (only the ACL is kept). */
  truncated?: true;
}

/** Who wrote, from where: the request's part of an entry. */
export interface WriteOrigin {
  who: string;
  from: string;
  forwardedFor: string | null;
  revertOf: string | null;
}

export interface AuditQuery {
  app?: string;
  credential?: string;
  since?: number;
  until?: number;
  limit: number;
  cursor?: string;
}

export interface AuditPage {
  entries: AuditEntry[];
  /** Pass as `cursor` for the next (older) page; null when this is the last. */
  next: string | null;
}

export interface AuditOptions {
  maxEntries: number;
  maxAgeMs: number;
  /** Wall clock for stamps and ages (default Date.now). */
  now?: () => number;
  log: Logger;
  /** How often every copy prunes, writes or not (default one minute). */
  pruneEveryMs?: number;
}

/** An entry's id (its node name). */
export const AUDIT_ID = /^(\d{1,15})-([A-Za-z0-9_.-]{1,64})-([0-9a-f]{12})-(\d{10})$/;
/**
 * The size entries are kept within: ZooKeeper holds every node in memory, so the trail costs about
 * `Audit.MaxEntries` times this at most (80 MB at the default), whatever rule writers send. Two
 * records of a typical size fit many times over; larger ones are kept as their ACLs (`truncated`).
 */
export const MAX_ENTRY_BYTES = 8 * 1024;
/** What a truncated entry keeps of each ACL (the api accepts at most 1,024 characters). */
const MAX_KEPT_ACL = 1024;
/** ZooKeeper reads or deletes in flight at once. */
const PARALLEL = 32;
/** Least time between two prune passes of one copy (each lists every entry): a burst of writes costs one or two. */
const PRUNE_INTERVAL_MS = 2000;

interface Name {
  name: string;
  at: number;
  who: string;
  app: string;
  seq: number;
}

function parseName(name: string): Name | null {
  const m = AUDIT_ID.exec(name);
  return m ? { name, at: Number(m[1]), who: m[2], app: m[3], seq: Number(m[4]) } : null;
}

/** The app's part of an entry's name. */
export function appKey(appId: string): string {
  return createHash('sha256').update(appId).digest('hex').slice(0, 12);
}

/** A credential's name as it may stand in a node name (configured names always can). */
function nameSafe(who: string): string {
  const s = who.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
  return s || '_';
}

export class AuditLog {
  readonly paths: ControlPaths;
  private readonly now: () => number;
  /** Entries read so far, by name (they never change; dropped when pruned). */
  private readonly cache = new Map<string, AuditEntry>();
  private readonly pruner: LatestWins;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly zk: Zk,
    controlRoot: string,
    private readonly opts: AuditOptions,
  ) {
    this.paths = new ControlPaths(controlRoot);
    this.now = opts.now ?? Date.now;
    // One pass at a time, at most one every PRUNE_INTERVAL_MS, and one more after the last request.
    this.pruner = new LatestWins({
      run: async () => {
        await this.prune();
      },
      debounceMs: 0,
      minIntervalMs: PRUNE_INTERVAL_MS,
      idleWhen: 'started',
      debounceAfter: 'request',
      onError: (err) => opts.log.warn({ err }, 'audit prune failed'),
    });
  }

  /** Prunes every `pruneEveryMs`, so age retention holds without writes. */
  start(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => this.pruner.request('timer'), this.opts.pruneEveryMs ?? 60000);
    this.timer.unref();
  }

  /** Stops pruning; resolves when a pass in flight has ended. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.pruner.close();
  }

  /**
   * Makes sure `<Control>/audit` exists before a write: read once per copy (created when missing),
   * then taken as there; a note's `restore` creates it again when a write finds it gone (an operator
   * removed the tree), so no write fails for want of it and none pays a read for it.
   */
  async ensure(): Promise<void> {
    if (this.parentReady) return;
    if (!(await this.zk.exists(this.paths.audit))) await this.zk.mkdirp(this.paths.audit);
    this.parentReady = true;
  }

  private parentReady = false;

  /** The note a rule write carries: the entry, built from what the record was and becomes. */
  note(origin: WriteOrigin): ChangeNote {
    const note: ChangeNote = (before, after) => {
      const at = this.now();
      const entry = toStored(at, origin, before, after);
      let data = Buffer.from(JSON.stringify(entry));
      if (data.length > MAX_ENTRY_BYTES) {
        const aclOnly = (r: ServiceRecord | null) => (r ? { Id: r.Id, Acl: r.Acl.slice(0, MAX_KEPT_ACL), Config: {} } : null);
        data = Buffer.from(JSON.stringify({ ...entry, before: aclOnly(entry.before), after: aclOnly(entry.after), truncated: true }));
      }
      return { op: 'create', path: this.paths.auditEntryPrefix(at, nameSafe(entry.who), appKey(entry.appId)), data, sequential: true };
    };
    note.restore = async () => {
      this.parentReady = false;
      await this.ensure();
    };
    return note;
  }

  /** After a write: prune in the background (one pass at a time). */
  written(): void {
    this.pruner.request('write');
  }

  /** The entries retention still keeps, newest first, by name only. */
  private async retained(): Promise<Name[]> {
    const names = (await this.zk.children(this.paths.audit)).map(parseName).filter((n): n is Name => n !== null);
    const present = new Set(names.map((n) => n.name));
    for (const k of this.cache.keys()) if (!present.has(k)) this.cache.delete(k);
    const oldest = this.now() - this.opts.maxAgeMs;
    return names
      .sort((a, b) => b.seq - a.seq)
      .slice(0, this.opts.maxEntries)
      .filter((n) => n.at >= oldest);
  }

  /** One entry by id, or null (unknown, pruned or past retention). */
  async get(id: string): Promise<AuditEntry | null> {
    const n = parseName(id);
    if (!n) return null;
    if (!(await this.retained()).some((r) => r.name === id)) return null;
    return this.read(n);
  }

  private async read(n: Name): Promise<AuditEntry | null> {
    const cached = this.cache.get(n.name);
    if (cached) return cached;
    const node = await this.zk.get(this.paths.auditEntry(n.name));
    if (!node) return null;
    let entry: AuditEntry;
    try {
      entry = fromStored(n.name, JSON.parse(node.data.toString('utf8')) as StoredEntry);
    } catch (err) {
      this.opts.log.warn({ err, entry: n.name }, 'unreadable audit entry skipped');
      return null;
    }
    this.cache.set(n.name, entry);
    return entry;
  }

  /** A page of entries, newest first, that pass the filters. */
  async list(q: AuditQuery): Promise<AuditPage> {
    const cursor = q.cursor === undefined ? null : parseName(q.cursor);
    const app = q.app === undefined ? undefined : appKey(q.app);
    const who = q.credential === undefined ? undefined : nameSafe(q.credential);
    const names = (await this.retained()).filter(
      (n) =>
        (cursor === null || n.seq < cursor.seq) &&
        (q.since === undefined || n.at >= q.since) &&
        (q.until === undefined || n.at <= q.until) &&
        (app === undefined || n.app === app) &&
        (who === undefined || n.who === who),
    );
    const entries: AuditEntry[] = [];
    let i = 0;
    while (i < names.length && entries.length < q.limit) {
      const batch = names.slice(i, i + PARALLEL);
      i += batch.length;
      const read = await Promise.all(batch.map((n) => this.read(n)));
      for (const e of read) {
        if (!e || (q.app !== undefined && e.appId !== q.app) || (q.credential !== undefined && e.who !== q.credential)) continue;
        entries.push(e);
        if (entries.length === q.limit) break;
      }
    }
    const last = entries[entries.length - 1];
    const more = entries.length === q.limit && names.some((n) => n.seq < parseName(last.id)!.seq);
    return { entries, next: more ? last.id : null };
  }

  /** Deletes the entries past retention (count, then age), oldest first; returns how many. */
  async prune(): Promise<number> {
    const names = (await this.zk.children(this.paths.audit))
      .map(parseName)
      .filter((n): n is Name => n !== null)
      .sort((a, b) => a.seq - b.seq);
    const excess = names.length - this.opts.maxEntries;
    const oldest = this.now() - this.opts.maxAgeMs;
    const victims = names.filter((n, i) => i < excess || n.at < oldest);
    for (let i = 0; i < victims.length; i += PARALLEL) {
      await Promise.all(
        victims.slice(i, i + PARALLEL).map(async (n) => {
          try {
            await this.zk.remove(this.paths.auditEntry(n.name));
          } catch (err) {
            if (!(err instanceof ZkNoNodeError)) throw err; // another copy pruned it first
          }
          this.cache.delete(n.name);
        }),
      );
    }
    if (victims.length > 0) this.opts.log.debug({ pruned: victims.length }, 'audit entries pruned');
    return victims.length;
  }
}

/** What a node holds: the entry without its id (the node's name). */
type StoredEntry = Omit<AuditEntry, 'id'> & { v: 1 };

function toStored(at: number, origin: WriteOrigin, before: StoredRecord | null, after: StoredRecord | null): StoredEntry {
  const op: AuditOp = origin.revertOf !== null ? 'revert' : before === null ? 'create' : after === null ? 'delete' : 'update';
  return {
    v: 1,
    at,
    who: origin.who,
    from: origin.from,
    forwardedFor: origin.forwardedFor,
    op,
    appId: (after ?? before)!.record.Id,
    versionBefore: before?.version ?? null,
    versionAfter: after?.version ?? null,
    before: before?.record ?? null,
    after: after?.record ?? null,
    revertOf: origin.revertOf,
  };
}

function fromStored(id: string, s: StoredEntry): AuditEntry {
  const record = (r: unknown): ServiceRecord | null => {
    if (!r || typeof r !== 'object') return null;
    const o = r as ServiceRecord;
    return { Id: String(o.Id), Acl: String(o.Acl ?? ''), Config: o.Config && typeof o.Config === 'object' ? o.Config : {} };
  };
  const version = (v: unknown) => (typeof v === 'number' ? v : null);
  return {
    id,
    at: Number(s.at),
    who: String(s.who),
    from: String(s.from),
    forwardedFor: typeof s.forwardedFor === 'string' ? s.forwardedFor : null,
    op: s.op,
    appId: String(s.appId),
    versionBefore: version(s.versionBefore),
    versionAfter: version(s.versionAfter),
    before: record(s.before),
    after: record(s.after),
    revertOf: typeof s.revertOf === 'string' ? s.revertOf : null,
    ...(s.truncated ? { truncated: true as const } : {}),
  };
}

/** True when two records would be stored as the same bytes. */
export function sameRecord(a: ServiceRecord, b: ServiceRecord): boolean {
  return a.Id === b.Id && serializeRecord(a).equals(serializeRecord(b));
}

/** The `Bamboo-Revert-Of` header of a write: the audit entry it reverts, or null. */
export const REVERT_HEADER = 'bamboo-revert-of';

/**
 * The origin of a write request. With `Bamboo-Revert-Of: <id>` the write must put back exactly what
 * that entry's change replaced (`expected`: the record written, null for a delete), on the same app,
 * and be conditional (If-Match or If-None-Match), so a revert never overwrites a change it did not
 * see; otherwise a coded 400 (404 for an unknown entry).
 */
export async function writeOrigin(
  req: FastifyRequest,
  audit: Pick<AuditLog, 'get'>,
  address: Pick<ClientAddress, 'of'>,
  appId: string,
  expected: ServiceRecord | null,
): Promise<WriteOrigin> {
  const { from, forwardedFor } = address.of(req);
  const raw = req.headers[REVERT_HEADER];
  if (raw === undefined) return { who: req.credential, from, forwardedFor, revertOf: null };
  const id = String(raw).trim();
  if (!AUDIT_ID.test(id)) throw new ApiError('BAMBOO_INVALID_PARAMETER', 'Bamboo-Revert-Of must be the id of an audit entry, as GET /api/audit shows it');
  if (req.headers['if-match'] === undefined && req.headers['if-none-match'] === undefined) {
    throw new ApiError('BAMBOO_INVALID_PARAMETER', 'a revert must be conditional: send If-Match with the version you saw (or If-None-Match: * to re-create a deleted rule)');
  }
  const entry = await audit.get(id);
  if (!entry) throw new ApiError('BAMBOO_AUDIT_NOT_FOUND', `no audit entry ${id} (unknown, or pruned by Audit.MaxEntries / Audit.MaxAgeHours)`);
  if (entry.truncated) {
    throw new ApiError('BAMBOO_INVALID_PARAMETER', `audit entry ${id} kept only the ACLs of its records (they were too large), so it cannot be reverted exactly; write the record you want with a normal PUT`);
  }
  const restores = entry.before === null ? expected === null : expected !== null && sameRecord(expected, entry.before);
  if (entry.appId !== appId || !restores) {
    throw new ApiError(
      'BAMBOO_INVALID_PARAMETER',
      `this write does not revert audit entry ${id}: that entry changed ${entry.appId}, and reverting it ${entry.before === null ? 'deletes the rule' : 'writes back its "before" record exactly'}`,
    );
  }
  return { who: req.credential, from, forwardedFor, revertOf: id };
}
