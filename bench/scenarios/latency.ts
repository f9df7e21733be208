/**
 * Scenario 2, latency: Marathon event -> HAProxy routes to the new task, through the whole stack
 * (simulator -> api (event stream) -> ZooKeeper + ZeroMQ -> worker -> managed HAProxy).
 *
 * Each sample scales one bench app up by one task placed on a fresh local HTTP server named `n<k>`;
 * the clock starts at the new task's TASK_RUNNING `status_update_event` leaving the simulator and
 * stops at the first response of that server through HAProxy (a tight loop of new connections, so
 * every poll reaches the newest HAProxy process). On the way it notes when the api's hint arrived on
 * ZeroMQ and when the new haproxy.cfg was installed (inotify), and the worker's stage timings.
 * Between samples the worker is left idle past its minimum reload interval, so pacing is not what is
 * measured. A few rule (ACL) edits through the api's REST API are timed the same way.
 */
import { performance } from 'node:perf_hooks';
import { httpGet } from '../../harness/http.js';
import { withOverrides, type Ctx } from '../lib/context.js';
import { appPath, type DemoStack } from '../lib/stack.js';
import { round, sleep, summarize, summarizeKeys } from '../lib/stats.js';

export interface LatencyParams {
  events: number;
  warmup: number;
  rules: number;
}

export function latencyParams(ctx: Ctx): LatencyParams {
  return withOverrides(
    ctx,
    'latency',
    ctx.smoke ? { events: 3, warmup: 1, rules: 1 } : { events: 100, warmup: 3, rules: 20 },
  );
}

async function pollUntil(url: string, want: (status: number, body: string) => boolean, opts: { host?: string; timeoutMs: number }): Promise<{ at: number; polls: number }> {
  const deadline = performance.now() + opts.timeoutMs;
  let polls = 0;
  for (;;) {
    polls++;
    const r = await httpGet(url, { host: opts.host, timeoutMs: 2000 }).catch(() => null);
    const at = performance.now();
    if (r && want(r.status, r.body)) return { at, polls };
    if (at > deadline) throw new Error(`timed out after ${opts.timeoutMs} ms polling ${url}${opts.host ? ` (Host: ${opts.host})` : ''}`);
  }
}

/** Where the slowest tenth of the events lost their time: the api's part (event -> hint) or the worker's (hint -> routed). */
function tail(events: Array<{ routed: number; hint: number | null; simAfter: number }>) {
  const slow = [...events].sort((a, b) => b.routed - a.routed).slice(0, Math.max(1, Math.ceil(events.length / 10)));
  const withHint = slow.filter((e) => e.hint !== null) as Array<{ routed: number; hint: number; simAfter: number }>;
  return {
    events: slow.length,
    eventToRoutedMs: summarize(slow.map((e) => e.routed)),
    eventToHintMs: summarize(withHint.map((e) => e.hint)),
    hintToRoutedMs: summarize(withHint.map((e) => e.routed - e.hint)),
    simulatorBusyAfterEventMs: summarize(slow.map((e) => e.simAfter)),
  };
}

/** The most recent `/v2/apps` fetch of either api copy (their /status), to see the api's share. */
async function lastFetch(stack: DemoStack): Promise<{ ms: number; at: number } | null> {
  let best: { ms: number; at: number } | null = null;
  for (const api of stack.apis) {
    const s = (await (await fetch(`${api}/status`)).json()) as { marathon?: { lastFetch?: { ms: number; at: number } | null } };
    const f = s.marathon?.lastFetch;
    if (f && (!best || f.at > best.at)) best = f;
  }
  return best;
}

