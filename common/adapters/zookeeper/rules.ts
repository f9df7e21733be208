/**
 * Service records (per-app ACL rules) in ZooKeeper, exactly as Bamboo stored them, so an existing
 * Bamboo cluster's data works unchanged:
 * - one znode per app under `Bamboo.Zookeeper.Path`, named by Go's url.QueryEscape of the app id;
 * - V2 body `{"version":"2","config":{"Acl":"...", ...}}`; V1 body (raw ACL text) still readable.
 * Writes are conditional on the znode version (optimistic concurrency), so two api copies never
 * silently overwrite each other. The record version returned is the znode version.
 */
import type { ServiceRecord } from '../../core/model.js';
import { RulePaths } from './zk-paths.js';
import { Zk, type ZkWrite } from './zk.js';
import { queryUnescape } from './zk-paths.js';
import { ZkBadVersionError, ZkNodeExistsError, ZkNoNodeError } from './zk-errors.js';

export interface StoredRecord {
  record: ServiceRecord;
  /** The znode version: the ETag of this record. */
  version: number;
  /** 1 or 2: the on-disk format it was read from. */
  format: 1 | 2;
}

export class RuleConflictError extends Error {
  override name = 'RuleConflictError';
  constructor(message: string, readonly current: StoredRecord | null) {
    super(message);
  }
}
export class RuleNotFoundError extends Error {
  override name = 'RuleNotFoundError';
}

/** Parses a znode body the way Bamboo did: V2 JSON first, else V1 raw ACL text. */
export function parseRecord(id: string, body: Buffer): { record: ServiceRecord; format: 1 | 2 } {
  const text = body.toString('utf8');
  try {
    const json = JSON.parse(text) as { version?: unknown; config?: unknown };
    if (json && typeof json === 'object' && json.version === '2') {
      const config: Record<string, string> = {};
      if (json.config && typeof json.config === 'object') {
        for (const [k, v] of Object.entries(json.config as Record<string, unknown>)) {
          if (typeof v === 'string') config[k] = v;
        }
      }
      return { record: { Id: id, Acl: config.Acl ?? '', Config: config }, format: 2 };
    }
  } catch {
    /* not JSON: a V1 record */
  }
  return { record: { Id: id, Acl: text, Config: { Acl: text } }, format: 1 };
}

/** The V2 body Bamboo wrote: Config plus Acl under config.Acl (keys sorted for stable bytes). */
export function serializeRecord(record: ServiceRecord): Buffer {
  const config: Record<string, string> = {};
  const merged: Record<string, string> = { ...record.Config };
  if (record.Acl !== '') merged.Acl = record.Acl;
  for (const k of Object.keys(merged).sort()) config[k] = merged[k];
  return Buffer.from(JSON.stringify({ version: '2', config }));
}

/**
 * A write that records a rule change (the audit entry, api/audit.ts), given what the record was and
 * what it becomes. It joins the change's transaction: the change and its note are stored together or
 * not at all. With a note, writes are conditional on the version read (retried when another write came
 * between), so `before` is exactly what the change replaced. `restore`, when given, creates what the
 * note's write needs (its parent node): the store calls it when a transaction fails for a missing
 * node, before it retries, so the note's owner need not check for it before every write.
 */
export type ChangeNote = ((before: StoredRecord | null, after: StoredRecord | null) => ZkWrite) & { restore?: () => Promise<void> };

export class RuleStore {
  readonly paths: RulePaths;
  constructor(
    private readonly zk: Zk,
    /** Bamboo.Zookeeper.Path */
    readonly basePath: string,
  ) {
    this.paths = new RulePaths(basePath);
  }

  nodePath(id: string): string {
    return this.paths.rule(id);
  }

  /** Creates the base path once; later writes skip the round trips (re-created if it vanishes). */
  async ensureBase(): Promise<void> {
    if (this.baseReady) return;
    await this.zk.mkdirp(this.basePath);
    this.baseReady = true;
  }

