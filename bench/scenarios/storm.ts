/**
 * Scenario 3, storm: thousands of Marathon status updates in a few seconds, through the whole stack.
 *
 * The updates are real state changes: tasks of bench apps are killed and replaced (Marathon's
 * TASK_KILLING, TASK_KILLED and the replacement's TASK_RUNNING: three `status_update_event`s each,
 * plus the 1.6 instance events), so the final config can be checked against the simulator.
 *
 * - `paced`: 5,000 status updates spread evenly over 5 s;
 * - `burst`: 5,000 status updates as fast as the simulator emits them (Bamboo's burst was 1,000);
 * - `rules`: 1,000 rule (ACL) writes through the api copies, 50 in flight.
 *
 * Counted per repetition: Marathon `/v2/apps` fetches (the simulator's request log), HAProxy reloads
 * (the master's `show proc` reload count), the worker's outcomes, the time from the last update until
 * the installed haproxy.cfg lists exactly the simulator's tasks for every bench app, and until quiet
 * (no fetch, reload or apply for `quietMs`).
 */
import { performance } from 'node:perf_hooks';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { httpGet } from '../../harness/http.js';
import { withOverrides, type Ctx } from '../lib/context.js';
import { mismatchedApps, type DemoStack } from '../lib/stack.js';
import { round, sleep, summarize, until } from '../lib/stats.js';
import { applied } from './render.js';

export interface StormParams {
  updates: number;
  windowMs: number;
  reps: number;
  ruleWrites: number;
  ruleConcurrency: number;
  quietMs: number;
  /** Local servers the replacement tasks are spread over. */
  poolSize: number;
  /** How long the last rule of a rule storm may take to route before it counts as not converged. */
  routeTimeoutMs: number;
}

/** True when HAProxy chose the app's backend for the host (not the no-route answer). */
async function routedToApp(haproxy: string, host: string): Promise<boolean> {
  const r = await httpGet(`${haproxy}/`, { host });
  return !r.body.includes('no Marathon app matches');
}

export function stormParams(ctx: Ctx): StormParams {
  return withOverrides(
    ctx,
    'storm',
    ctx.smoke
    ? { updates: 300, windowMs: 500, reps: 1, ruleWrites: 20, ruleConcurrency: 10, quietMs: 500, poolSize: 16, routeTimeoutMs: 15000 }
    : { updates: 5000, windowMs: 5000, reps: 3, ruleWrites: 1000, ruleConcurrency: 50, quietMs: 2000, poolSize: 256, routeTimeoutMs: 15000 },
  );
}

interface Counters {
  fetches: number;
  reloads: number;
  applied: number;
  busy: boolean;
  outcomes: Record<string, number>;
}

async function counters(stack: DemoStack): Promise<Counters> {
  const s = await stack.status();
  return { fetches: stack.sim.countRequests('/v2/apps'), reloads: await stack.reloads(), applied: applied(s.outcomes), busy: s.busy, outcomes: { ...s.outcomes } };
}

function diffOutcomes(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(b)) if ((b[k] ?? 0) - (a[k] ?? 0) > 0) out[k] = b[k] - (a[k] ?? 0);
  return out;
}

/**
 * After the last change: waits until nothing has moved (fetch count, reload count, applies, worker
 * busy) for quietMs and the config is correct (or `correct` is not given). Returns when things last
 * moved and when the installed config first became correct.
 */
async function waitQuiet(stack: DemoStack, lastAt: number, quietMs: number, correct: ((cfg: string) => boolean) | null, timeoutMs = 120000) {
  let last = await counters(stack);
  let movedAt = lastAt;
  let correctAt: number | undefined;
  const checked = new WeakSet<object>();
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    await sleep(20);
    const now = performance.now();
    const c = await counters(stack);
    if (c.fetches !== last.fetches || c.reloads !== last.reloads || c.applied !== last.applied || c.busy) movedAt = now;
    last = c;
    if (correct && correctAt === undefined) {
      // inotify noted every install with its text: the first correct one after the last change.
      for (const i of stack.installs.installs) {
        if (i.at < lastAt || checked.has(i)) continue;
        checked.add(i);
        if (correct(i.text)) {
          correctAt = i.at;
          break;
        }
      }
    }
    if (!c.busy && now - movedAt >= quietMs && (!correct || correctAt !== undefined)) return { quietAt: movedAt, correctAt };
    if (now > deadline) throw new Error(`no quiet within ${timeoutMs} ms after the storm (config correct: ${correctAt !== undefined})`);
  }
}

/**
 * Replacement tasks go to a pool of real local servers, one port each, round robin: every app keeps
 * serving, and the final check (addresses per backend) sees which tasks HAProxy sends traffic to.
 */
let pool: number[] = [];
let next = 0;

