/**
 * The records api copies and workers register in ZooKeeper: a publisher's addresses, a worker's status
 * (read back through ControlStore in snapshot.ts).
 */
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

/** One quarantined app on one worker: the worker's own record of it (worker/outcome.ts QuarantinedApp) and its status record's. */
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
