/**
 * Two results files side by side (`npx tsx bench/compare.ts OLD.json NEW.json [--threshold 20]`):
 * every median and scalar figure both runs recorded, and those that moved beyond the threshold.
 * For checking that a refactor costs nothing; runs on different days also differ by the machine's load.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

interface RunInfo {
  startedAt?: string;
  versions?: { bambooCommit?: string; [k: string]: unknown };
  load?: { mean1m?: number; max1m?: number };
}

/** Keys that name an array element, so elements of two runs align (sizes by apps, paths by name). */
const ELEMENT_KEYS = ['apps', 'path', 'name', 'workers', 'build', 'mode', 'label'];

/** Longest array of unkeyed elements compared item by item. */
const MAX_UNKEYED = 20;

/** Figures whose larger value is better; every other figure is a cost (time, bytes, fetches, failures). */
const HIGHER_IS_BETTER = /(PerS|perS|requestsPerSec|rps|throughput)/;

/** A results file flattened to `scenario.path -> number`: a summary gives its median, a number itself. */
export function flatten(results: { scenarios?: Record<string, { result?: Json }> }): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (v: Json, path: string): void => {
    if (typeof v === 'number') {
      if (Number.isFinite(v)) out.set(path, v);
      return;
    }
    if (Array.isArray(v)) {
      // A long array of unkeyed elements is raw samples (each event's timings): its summaries compare, not its items.
      const keyed = (el: Json) => el !== null && typeof el === 'object' && !Array.isArray(el) && ELEMENT_KEYS.some((k) => k in el);
      if (v.length > MAX_UNKEYED && !v.some(keyed)) return;
      v.forEach((el, i) => {
        let key = String(i);
        if (el && typeof el === 'object' && !Array.isArray(el)) {
          const k = ELEMENT_KEYS.find((name) => name in el && (typeof el[name] === 'string' || typeof el[name] === 'number'));
          if (k) key = `${k}=${String(el[k])}`;
        }
        walk(el, `${path}[${key}]`);
      });
      return;
    }
    if (v && typeof v === 'object') {
      if (typeof v.median === 'number' && typeof v.n === 'number') {
        out.set(path, v.median);
        return;
      }
      for (const [k, child] of Object.entries(v)) walk(child, path ? `${path}.${k}` : k);
    }
  };
  for (const [name, rec] of Object.entries(results.scenarios ?? {})) if (rec?.result !== undefined) walk(rec.result, name);
  return out;
}

export interface Moved {
  path: string;
  before: number;
  after: number;
  ratio: number;
  better: boolean;
}

/** The figures both runs have, and those that moved more than `thresholdPct` (ignoring tiny absolute values). */
export function compare(a: Map<string, number>, b: Map<string, number>, thresholdPct: number): { common: number; moved: Moved[] } {
  const moved: Moved[] = [];
  let common = 0;
  for (const [path, before] of a) {
    const after = b.get(path);
    if (after === undefined) continue;
    common++;
    if (before === after || Math.max(Math.abs(before), Math.abs(after)) < 1) continue;
    const ratio = before === 0 ? Infinity : after / before;
    if (Math.abs(ratio - 1) * 100 <= thresholdPct) continue;
    const higherBetter = HIGHER_IS_BETTER.test(path);
    moved.push({ path, before, after, ratio, better: higherBetter ? after > before : after < before });
  }
  moved.sort((x, y) => x.path.localeCompare(y.path));
  return { common, moved };
}

function describe(r: RunInfo, file: string): string {
  const load = r.load?.mean1m !== undefined ? `, 1-min load mean ${r.load.mean1m} (max ${r.load.max1m})` : '';
  return `${file}: ${r.startedAt ?? 'unknown date'}${load}`;
}

function main(argv: string[]): void {
  const files = argv.filter((a) => !a.startsWith('--'));
  const ti = argv.indexOf('--threshold');
  const threshold = ti >= 0 ? Number(argv[ti + 1]) : 20;
  if (ti >= 0) files.splice(files.indexOf(argv[ti + 1]), 1);
  if (files.length !== 2 || !Number.isFinite(threshold)) {
    console.error('usage: npx tsx bench/compare.ts OLD.json NEW.json [--threshold PERCENT]');
    process.exit(2);
  }
  const [oldRun, newRun] = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as RunInfo & Parameters<typeof flatten>[0]);
  const { common, moved } = compare(flatten(oldRun), flatten(newRun), threshold);
  const worse = moved.filter((m) => !m.better);
  console.log(`before: ${describe(oldRun, files[0])}`);
  console.log(`after:  ${describe(newRun, files[1])}`);
  console.log(`${common} figures in both; ${moved.length} moved more than ${threshold} % (${moved.length - worse.length} better, ${worse.length} worse)\n`);
  console.log('| Figure | Before | After | After / before |');
  console.log('|---|---|---|---|');
  for (const m of moved) console.log(`| ${m.better ? '' : '**worse** '}\`${m.path}\` | ${m.before} | ${m.after} | ${Number.isFinite(m.ratio) ? m.ratio.toFixed(2) : 'n/a'} |`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main(process.argv.slice(2));
