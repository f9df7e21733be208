/**
 * A bounded class for a reconcile outcome's free-text reason, so metrics can count outcomes by why
 * without a label per app, path or message (docs/metrics.md lists the classes). Unknown shapes are
 * `other`: a new reason text never adds a label value.
 */
import type { ApplyOutcome } from './outcome.js';

const CLASSES: Array<[RegExp, string]> = [
  [/^unchanged$/, 'unchanged'],
  [/^no Marathon snapshot/, 'no_snapshot'],
  [/^desired state unavailable/, 'desired_unavailable'],
  [/^internal error/, 'internal_error'],
  [/^shutting down/, 'shutting_down'],
  [/^template failed/, 'template'],
  [/^validation failed after \d+ quarantine rounds/, 'quarantine_rounds'],
  [/^validation failed/, 'validation'],
  [/^servers changed through the Runtime API but/, 'runtime_install'],
  [/^servers changed through the Runtime API/, 'runtime'],
  [/^first config since start/, 'first_config'],
  [/^retrying after a failed reload/, 'retry'],
  [/^config changed/, 'config_changed'],
];

export function reasonClass(o: Pick<ApplyOutcome, 'outcome' | 'reason'>): string {
  if (o.outcome === 'write-failed') return 'write';
  if (o.outcome === 'reload-failed') return /; quarantined /.test(o.reason) ? 'reload_quarantined' : /Runtime API but/.test(o.reason) ? 'runtime_install' : 'reload';
  for (const [re, cls] of CLASSES) if (re.test(o.reason)) return cls;
  return 'other';
}
