/** Formatting helpers of the report: numbers, durations, spreads, Markdown tables, stage timings. */
import type { ScenarioRecord } from '../run.js';
import type { Summary } from '../lib/stats.js';
import type { WrkResult } from '../lib/wrk.js';

const nf = new Intl.NumberFormat('en-US');

export function num(x: number | null | undefined, digits = 0): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  return nf.format(Number(x.toFixed(digits)));
}

export function ms(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  if (x >= 10000) return `${num(x / 1000, 1)} s`;
  if (x >= 100) return `${num(x)} ms`;
  return `${num(x, 1)} ms`;
}

/** `123 ms (p10-p90 100-150)` or, for few samples, `(min-max ...)`. */
export function med(s: Summary | undefined, unit: (x: number) => string = ms): string {
  if (!s || !s.n) return 'n/a';
  if (s.n === 1) return unit(s.median);
  const spread = s.n >= 10 ? `p10–p90 ${unit(s.p10)}–${unit(s.p90)}` : `min–max ${unit(s.min)}–${unit(s.max)}`;
  return `${unit(s.median)} (${spread})`;
}

export function count(x: number): string {
  return num(x, x % 1 === 0 ? 0 : 1);
}

export function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function verdict(ok: boolean | null): string {
  return ok === null ? 'n/a' : ok ? '**met**' : '**missed**';
}

export function result<T>(rec: ScenarioRecord | undefined): T | null {
  return rec && rec.result ? (rec.result as T) : null;
}

export function scenarioNote(rec: ScenarioRecord | undefined): string {
  if (!rec) return '_Not run._';
  const parts = [rec.startedAt ? `Run separately on ${rec.startedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')} (\`${rec.command ?? 'npm run bench'}\`). ` : ''];
  parts.push(`Took ${num(rec.durationS)} s; load average ${rec.load.start.join(' / ')} at the start, ${rec.load.end.join(' / ')} at the end.`);
  if (!rec.ok) parts.push(`\n\n**Failed:** ${rec.errors.map((e) => '`' + e.replace(/`/g, "'").slice(0, 400) + '`').join('; ')}`);
  return parts.join('');
}

export const STAGES = ['read', 'build', 'render', 'runtime', 'validate', 'wait', 'install', 'reload', 'cleanup'];

export function stageRow(stages: Record<string, Summary> | undefined): string {
  if (!stages) return 'n/a';
  return STAGES.filter((s) => stages[s] && stages[s].n)
    .map((s) => `${s} ${ms(stages[s].median)}`)
    .join(', ');
}

export function wrkCells(w: WrkResult): string[] {
  const e = w.socketErrors;
  return [
    num(w.requests),
    num(w.requestsPerSecond),
    `${ms(w.latencyMs.p50)} / ${ms(w.latencyMs.p99)} / ${ms(w.latencyMs.max)}`,
    `${num(w.failed)} (non-2xx ${w.non2xx}; connect ${e.connect}, read ${e.read}, write ${e.write}, timeout ${e.timeout})`,
  ];
}

/** Each stage's median and its share of the stages' sum, e.g. `validate 88 ms (41 %)`. */
export function stageShares(stages: Record<string, Summary> | undefined): string {
  if (!stages) return 'n/a';
  const present = STAGES.filter((k) => stages[k] && stages[k].n && stages[k].median > 0);
  const total = present.reduce((a, k) => a + stages[k].median, 0);
  return present.map((k) => `${k} ${ms(stages[k].median)} (${num((100 * stages[k].median) / total)} %)`).join(', ');
}