  private baseReady = false;

  /** Every record, read in parallel. Unparsable node names are skipped (Bamboo did the same). */
  async list(): Promise<Map<string, StoredRecord>> {
    const names = await this.zk.children(this.basePath);
    const out = new Map<string, StoredRecord>();
    await Promise.all(
      names.map(async (name) => {
        let id: string;
        try {
          id = queryUnescape(name);
        } catch {
          return;
        }
        const node = await this.zk.get(this.paths.node(name));
        if (!node) return; // deleted between the two reads
        const { record, format } = parseRecord(id, node.data);
        out.set(id, { record, version: node.stat.version, format });
      }),
    );
    return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  async get(id: string): Promise<StoredRecord | null> {
    const node = await this.zk.get(this.nodePath(id));
    if (!node) return null;
    const { record, format } = parseRecord(id, node.data);
    return { record, version: node.stat.version, format };
  }

  /** Creates a new record; RuleConflictError when one exists. */
  async create(record: ServiceRecord, note?: ChangeNote): Promise<StoredRecord> {
    await this.ensureBase();
    const stored: StoredRecord = { record: normalise(record), version: 0, format: 2 };
    const ops: ZkWrite[] = [{ op: 'create', path: this.nodePath(record.Id), data: serializeRecord(record) }, this.touchParent()];
    if (note) ops.push(note(null, stored));
    try {
      await this.zk.multi(ops).catch(async (err: unknown) => {
        if (!(err instanceof ZkNoNodeError)) throw err;
        this.baseReady = false; // the base path (or the note's parent) was removed since: create it again, once
        await this.ensureBase();
        await note?.restore?.();
        return this.zk.multi(ops);
      });
    } catch (err) {
      if (err instanceof ZkNodeExistsError) throw new RuleConflictError(`a rule for ${record.Id} already exists`, await this.get(record.Id));
      throw err;
    }
    return stored;
  }

  /**
   * Creates or replaces a record. With `ifVersion` the write only happens if the stored version is
   * still that one (-1 in If-Match terms is "any"); otherwise RuleConflictError with the current value.
   * Returns the stored record and whether it was created.
   */
  async put(record: ServiceRecord, ifVersion?: number, note?: ChangeNote): Promise<{ stored: StoredRecord; created: boolean }> {
    await this.ensureBase();
    const path = this.nodePath(record.Id);
    const body = serializeRecord(record);
    if (ifVersion === undefined) {
      // Unconditional (Bamboo's POST): try to create first, which is one round trip for a new rule
      // instead of a read and a write; an existing rule is then replaced as below.
      // A noted write carries its note into that same transaction (it records a creation).
      const stored: StoredRecord = { record: normalise(record), version: 0, format: 2 };
      try {
        await this.zk.multi([{ op: 'create', path, data: body }, this.touchParent(), ...(note ? [note(null, stored)] : [])]);
        return { stored, created: true };
      } catch (err) {
        if (!(err instanceof ZkNodeExistsError) && !(err instanceof ZkNoNodeError)) throw err;
        if (err instanceof ZkNoNodeError) {
          this.baseReady = false; // the base path (or the note's parent) was removed since: create it again
          await this.ensureBase();
          await note?.restore?.();
        }
      }
    }
    // A noted write without If-Match is conditional too (see ChangeNote): give it more rounds against
    // concurrent writers before answering a conflict the client did not ask for.
    for (let attempt = 0; attempt < (note && ifVersion === undefined ? 20 : 5); attempt++) {
      const current = await this.get(record.Id);
      if (ifVersion !== undefined && (current === null || current.version !== ifVersion)) {
        throw new RuleConflictError(`the rule for ${record.Id} changed since version ${ifVersion}`, current);
      }
      try {
        if (current === null) {
          const stored: StoredRecord = { record: normalise(record), version: 0, format: 2 };
          await this.zk.multi([{ op: 'create', path, data: body }, this.touchParent(), ...(note ? [note(null, stored)] : [])]);
          return { stored, created: true };
        }
        // Without If-Match the last writer wins (Bamboo's semantics); with it, only the version read.
        // A noted change is always conditional on the version read (and retried below when another
        // write came between), so its note names exactly the record it replaced.
        const exact = ifVersion !== undefined || note !== undefined;
        const after: StoredRecord = { record: normalise(record), version: current.version + 1, format: 2 };
        const [version] = await this.zk.multi([{ op: 'set', path, data: body, version: exact ? current.version : -1 }, this.touchParent(), ...(note ? [note(current, after)] : [])]);
        return { stored: { ...after, version }, created: false };
      } catch (err) {
        // Someone else created or changed it between our read and write (or removed it): re-read and decide again.
        if (err instanceof ZkNodeExistsError || err instanceof ZkBadVersionError || err instanceof ZkNoNodeError) {
          if (err instanceof ZkNoNodeError && current === null) {
            this.baseReady = false; // the base path was removed since: create it again
            await this.ensureBase();
          }
          if (err instanceof ZkNoNodeError) await note?.restore?.();
          if (ifVersion !== undefined) throw new RuleConflictError(`the rule for ${record.Id} changed concurrently`, await this.get(record.Id));
          continue;
        }
        throw err;
      }
    }
    throw new RuleConflictError(`the rule for ${record.Id} kept changing; retry`, await this.get(record.Id));
  }

  /** Deletes a record; RuleNotFoundError if absent, RuleConflictError if `ifVersion` is stale. */
  async delete(id: string, ifVersion?: number, note?: ChangeNote): Promise<void> {
    if (note) return this.deleteNoted(id, ifVersion, note);
    try {
      await this.zk.multi([{ op: 'remove', path: this.nodePath(id), version: ifVersion ?? -1 }, this.touchParent()]);
    } catch (err) {
      if (err instanceof ZkNoNodeError) throw new RuleNotFoundError(`no rule for ${id}`);
      if (err instanceof ZkBadVersionError) throw new RuleConflictError(`the rule for ${id} changed since version ${ifVersion}`, await this.get(id));
      throw err;
    }
  }

  /** A delete with its note: the record is read first, so the note holds what was deleted. */
  private async deleteNoted(id: string, ifVersion: number | undefined, note: ChangeNote): Promise<void> {
    for (let attempt = 0; attempt < (ifVersion === undefined ? 20 : 5); attempt++) {
      const current = await this.get(id);
      if (current === null) throw new RuleNotFoundError(`no rule for ${id}`);
      if (ifVersion !== undefined && current.version !== ifVersion) throw new RuleConflictError(`the rule for ${id} changed since version ${ifVersion}`, current);
      try {
        await this.zk.multi([{ op: 'remove', path: this.nodePath(id), version: current.version }, this.touchParent(), note(current, null)]);
        return;
      } catch (err) {
        // Changed or removed between our read and the delete: decide again on what is there now.
        if (err instanceof ZkBadVersionError || err instanceof ZkNoNodeError) {
          if (err instanceof ZkNoNodeError) await note.restore?.();
          if (ifVersion !== undefined) throw new RuleConflictError(`the rule for ${id} changed concurrently`, await this.get(id));
          continue;
        }
        throw err;
      }
    }
    throw new RuleConflictError(`the rule for ${id} kept changing; retry`, await this.get(id));
  }

  /**
   * Bamboo set the parent's data after each change so its watchers fire; we keep doing it for mixed
   * fleets, in the same transaction as the change (one round trip, and never one without the other).
   */
  private touchParent(): ZkWrite {
    return { op: 'set', path: this.basePath, data: Buffer.alloc(0) };
  }
}

function normalise(record: ServiceRecord): ServiceRecord {
  const config = { ...record.Config };
  if (record.Acl !== '') config.Acl = record.Acl;
  return { Id: record.Id, Acl: record.Acl, Config: config };
}
