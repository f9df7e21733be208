/**
 * What the plan stage (worker/planner.ts) decides, as types: the config is unchanged, invalid, a
 * candidate to reload (validated, or left to the master's reload), or a server-only runtime change.
 */
import type { ServerChange } from '../common/core/config-diff.js';
import type { TemplateData, Warning } from '../common/core/model.js';
import type { Origin } from '../common/core/render.js';
import type { QuarantinedApp } from './outcome.js';

/** What the candidate carries besides its text, whatever becomes of it. */
interface Candidate {
  hash: string;
  data: TemplateData;
  origins: Origin[];
  quarantined: QuarantinedApp[];
  rulesApplied: Record<string, number>;
  snapshotVersion: number;
}

export type Plan =
  | ({ kind: 'unchanged' } & Candidate)
  | { kind: 'invalid'; reason: string; hash: string | null; quarantined: QuarantinedApp[]; snapshotVersion: number }
  | ({
      kind: 'apply';
      tempPath: string;
      text: string;
      warnings: Warning[];
      /** Why the Runtime API could not apply it (null: not considered). */
      notRuntime: string | null;
      /** Not validated: the master's reload is its validation (worker/validation-policy.ts). */
      unvalidated?: boolean;
    } & Candidate)
  | ({ kind: 'runtime'; text: string; changes: ServerChange[] } & Candidate);

export type ApplyPlan = Extract<Plan, { kind: 'apply' }>;
export type RuntimePlan = Extract<Plan, { kind: 'runtime' }>;
