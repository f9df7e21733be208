/**
 * The shrink guard's policy, pure: an answer's counts (apps, and tasks that can take traffic), whether
 * it shrinks the reference too much (shrinkReason), what to do with it given the guard record
 * (decide), and the record once an answer is applied (settledRecord). The why and the rules are in
 * api/shrink-guard.ts's header and docs/RELIABILITY.md; no clock, no I/O here: the time is an input.
 */
import { isRunning } from '../common/core/marathon-app.js';

export interface Counts {
  apps: number;
  tasks: number;
}

export interface ShrinkPolicy {
  /** Marathon.ShrinkGuardPercent */
  percent: number;
  /** Marathon.ShrinkGuardMinDrop */
  minDrop: number;
  /** Marathon.ShrinkGuardHoldMs */
  holdMs: number;
}

/** Why an answer is held: it is empty, or it drops too many apps, or too many tasks. */
export type ShrinkReason = 'empty' | 'apps' | 'tasks';

export interface HeldAnswer {
  /** The answer's identity: the hash the snapshot would get (sha256 of its apps). */
  id: string;
  reason: ShrinkReason;
  /** The reference it was compared with, and its own counts. */
  before: Counts;
  after: Counts;
  /** When the streak of suspicious answers began (ms epoch). */
  since: number;
  /** When a copy last fetched this answer. */
  seenAt: number;
  /** When the latest answer of the streak applies by itself (since + ShrinkGuardHoldMs). */
  appliesAt: number;
  /** The api copy that fetched it last. */
  copy: string;
  /** Set by an operator's confirm (POST /api/marathon/held/confirm). */
  confirmed: { at: number; copy: string } | null;
}

export interface GuardRecord {
  held: HeldAnswer | null;
  /** The largest counts stored lately, and when they were raised or reset. */
  peak: (Counts & { at: number }) | null;
}

/** How a held answer ended: a later answer was normal, it stayed long enough, or it was confirmed. */
export type HeldEnd = 'recovered' | 'expired' | 'confirmed';

/** The record before any answer was held or stored. */
export const EMPTY_RECORD: GuardRecord = { held: null, peak: null };

export type Decision =
  | { action: 'apply'; ended: HeldEnd | null; resetPeak: boolean }
  | { action: 'hold'; held: HeldAnswer };

/**
 * Apps and tasks of a `/v2/apps` answer. Only tasks that can take traffic count: running (the
 * template's rule) and not reported unhealthy by any health check result, so an answer that keeps
 * every task but marks them all killed or failing (every server disabled) is a shrink too.
 */
export function countAnswer(apps: readonly unknown[]): Counts {
  let tasks = 0;
  for (const a of apps) {
    const list = (a as { tasks?: unknown } | null)?.tasks;
    if (!Array.isArray(list)) continue;
    for (const t of list) if (servesTraffic(t)) tasks++;
  }
  return { apps: apps.length, tasks };
}

function servesTraffic(task: unknown): boolean {
  if (typeof task !== 'object' || task === null) return false;
  const t = task as Record<string, unknown>;
  if (!isRunning(t)) return false;
  const results = t.healthCheckResults;
  return !(Array.isArray(results) && results.some((r) => typeof r === 'object' && r !== null && (r as { alive?: unknown }).alive === false));
}

/** Why `answer` is a suspicious shrink of `reference`, or null when it is not. Pure. */
export function shrinkReason(reference: Counts, answer: Counts, policy: Pick<ShrinkPolicy, 'percent' | 'minDrop'>): ShrinkReason | null {
  if (reference.apps > 0 && answer.apps === 0) return 'empty';
  const drops = (before: number, after: number) => {
    const d = before - after;
    return d > 0 && d >= policy.minDrop && d * 100 > policy.percent * before;
  };
  if (drops(reference.apps, answer.apps)) return 'apps';
  if (drops(reference.tasks, answer.tasks)) return 'tasks';
  return null;
}

/**
 * What to do with an answer, given the guard record, the stored snapshot's counts (null: none stored
 * yet) and the time. Pure: the caller writes the held answer, or stores the answer and settles.
 */
export function decide(input: {
  record: GuardRecord;
  stored: Counts | null;
  answer: Counts;
  id: () => string;
  now: number;
  policy: ShrinkPolicy;
  copy: string;
}): Decision {
  const { record, stored, answer, now, policy } = input;
  const held = record.held;
  const ended = (how: HeldEnd): HeldEnd | null => (held ? how : null);
  // Nothing to protect yet, or nothing served would go away: apply.
  if (!stored || (answer.apps >= stored.apps && answer.tasks >= stored.tasks)) {
    return { action: 'apply', ended: ended('recovered'), resetPeak: false };
  }
  let reference: Counts = stored;
  const peak = record.peak;
  if (peak && peak.at + policy.holdMs > now) reference = { apps: Math.max(stored.apps, peak.apps), tasks: Math.max(stored.tasks, peak.tasks) };
  // An operator accepted the held counts: they are the reference now (later small changes apply).
  if (held?.confirmed) {
    if (!shrinkReason(held.after, answer, policy)) return { action: 'apply', ended: 'confirmed', resetPeak: true };
  }
  const reason = shrinkReason(reference, answer, policy);
  if (!reason) return { action: 'apply', ended: ended('recovered'), resetPeak: false };
  // A streak of suspicious answers continues the hold; a confirmed answer shrinking further starts anew.
  const streak = held !== null && held.confirmed === null;
  const since = streak ? held.since : now;
  if (streak && now >= since + policy.holdMs) return { action: 'apply', ended: 'expired', resetPeak: true };
  const id = input.id();
  return {
    action: 'hold',
    held: { id, reason, before: reference, after: answer, since, seenAt: now, appliesAt: since + policy.holdMs, copy: input.copy, confirmed: null },
  };
}

/** The record after an answer was stored: no held answer; the peak raised, renewed or reset. Pure. */
export function settledRecord(record: GuardRecord, stored: Counts, now: number, holdMs: number, resetPeak: boolean): GuardRecord {
  const peak = record.peak;
  let next: GuardRecord['peak'];
  if (resetPeak || !peak || peak.at + holdMs <= now) next = { ...stored, at: now };
  else if (stored.apps > peak.apps || stored.tasks > peak.tasks) next = { apps: Math.max(stored.apps, peak.apps), tasks: Math.max(stored.tasks, peak.tasks), at: now };
  else next = peak;
  // An expired peak equal to what is stored need not be written again: it changes no decision.
  if (!resetPeak && record.held === null && peak && next !== peak && peak.apps === stored.apps && peak.tasks === stored.tasks) next = peak;
  return { held: null, peak: next };
}