export async function latencyScenario(ctx: Ctx, stack: DemoStack, p: LatencyParams) {
  const { sim, haproxy, hints, installs } = stack;
  const size = stack.size;
  const simMs: number[] = [];
  const toHint: number[] = [];
  const toConfig: number[] = [];
  const toRouted: number[] = [];
  const hintToRouted: number[] = [];
  const polls: number[] = [];
  const stages: Array<Record<string, number>> = [];
  const outcomes: Record<string, number> = {};
  let noConfigSeen = 0;
  const fetchMs: number[] = [];
  /**
   * Per event, in order: event -> routed, event -> hint, simulator busy after the event, the bytes of
   * Marathon events the api's stream read (light plan format) and what they would be without it.
   */
  const perEvent: Array<{ routed: number; hint: number | null; simAfter: number; bytes: number; fullBytes: number }> = [];
  const total = p.warmup + p.events;
  const startedAt = performance.now();
  for (let k = 0; k < total; k++) {
    const i = (k * 7919 + 17) % size;
    const id = stack.appIds[i];
    const b = await stack.backend(`n${size}-${k}`);
    let eventAt = 0;
    let bytes = 0;
    let fullBytes = 0;
    const off = sim.onEvent((e) => {
      bytes += (e.light ?? e.data).length;
      fullBytes += e.data.length;
      if (!eventAt && e.eventType === 'status_update_event' && e.data.includes('"taskStatus":"TASK_RUNNING"') && e.data.includes(`[${b.port}]`)) {
        eventAt = performance.now();
      }
    });
    await stack.settle(600);
    const lastVersion = Math.max(-1, ...hints.hints.map((h) => h.snapshotVersion));
    const t0 = performance.now();
    sim.scaleApp(id, sim.tasks(id).length + 1, { tasks: [{ host: '127.0.0.1', ports: [b.port] }] });
    const t1 = performance.now();
    off();
    if (!eventAt) throw new Error(`no TASK_RUNNING event for the new task of ${id}`);
    const routed = await pollUntil(`${haproxy}${appPath(id)}`, (s, body) => s === 200 && body.startsWith(`${b.name} `), { timeoutMs: 60000 });
    // The install and the hint were noted while polling; give a Runtime-API apply (no file) a moment.
    let cfgAt = installs.first(eventAt, (text) => text.includes(`127.0.0.1:${b.port}`));
    if (cfgAt === undefined) {
      await sleep(200);
      cfgAt = installs.first(eventAt, (text) => text.includes(`127.0.0.1:${b.port}`));
    }
    const hint = hints.first(eventAt, (h) => h.kind === 'marathon' && h.snapshotVersion > lastVersion);
    const st = await stack.status();
    const fetch = await lastFetch(stack);
    if (k < p.warmup) continue;
    if (fetch) fetchMs.push(fetch.ms);
    simMs.push(t1 - t0);
    perEvent.push({ routed: routed.at - eventAt, hint: hint ? hint.receivedAt - eventAt : null, simAfter: t1 - eventAt, bytes, fullBytes });
    toRouted.push(routed.at - eventAt);
    polls.push(routed.polls);
    if (hint) {
      toHint.push(hint.receivedAt - eventAt);
      hintToRouted.push(routed.at - hint.receivedAt);
    }
    if (cfgAt !== undefined) toConfig.push(cfgAt - eventAt);
    else noConfigSeen++;
    stages.push(st.lastApplyStages);
    outcomes[st.lastOutcome] = (outcomes[st.lastOutcome] ?? 0) + 1;
    if ((k - p.warmup + 1) % 25 === 0) ctx.log(`latency: ${size} apps, ${k - p.warmup + 1}/${p.events} events, p50 so far ${summarize(toRouted).median} ms`);
  }
  const eventsMs = performance.now() - startedAt;

  // Rule (ACL) edits through the REST API, alternating the two api copies.
  const ruleMs: number[] = [];
  const putMs: number[] = [];
  const ruleToHint: number[] = [];
  let ruleTimeouts = 0;
  const ruleStages: Array<Record<string, number>> = [];
  for (let r = 0; r < p.rules; r++) {
    const i = (r * 104729 + size - 1) % size;
    const id = stack.appIds[i];
    const host = `rule${r}-s${size}.bench`;
    await stack.settle(600);
    const api = stack.apis[r % stack.apis.length];
    const t0 = performance.now();
    const res = await fetch(`${api}/api/services/${id}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ acl: `hdr(host) -i ${host}` }) });
    await res.text();
    const t1 = performance.now();
    if (res.status !== 200 && res.status !== 201) throw new Error(`PUT rule for ${id}: ${res.status}`);
    const routed = await pollUntil(`${haproxy}/`, (s) => s === 200, { host, timeoutMs: 30000 }).catch(() => null);
    if (!routed) {
      // Reported, not fatal: a rule edit the worker never applied is a finding.
      ruleTimeouts++;
      continue;
    }
    ruleMs.push(routed.at - t0);
    ruleStages.push((await stack.status()).lastApplyStages);
    putMs.push(t1 - t0);
    const hint = hints.first(t0, (h) => h.kind === 'rules' && h.appId === id);
    if (hint) ruleToHint.push(hint.receivedAt - t0);
  }

  const cfg = installs.installs.at(-1)?.text ?? '';
  return {
    apps: size,
    events: toRouted.length,
    eventToRoutedMs: summarize(toRouted),
    eventToHintMs: summarize(toHint),
    eventToConfigOnDiskMs: summarize(toConfig),
    hintToRoutedMs: summarize(hintToRouted),
    eventsWithoutNewConfigFile: noConfigSeen,
    simulatorScaleCallMs: summarize(simMs),
    // The simulator runs in this process: after emitting the event it keeps this process (and so its
    // HTTP server, which answers the api's /v2/apps fetch) busy until the scale call returns.
    simulatorBusyAfterEventMs: summarize(perEvent.map((e) => e.simAfter)),
    eventBytesPerScale: summarize(perEvent.map((e) => e.bytes), 0),
    eventBytesPerScaleFullPlans: summarize(perEvent.map((e) => e.fullBytes), 0),
    slowestTenth: tail(perEvent),
    perEvent: perEvent.map((e) => ({ routed: round(e.routed), hint: e.hint === null ? null : round(e.hint), simAfter: round(e.simAfter) })),
    apiFetchMs: summarize(fetchMs),
    pollsPerEvent: summarize(polls, 0),
    workerStagesMs: summarizeKeys(stages),
    workerOutcomes: outcomes,
    eventsDurationS: round(eventsMs / 1000),
    rules: {
      edits: ruleMs.length + ruleTimeouts,
      notRoutedWithin30s: ruleTimeouts,
      writeToRoutedMs: summarize(ruleMs),
      putResponseMs: summarize(putMs),
      writeToHintMs: summarize(ruleToHint),
      workerStagesMs: summarizeKeys(ruleStages),
    },
    configBytes: Buffer.byteLength(cfg),
    configPathChars: stack.cfgPath.length,
  };
}
