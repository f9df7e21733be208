/**
 * ZooKeeper's failures as our error classes: what callers branch on (unavailable, no node, node
 * exists, bad version, no auth), mapped from node-zookeeper-client's codes.
 */
import zookeeper from 'node-zookeeper-client';

const { Exception } = zookeeper;

export class ZkUnavailableError extends Error {
  override name = 'ZkUnavailableError';
  readonly code = 'ZK_UNAVAILABLE';
  constructor(
    message: string,
    /**
     * True when the request had been sent and its answer was lost (connection loss, timeout): a write
     * may then have been applied. False when nothing was sent (not connected).
     */
    readonly inFlight = false,
  ) {
    super(message);
  }
}
export class ZkNoNodeError extends Error {
  override name = 'ZkNoNodeError';
}
export class ZkNodeExistsError extends Error {
  override name = 'ZkNodeExistsError';
}
export class ZkBadVersionError extends Error {
  override name = 'ZkBadVersionError';
}

/** True for ZooKeeper's NO_AUTH: the node's ACL does not let this session do that. */
export function isNoAuth(err: unknown): boolean {
  return (err as { code?: number } | null)?.code === Exception.NO_AUTH;
}

/** Callback-style node-zookeeper-client errors mapped to our error classes. */
export function mapError(err: unknown, path: string): Error {
  const e = err as { code?: number; name?: string; message?: string };
  switch (e?.code) {
    case Exception.NO_NODE:
      return new ZkNoNodeError(`no node ${path}`);
    case Exception.NODE_EXISTS:
      return new ZkNodeExistsError(`node exists ${path}`);
    case Exception.BAD_VERSION:
      return new ZkBadVersionError(`bad version ${path}`);
    case Exception.CONNECTION_LOSS:
    case Exception.SESSION_EXPIRED:
    case Exception.OPERATION_TIMEOUT:
      return new ZkUnavailableError(`ZooKeeper unavailable (${e.name ?? 'connection loss'})`, true);
    default:
      return err instanceof Error ? err : new Error(String(err));
  }
}
