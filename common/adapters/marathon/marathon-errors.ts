/**
 * Why a Marathon call failed: one reason word (usable as a metric name) on a MarathonError, and a
 * transport error (axios, node) mapped to its reason and a credential-free description.
 */

/** Why a Marathon call failed, one word, usable as a metric name. */
export type MarathonFailure =
  | 'timeout'
  | 'unreachable'
  | 'status'
  | 'html'
  | 'parse'
  | 'shape'
  | 'redirect'
  | 'idle'
  | 'not_event_stream'
  | 'aborted';

export class MarathonError extends Error {
  override name = 'MarathonError';
  constructor(
    readonly reason: MarathonFailure,
    message: string,
    /** The endpoint (redacted) that failed last. */
    readonly endpoint: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Maps a transport-level error (axios/node) to our reason. */
export function transportFailure(err: unknown): MarathonFailure {
  const e = err as { code?: string; name?: string; cause?: { name?: string } };
  if (e?.code === 'ECONNABORTED' || e?.code === 'ETIMEDOUT' || e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError') return 'timeout';
  if (e?.code === 'ERR_CANCELED') return 'timeout';
  return 'unreachable';
}

/** A short, credential-free description of a transport error. */
export function describeTransport(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e?.code ? `${e.code}` : (e?.message ?? 'error').split('\n')[0];
}
