/**
 * The worker's metrics taken at the reconciler's edge: its `outcome` event carries everything a
 * reconcile did (outcome, reason, stage timings, Runtime API servers), so the reconciler itself only
 * calls the few domain methods it always did.
 */
import type { Metrics } from '../common/adapters/statsd/metrics.js';
import { reasonClass } from './outcome-class.js';
import type { ApplyOutcome } from './outcome.js';
import type { Reconciler } from './reconciler.js';

/** Starts observing `reconciler`; returns the function that stops. */
export function observeReconciler(reconciler: Reconciler, metrics: Metrics): () => void {
  const runtimeFallbacks = () => reconciler.status().runtime.fallbacks;
  let fallbacks = runtimeFallbacks();
  const onOutcome = (o: ApplyOutcome) => {
    const now = runtimeFallbacks();
    const fellBack = now > fallbacks;
    fallbacks = now;
    const inForce = reconciler.running?.snapshotVersion;
    metrics.reconciled({
      outcome: o.outcome,
      reasonClass: reasonClass(o),
      ms: o.ms,
      stages: o.stages,
      servers: o.servers,
      runtimeFallback: fellBack,
      snapshotVersion: inForce === undefined ? undefined : inForce,
    });
    const apps = reconciler.running?.data?.Apps;
    if (apps) {
      let conflicts = 0;
      let ignored = 0;
      for (const a of apps) {
        conflicts += a.Routing?.conflicts.length ?? 0;
        ignored += a.Routing?.problems.length ?? 0;
      }
      metrics.routing(conflicts, ignored);
    }
  };
  reconciler.on('outcome', onOutcome);
  return () => reconciler.off('outcome', onOutcome);
}
