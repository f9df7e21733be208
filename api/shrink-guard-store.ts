/**
 * Where the shrink guard's record lives: one small JSON document in a ZooKeeper znode, written
 * conditionally on its version and watched; or in memory for a single process (tests, the intake's
 * default).
 */
import { type Zk } from '../common/adapters/zookeeper/zk.js';
import { ZkBadVersionError, ZkNodeExistsError, ZkNoNodeError } from '../common/adapters/zookeeper/zk-errors.js';
import { EMPTY_RECORD, type GuardRecord } from './shrink-policy.js';

/** Storage of the guard record: ZooKeeper for the api, memory for a single process (tests). */
export interface GuardRecordStore {
  /** The record and its version (-1 when there is none); `onChange` fires once when it changes. */
  read(onChange?: () => void): Promise<{ record: GuardRecord; version: number }>;
  /** Writes the record if its version is still `version` (-1: create): its new version, or null on a conflict. */
  write(record: GuardRecord, version: number): Promise<number | null>;
}

function parseRecord(data: Buffer): GuardRecord {
  try {
    const r = JSON.parse(data.toString()) as Partial<GuardRecord>;
    return { held: r.held ?? null, peak: r.peak ?? null };
  } catch {
    return EMPTY_RECORD; // a damaged record is replaced by the next write
  }
}

/** The record in the znode `path` (one small JSON document). */
export function zkGuardStore(zk: Zk, path: string): GuardRecordStore {
  return {
    async read(onChange) {
      const node = await zk.get(path, onChange);
      if (!node) {
        if (onChange) await zk.exists(path, onChange);
        return { record: EMPTY_RECORD, version: -1 };
      }
      return { record: parseRecord(node.data), version: node.stat.version };
    },
    async write(record, version) {
      const data = Buffer.from(JSON.stringify(record));
      try {
        if (version >= 0) return await zk.set(path, data, version);
        try {
          await zk.create(path, data);
        } catch (err) {
          if (!(err instanceof ZkNoNodeError)) throw err;
          await zk.mkdirp(path.slice(0, path.lastIndexOf('/')));
          await zk.create(path, data);
        }
        return 0;
      } catch (err) {
        if (err instanceof ZkBadVersionError || err instanceof ZkNodeExistsError || (version >= 0 && err instanceof ZkNoNodeError)) return null;
        throw err;
      }
    },
  };
}

/** A record in memory: one process only (the intake's default when no store is given). */
export function memoryGuardStore(): GuardRecordStore {
  let record = EMPTY_RECORD;
  let version = -1;
  return {
    async read() {
      return { record, version };
    },
    async write(r, v) {
      if (v !== version) return null;
      record = r;
      return ++version;
    },
  };
}
