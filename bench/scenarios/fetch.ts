/**
 * Scenario 8, fetch: one app gains a task -> routed, with the api fetching the app its events name
 * (`GET /v2/apps/{id}`, the default) and with the previous path, a fetch of the whole `/v2/apps` per
 * change (`Marathon.PerAppFetchMax=0`), side by side in the same run: for each size, one demo stack
 * each way (managed HAProxy, event stream), the events timed as the latency scenario times them.
 */
import { withOverrides, type Ctx } from '../lib/context.js';
import { startDemoStack } from '../lib/stack.js';
import { latencyScenario } from './latency.js';

export interface FetchParams {
  sizes: number[];
  events: number;
  warmup: number;
}

export function fetchParams(ctx: Ctx): FetchParams {
  return withOverrides(ctx, 'fetch', ctx.smoke ? { sizes: [20], events: 2, warmup: 1 } : { sizes: [100, 1000], events: 50, warmup: 3 });
}

const PATHS = [
  { path: 'per-app', env: {} },
  { path: 'full', env: { MARATHON_PER_APP_FETCH_MAX: '0' } },
] as const;

/** The api copies' fetch counters (their /status). */
async function fetchCounts(apis: string[]): Promise<{ fetches: number; appFetches: number }> {
  let fetches = 0;
  let appFetches = 0;
  for (const api of apis) {
    const s = (await (await fetch(`${api}/status`)).json()) as { marathon?: { fetches?: number; appFetches?: number } };
    fetches += s.marathon?.fetches ?? 0;
    appFetches += s.marathon?.appFetches ?? 0;
  }
  return { fetches, appFetches };
}

export async function fetchScenario(ctx: Ctx) {
  const p = fetchParams(ctx);
  const rows: unknown[] = [];
  for (const size of p.sizes) {
    for (const { path, env } of PATHS) {
      const stack = await startDemoStack(ctx.zk, size, ctx.log, { env });
      try {
        const before = await fetchCounts(stack.apis);
        const r = await latencyScenario(ctx, stack, { events: p.events, warmup: p.warmup, rules: 0 });
        const after = await fetchCounts(stack.apis);
        ctx.log(`fetch: ${size} apps, ${path} fetch: event -> routed p50 ${r.eventToRoutedMs.median} ms, p99 ${r.eventToRoutedMs.p99} ms`);
        rows.push({
          size,
          path,
          events: r.events,
          eventToRoutedMs: r.eventToRoutedMs,
          eventToHintMs: r.eventToHintMs,
          hintToRoutedMs: r.hintToRoutedMs,
          apiFetchMs: r.apiFetchMs,
          workerStagesMs: r.workerStagesMs,
          workerOutcomes: r.workerOutcomes,
          fetches: after.fetches - before.fetches,
          appFetches: after.appFetches - before.appFetches,
        });
      } finally {
        await stack.stop().catch((err: unknown) => ctx.log(`stopping the stack: ${(err as Error).message}`));
      }
    }
  }
  return { params: { ...p, mode: 'bamboo demo stack (2 api copies, event stream; worker in managed mode), one stack per size and fetch path' }, result: { rows } };
}
