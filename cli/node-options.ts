/**
 * The Node.js heap flags bamboo's long-running processes (api, worker) run with: the demo passes them
 * to its children, the systemd units and the Docker image set them in NODE_OPTIONS
 * (docs/deployment.md, "Memory").
 *
 * Why: the processes keep little (at 10,000 apps tens of MB of live heap), but each reconcile or
 * Marathon fetch at that size makes hundreds of MB of short-lived strings and arrays. With Node's
 * defaults V8 lets the old generation grow to four times what survived the last full collection
 * before it collects again, and the young generation grow to 16 MB semi-spaces, so the resident set
 * followed the garbage, not the data. An old-generation limit of 1 GB makes V8 grow the heap by 1.6x
 * instead of 4x, and 2 MB semi-spaces keep the young generation small; at 10,000 apps that cut the
 * worker's peak RSS by about half (docs/BENCHMARKS.md, "Memory"); the api's peak, the data of a full
 * Marathon fetch, stays. The limit is about ten times the live heap at 10,000 apps; raise it
 * (NODE_OPTIONS) for far larger fleets.
 */
export const MEMORY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--max-old-space-size=1024'];

/**
 * NODE_OPTIONS for a bamboo api or worker process: `current` with each memory flag added unless
 * `current` sets that option already (an operator's own value wins).
 */
export function withMemoryFlags(current: string | undefined): string {
  const have = (current ?? '').trim();
  const add = MEMORY_NODE_FLAGS.filter((f) => !have.split(/\s+/).some((o) => o.split('=')[0] === f.split('=')[0]));
  return [have, ...add].filter(Boolean).join(' ');
}
