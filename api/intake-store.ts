/**
 * The intake's store step: a Marathon answer through the shrink guard, written on the snapshot version
 * read before the fetch, then hinted to the workers (docs/api.md, "Storing").
 */
import { ControlStore, SnapshotConflictError } from '../common/adapters/zookeeper/snapshot.js';
import type { SnapshotDelta } from '../common/core/snapshot-delta.js';
import type { FetchOutcome, FetchRecord, IntakeDeps, SnapshotWriter } from './intake-contracts.js';
import type { Answer, AppsFetcher } from './intake-fetch.js';
import type { FetchRechecks } from './intake-rechecks.js';
import type { ShrinkGuard } from './shrink-guard.js';
import { countAnswer, type Decision, type HeldAnswer } from './shrink-policy.js';

/** What the store step works with: the intake's adapters and parts, and its record of fetches. */
export interface StoreStep extends Pick<IntakeDeps, 'control' | 'publisher' | 'snapshots' | 'metrics' | 'log'> {
  guard: ShrinkGuard;
  fetcher: AppsFetcher;
  rechecks: FetchRechecks;
  /** Notes the fetch's result for /status (a record not `ok` counts as a failure). */
  record(r: Omit<FetchRecord, 'at'>): void;
  requestFetch(reason: string): void;
}

/**
 * Stores `answer` (fetched in `ms`, from snapshot version `before`) when the shrink guard lets it
 * through and it is new, then publishes one hint. Never throws.
 */
export async function storeAnswer(s: StoreStep, answer: Answer, before: number, ms: number): Promise<FetchOutcome> {
  const { control, publisher, snapshots, metrics, log, guard, fetcher, rechecks } = s;
  const { apps, texts, endpoint, scope } = answer;
  // Compare with what is stored, not with a cache that may not have caught up yet (startup).
  if (before >= 0 && snapshots.version < before) await snapshots.refresh();
  const previous = snapshots.current();
  const counts = countAnswer(apps);
  let decision: Decision;
  try {
    decision = await guard.admit(previous ? countAnswer(previous.apps) : null, counts, () => ControlStore.hashApps(apps, texts).hash);
  } catch (err) {
    s.record({ ok: false, outcome: 'store_failed', scope, ms, endpoint, apps: apps.length, error: `cannot read the shrink guard record: ${(err as Error).message}`, reason: 'zookeeper' });
    metrics.marathonFetch(ms, false, 'zookeeper');
    rechecks.retryLater();
    return 'store_failed';
  }
  if (decision.action === 'hold') return held(s, decision.held, ms, endpoint, scope);
  rechecks.admitted();
  metrics.marathonFetch(ms, true);

  const fetchedAt = Date.now();
  let result: Awaited<ReturnType<SnapshotWriter['writeSnapshot']>>;
  try {
    // Old chunks are pruned after the hint is out: workers should not wait for housekeeping.
    // The delta is said only against a snapshot this copy stored itself (its content known exactly);
    // its digest goes into the pointer, where workers confirm a hint's delta before applying it.
    result = await control.writeSnapshot(apps, fetchedAt, { expectVersion: before, prune: false, texts, deltaFrom: fetcher.lastStored });
  } catch (err) {
    fetcher.forget();
    if (err instanceof SnapshotConflictError) {
      // Another copy stored a snapshot while we fetched; ours may be older: fetch again.
      s.record({ ok: true, outcome: 'conflict', scope, ms, endpoint, apps: apps.length, error: null, reason: null });
      log.debug('snapshot written by another copy meanwhile; fetching again');
      s.requestFetch('conflict');
      return 'conflict';
    }
    s.record({ ok: false, outcome: 'store_failed', scope, ms, endpoint, apps: apps.length, error: `cannot store the snapshot: ${(err as Error).message}`, reason: 'zookeeper' });
    log.warn({ err }, 'snapshot write failed');
    rechecks.retryLater();
    return 'store_failed';
  }
  rechecks.healed();
  s.record({ ok: true, outcome: result.changed ? 'changed' : 'unchanged', scope, ms, endpoint, apps: apps.length, error: null, reason: null });
  if (result.version > publisher.snapshotVersion) publisher.snapshotVersion = result.version;
  snapshots.setLocal({ version: result.version, hash: result.hash, fetchedAt, apps });
  // What is stored now is this answer (or one equal to it): a held answer, if any, is over.
  const settled = guard.settle(counts, decision);
  fetcher.remember(result.serialised ? { version: result.version, hash: result.hash, ids: result.serialised.ids, parts: result.serialised.parts } : null, apps);
  if (!result.changed) {
    await settled;
    return 'unchanged';
  }
  const delta: SnapshotDelta | undefined = result.delta ? { ...result.delta, version: result.version, hash: result.hash, fetchedAt } : undefined;
  await publisher.publish('marathon', delta ? { delta } : {});
  metrics.published('marathon');
  log.info({ snapshotVersion: result.version, apps: apps.length, scope, endpoint, ms: Math.round(ms) }, 'snapshot stored');
  await settled;
  try {
    await control.pruneChunks(result.hash);
  } catch (err) {
    // Harmless: the next stored snapshot prunes again.
    log.warn({ err }, 'removing old snapshot chunks failed');
  }
  return 'changed';
}

/**
 * An answer the shrink guard holds: counted as a failed fetch (StatsD `marathon.fetch.failed.
 * suspicious_empty` or `.suspicious_shrink`, /status), logged, and checked again by a fetch (and on
 * every event meanwhile): soon at first (a glitch is over in a second: the held answer is dropped),
 * then less and less often, and when it would apply by itself.
 */
function held(s: StoreStep, held: HeldAnswer, ms: number, endpoint: string, scope: FetchRecord['scope']): FetchOutcome {
  const { metrics, log } = s;
  const empty = held.reason === 'empty';
  metrics.marathonFetch(ms, false, empty ? 'suspicious_empty' : 'suspicious_shrink');
  const what = `${held.before.apps} apps / ${held.before.tasks} tasks -> ${held.after.apps} apps / ${held.after.tasks} tasks`;
  s.record({
    ok: false, outcome: 'held', scope, ms, endpoint, apps: held.after.apps, reason: empty ? 'suspicious_empty' : 'suspicious_shrink',
    error: `Marathon's answer shrinks ${what}; held back (the previous snapshot stays) until ${new Date(held.appliesAt).toISOString()} or an operator confirms it (POST /api/marathon/held/confirm)`,
  });
  const fields = { endpoint, heldId: held.id, before: held.before, after: held.after, since: held.since, appliesAt: held.appliesAt };
  if (empty) log.warn(fields, 'empty app list after a non-empty one; holding it back');
  else log.warn(fields, 'marathon answer shrinks too much; holding it back');
  s.rechecks.checkHeld(held.appliesAt);
  return 'held';
}
