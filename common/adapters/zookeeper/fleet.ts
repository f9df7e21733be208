/**
 * The fleet that remembers: what each worker last ran, kept in ZooKeeper after the worker stops.
 *
 * A worker's status record (`<Control>/workers/<name>`) is ephemeral: it vanishes with the worker's
 * session, so on its own a stopped worker simply disappears. Each worker therefore also keeps a small
 * persistent record, `<Control>/workers-seen/<name>` (`SeenRecord`: what it runs, no per-app data),
 * rewritten at most every `Fleet.SeenWriteIntervalMs`, after each config it applies and when it stops.
 * The api reads both (api/fleet.ts): a name with a status record is live or stale, a name with only a
 * last-seen record is gone, until the record is older than `Fleet.GoneRetentionMs` and removed.
 *
 * Ages are measured from ZooKeeper's modification time of the nodes (one clock for the whole fleet,
 * whatever a worker's own clock says). Names are escaped in paths (zk-paths.ts) and unescaped here.
 */
import type { WorkerStatus } from './registrations.js';
import { type Zk } from './zk.js';
import type { ZkStat } from './zk-convert.js';
import { queryUnescape } from './zk-paths.js';
import { ZkBadVersionError, ZkNoNodeError, ZkNodeExistsError } from './zk-errors.js';
import { childPath, type ControlPaths } from './zk-paths.js';

/** What a worker last ran, as remembered after it stops (a few hundred bytes, whatever the app count). */
export interface SeenRecord {
  name: string;
  host: string;
  mode: string;
  startedAt: number;
  /** The worker's clock when written; ages use the node's ZooKeeper mtime instead. */
  at: number;
  /** The worker's clock when it stopped cleanly; absent: it was running when this was written. */
  stoppedAt?: number;
  snapshotVersion: number;
  configHash: string;
  lastOutcome: string;
  lastReason: string;
  lastOutcomeAt: number;
  lastAppliedAt: number;
  /** How many apps were quarantined (the ids are in the live record only). */
  quarantined: number;
}

/** The last-seen record of a status record (no per-app data: rule versions and ids are left out). */
export function seenRecord(s: WorkerStatus, at: number, stoppedAt?: number): SeenRecord {
  return {
    name: s.name,
    host: s.host,
    mode: s.mode,
    startedAt: s.startedAt,
    at,
    ...(stoppedAt !== undefined ? { stoppedAt } : {}),
    snapshotVersion: s.snapshotVersion,
    configHash: s.configHash,
    lastOutcome: s.lastOutcome,
    lastReason: s.lastReason.slice(0, 500),
    lastOutcomeAt: s.lastOutcomeAt,
    lastAppliedAt: s.lastAppliedAt,
    quarantined: s.quarantined.length,
  };
}

/** A record read back: only the known fields, of the right types (anything else is dropped). */
export function parseSeenRecord(data: Buffer): SeenRecord | null {
  if (data.length > 64 * 1024) return null;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return null;
  const str = (k: string) => (typeof raw[k] === 'string' ? (raw[k] as string).slice(0, 500) : '');
  const num = (k: string) => (typeof raw[k] === 'number' && Number.isFinite(raw[k]) ? (raw[k] as number) : 0);
  return {
    name: str('name'),
    host: str('host'),
    mode: str('mode'),
    startedAt: num('startedAt'),
    at: num('at'),
    ...(typeof raw.stoppedAt === 'number' && Number.isFinite(raw.stoppedAt) ? { stoppedAt: raw.stoppedAt } : {}),
    snapshotVersion: typeof raw.snapshotVersion === 'number' ? raw.snapshotVersion : -1,
    configHash: str('configHash'),
    lastOutcome: str('lastOutcome'),
    lastReason: str('lastReason'),
    lastOutcomeAt: num('lastOutcomeAt'),
    lastAppliedAt: num('lastAppliedAt'),
    quarantined: num('quarantined'),
  };
}

/** One node of either list: its (escaped) node name, the worker name, its stat, its record when read. */
export interface FleetNode<T> {
  node: string;
  name: string;
  stat: ZkStat;
  record: T | null;
}

export interface FleetListing {
  /** Status records (ephemeral): workers with a session. */
  live: FleetNode<WorkerStatus>[];
  /** Last-seen records (persistent). */
  seen: FleetNode<SeenRecord>[];
}

function unescapeName(node: string): string {
  try {
    return queryUnescape(node);
  } catch {
    return node;
  }
}

/** Reads and writes the two lists. Every method throws ZooKeeper's errors (ZkUnavailableError) as they come. */
export class FleetStore {
  constructor(
    private readonly zk: Zk,
    private readonly paths: ControlPaths,
  ) {}

  /** Writes a worker's last-seen record, creating it (and its parent) when missing. */
  async writeSeen(name: string, record: SeenRecord): Promise<void> {
    const path = this.paths.workerSeen(name);
    const data = Buffer.from(JSON.stringify(record));
    try {
      await this.zk.set(path, data);
      return;
    } catch (err) {
      if (!(err instanceof ZkNoNodeError)) throw err;
    }
    await this.zk.mkdirp(this.paths.workersSeen);
    try {
      await this.zk.create(path, data);
    } catch (err) {
      // Created meanwhile (a previous session's write that was still on its way): write over it.
      if (!(err instanceof ZkNodeExistsError)) throw err;
      await this.zk.set(path, data);
    }
  }

  /**
   * Both lists. `withRecords: false` reads only the stats (what the periodic check needs); a node
   * removed between the listing and its read is left out.
   */
  async list(withRecords: boolean): Promise<FleetListing> {
    const [live, seen] = await Promise.all([
      this.read(this.paths.workers, withRecords, (d) => {
        try {
          return JSON.parse(d.toString('utf8')) as WorkerStatus;
        } catch {
          return null;
        }
      }),
      this.read(this.paths.workersSeen, withRecords, parseSeenRecord),
    ]);
    return { live, seen };
  }

  /**
   * Removes a last-seen record if it is still the version read (a worker of that name that came back
   * and rewrote it keeps it). True when removed; false when it changed or was removed meanwhile,
   * e.g. by another api copy.
   */
  async prune(node: string, version: number): Promise<boolean> {
    try {
      await this.zk.remove(childPath(this.paths.workersSeen, node), version);
      return true;
    } catch (err) {
      if (err instanceof ZkNoNodeError || err instanceof ZkBadVersionError) return false;
      throw err;
    }
  }

  private async read<T>(parent: string, withRecords: boolean, parse: (d: Buffer) => T | null): Promise<FleetNode<T>[]> {
    const names = await this.zk.children(parent);
    const nodes = await Promise.all(
      names.map(async (node): Promise<FleetNode<T> | null> => {
        const path = childPath(parent, node);
        if (!withRecords) {
          const stat = await this.zk.exists(path);
          return stat ? { node, name: unescapeName(node), stat, record: null } : null;
        }
        const got = await this.zk.get(path);
        return got ? { node, name: unescapeName(node), stat: got.stat, record: parse(got.data) } : null;
      }),
    );
    return nodes.filter((n): n is FleetNode<T> => n !== null);
  }
}