async function statusStorm(stack: DemoStack, p: StormParams, mode: 'paced' | 'burst') {
  const { sim } = stack;
  await stack.settle(p.quietMs);
  const c0 = await counters(stack);
  let updates = 0;
  let lastUpdateAt = 0;
  const off = sim.onEvent((e) => {
    if (e.eventType === 'status_update_event') {
      updates++;
      lastUpdateAt = performance.now();
    }
  });
  const killOne = () => {
    const id = stack.appIds[Math.floor(Math.random() * stack.appIds.length)];
    const tasks = sim.tasks(id);
    if (tasks.length === 0) return;
    const t = tasks[Math.floor(Math.random() * tasks.length)];
    sim.killTask(t.id, { replacement: { host: '127.0.0.1', ports: [pool[next++ % pool.length]] } });
  };
  const t0 = performance.now();
  try {
    if (mode === 'burst') {
      while (updates < p.updates) killOne();
    } else {
      while (updates < p.updates) {
        const due = Math.min(p.updates, Math.ceil((p.updates * (performance.now() - t0 + 10)) / p.windowMs));
        while (updates < due) killOne();
        await sleep(10);
      }
    }
  } finally {
    off();
  }
  const emitMs = performance.now() - t0;
  const firstAt = t0;
  const { quietAt, correctAt } = await waitQuiet(stack, lastUpdateAt, p.quietMs, (cfg) => mismatchedApps(cfg, sim, stack.appIds).length === 0);
  const c1 = await counters(stack);
  const finalCfg = readFileSync(stack.cfgPath, 'utf8');
  const mismatches = mismatchedApps(finalCfg, sim, stack.appIds);
  const st = await stack.status();
  return {
    statusUpdates: updates,
    emitMs: round(emitMs),
    marathonFetches: c1.fetches - c0.fetches,
    reloads: c1.reloads - c0.reloads,
    applies: c1.applied - c0.applied,
    workerOutcomes: diffOutcomes(c0.outcomes, c1.outcomes),
    lastUpdateToConfigMs: correctAt === undefined ? null : round(correctAt - lastUpdateAt),
    lastUpdateToQuietMs: round(Math.max(0, quietAt - lastUpdateAt)),
    firstUpdateToQuietMs: round(quietAt - firstAt),
    finalConfigCorrect: mismatches.length === 0,
    mismatchedApps: mismatches.length,
    haproxyRunsFinalFile: st.configHash === createHash('sha256').update(finalCfg).digest('hex'),
  };
}

async function ruleStorm(stack: DemoStack, p: StormParams, rep: number) {
  await stack.settle(p.quietMs);
  const c0 = await counters(stack);
  const n = Math.min(stack.appIds.length, 50);
  const last = new Map<number, number>();
  let failed = 0;
  const t0 = performance.now();
  for (let j = 0; j < p.ruleWrites; j += p.ruleConcurrency) {
    await Promise.all(
      Array.from({ length: Math.min(p.ruleConcurrency, p.ruleWrites - j) }, async (_, m) => {
        const h = j + m;
        const i = h % n;
        const api = stack.apis[h % stack.apis.length];
        const res = await fetch(`${api}/api/services/${stack.appIds[i]}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ acl: `hdr(host) -i storm${rep}-${h}-app${i}.bench` }),
        });
        await res.text();
        if (res.status !== 200 && res.status !== 201) failed++;
        last.set(i, Math.max(last.get(i) ?? -1, h));
      }),
    );
  }
  const lastWriteAt = performance.now();
  const quiet = waitQuiet(stack, lastWriteAt, p.quietMs, null);
  // Every app's final host must route; the last write's app is polled to time it.
  const [li, lh] = [...last].sort((a, b) => b[1] - a[1])[0];
  const host = `storm${rep}-${lh}-app${li}.bench`;
  // Bounded: a rule the worker missed would otherwise stall the run (it is reported instead).
  const servedAt = await until(() => routedToApp(stack.haproxy, host), `the last rule (${host}) to route`, p.routeTimeoutMs, 2).then(
    () => performance.now(),
    () => null,
  );
  const { quietAt } = await quiet;
  let wrong = 0;
  for (const [i, h] of last) {
    if (!(await routedToApp(stack.haproxy, `storm${rep}-${h}-app${i}.bench`))) wrong++;
  }
  const c1 = await counters(stack);
  return {
    writes: p.ruleWrites,
    failedWrites: failed,
    writeMs: round(lastWriteAt - t0),
    marathonFetches: c1.fetches - c0.fetches,
    reloads: c1.reloads - c0.reloads,
    applies: c1.applied - c0.applied,
    workerOutcomes: diffOutcomes(c0.outcomes, c1.outcomes),
    lastWriteToRoutedMs: servedAt === null ? null : round(servedAt - lastWriteAt),
    lastWriteToQuietMs: round(Math.max(0, quietAt - lastWriteAt)),
    finalRulesRouted: wrong === 0,
    appsNotRoutedByTheirLastRule: wrong,
  };
}

type Rep = Record<string, unknown>;

/** Median and spread of every numeric field over the repetitions, plus the repetitions themselves. */
function over(reps: Rep[]) {
  const keys = new Set<string>();
  for (const r of reps) for (const [k, v] of Object.entries(r)) if (typeof v === 'number') keys.add(k);
  const summary: Record<string, ReturnType<typeof summarize>> = {};
  for (const k of keys) summary[k] = summarize(reps.map((r) => r[k]).filter((v): v is number => typeof v === 'number'));
  return { summary, allCorrect: reps.every((r) => r.finalConfigCorrect !== false && r.finalRulesRouted !== false), reps };
}

export async function stormScenario(ctx: Ctx, stack: DemoStack, p: StormParams) {
  const out: Record<string, ReturnType<typeof over>> = {};
  pool = (await Promise.all(Array.from({ length: p.poolSize }, (_, i) => stack.backend(`pool-${i}`)))).map((b) => b.port);
  for (const mode of ['paced', 'burst'] as const) {
    const reps: Rep[] = [];
    for (let r = 0; r < p.reps; r++) {
      reps.push(await statusStorm(stack, p, mode));
      ctx.log(`storm: ${stack.size} apps, ${mode} ${r + 1}/${p.reps}: ${JSON.stringify(reps.at(-1))}`);
    }
    out[mode] = over(reps);
  }
  const reps: Rep[] = [];
  for (let r = 0; r < p.reps; r++) {
    reps.push(await ruleStorm(stack, p, r));
    ctx.log(`storm: ${stack.size} apps, rules ${r + 1}/${p.reps}: ${JSON.stringify(reps.at(-1))}`);
  }
  out.rules = over(reps);
  return { apps: stack.size, ...out };
}
