/**
 * The template-data memo: what buildTemplateData kept of its last build, so a build after a one-app
 * change re-reads only that app (unchanged apps are the last build's deep-frozen objects). It keeps
 * only the apps of the last build.
 */
import { jsonEqual } from './app-equality.js';
import { sameAnswers, type Json } from './marathon-app.js';
import type { AppData, Warning } from './model.js';
import type { SlotTable } from './slots.js';

/** The slot inputs of a build: the slot table of the config HAProxy runs, and the headroom. */
export interface SlotInput {
  previous: SlotTable | null | undefined;
  headroomPercent: number;
  /** HAProxy.DynamicServers: apps that can grow through `add server` get no spare slots. */
  dynamic: boolean;
}

/** What the memo keeps of one app: its raw input, everything else its data depended on, and the data. */
export interface AppMemo {
  /** The raw app the data was built from (not copied: see TemplateDataMemo). */
  raw: Json;
  /** The normalised app id. */
  id: string;
  graceMs: number;
  headroomPercent: number;
  dynamic: boolean;
  /** A copy of `slots.previous[id]` as it was. */
  previousSlots: Array<string | null> | undefined;
  /**
   * The slot layout built, when giving it back as `previous` builds it again (so the next build,
   * which passes this build's slot table, may reuse the entry); null otherwise.
   */
  stableLayout: Array<string | null> | null;
  /** The time tests the build made (see Clock). */
  clock: number[];
  app: AppData;
  warnings: Warning[];
  gen: number;
}

/**
 * A per-app memo for buildTemplateData, for a caller that builds again and again from snapshots
 * that differ in a few apps (the worker: a one-app change at 10,000 apps would otherwise rebuild
 * 10,000 apps). Keyed by the raw app's `id`; an entry is reused when the raw app is the same object
 * or deep-equal to the one it was built from, its previous slots are equal, the grace period and
 * headroom are the same, and every time test the build made (health grace periods, readiness
 * windows) gives the same answer at the new `now`. Entries of apps absent from a build are dropped.
 *
 * Raw apps are compared by value but kept by reference: a caller that changes a raw app object in
 * place after a build must not reuse the memo (the worker never does: each snapshot is parsed anew).
 */
export class TemplateDataMemo {
  private readonly entries = new Map<string, AppMemo>();
  private gen = 0;
  /** @internal An app's data with its final routing, when that differs from its labels' (see routeApps). */
  readonly routed = new WeakMap<AppData, { key: string; out: AppData }>();
  /** Apps of the last build taken from the memo, and built. */
  hits = 0;
  misses = 0;

  get size(): number {
    return this.entries.size;
  }

  /** @internal */
  begin(): number {
    this.hits = 0;
    this.misses = 0;
    return ++this.gen;
  }

  /** @internal The entry for `key` if it can stand for `raw` built with these inputs. */
  find(key: string, raw: Json, now: number, graceMs: number, slots: SlotInput): AppMemo | undefined {
    const e = this.entries.get(key);
    if (e === undefined || e.gen === this.gen) return undefined;
    if (e.graceMs !== graceMs || e.headroomPercent !== slots.headroomPercent || e.dynamic !== slots.dynamic) return undefined;
    const previous = slots.previous?.[e.id];
    if (!sameSlots(e.previousSlots, previous) && (e.stableLayout === null || !sameSlots(e.stableLayout, previous))) return undefined;
    if (!sameAnswers(e.clock, now)) return undefined;
    if (e.raw !== raw) {
      if (!jsonEqual(e.raw, raw)) return undefined;
      // Keep the newest object, so the previous snapshot can be collected.
      e.raw = raw;
    }
    e.gen = this.gen;
    this.hits++;
    return e;
  }

  /** @internal */
  store(key: string, e: Omit<AppMemo, 'gen'>): void {
    // A second app with the same key in one build does not replace the first one's entry.
    if (this.entries.get(key)?.gen !== this.gen) this.entries.set(key, { ...e, gen: this.gen });
    this.misses++;
  }

  /** @internal Drops the entries the current build did not use. */
  end(): void {
    for (const [k, e] of this.entries) if (e.gen !== this.gen) this.entries.delete(k);
  }
}

export function sameSlots(a: readonly (string | null)[] | undefined, b: readonly (string | null)[] | undefined): boolean {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
