/**
 * Scenario 4, reload under load: wrk drives HTTP through HAProxy to one app (two real local backends)
 * while the config changes 100 times through the stack (rule edits of another app via the api, so each
 * one needs a reload whatever the worker learns to do without reloads), once with keep-alive
 * connections and once with `Connection: close`. Each mode first runs the same load without reloads,
 * for the latency impact. Failed = non-2xx answers + every socket error wrk counts (connect, read,
 * write, timeout). Each change waits for the HAProxy master's reload count to go up (`show proc`).
 */
import { performance } from 'node:perf_hooks';
import { httpGet } from '../../harness/http.js';
import { withOverrides, type Ctx } from '../lib/context.js';
import type { DemoStack } from '../lib/stack.js';
import { round, sleep, until } from '../lib/stats.js';
import { runWrk, startWrk, type WrkResult } from '../lib/wrk.js';

export interface ReloadParams {
  reloads: number;
  baselineS: number;
  threads: number;
  connections: number;
}

export function reloadParams(ctx: Ctx): ReloadParams {
  return withOverrides(
    ctx,
    'reload',
    ctx.smoke ? { reloads: 2, baselineS: 1, threads: 1, connections: 4 } : { reloads: 100, baselineS: 10, threads: 2, connections: 16 },
  );
}

export async function reloadScenario(ctx: Ctx, stack: DemoStack, p: ReloadParams) {
  const { sim } = stack;
  const backends = [await stack.backend('load-1'), await stack.backend('load-2')];
  sim.deployApp(
    { id: '/bench/load', cmd: 'x', instances: 2, portDefinitions: [{ port: 0 }] },
    { tasks: backends.map((b) => ({ host: '127.0.0.1', ports: [b.port] })) },
  );
  const url = `${stack.haproxy}/bench/load/`;
  await until(async () => (await httpGet(url)).body.startsWith('load-'), '/bench/load routed', 60000, 20);
  const flip = stack.appIds[stack.appIds.length - 1];
  let edit = 0;
  const modes: Record<string, unknown> = {};
  for (const mode of ['keepalive', 'close'] as const) {
    const headers = mode === 'close' ? { Connection: 'close' } : undefined;
    await stack.settle(600);
    ctx.log(`reload: ${mode}, baseline ${p.baselineS} s`);
    const baseline = await runWrk({ url, threads: p.threads, connections: p.connections, durationS: p.baselineS, headers, dir: ctx.dir });
    await stack.settle(600);
    const r0 = await stack.reloads();
    const wrk = startWrk({ url, threads: p.threads, connections: p.connections, durationS: 3600, headers, dir: ctx.dir });
    let withReloads: WrkResult;
    const t0 = performance.now();
    try {
      await sleep(500);
      for (let k = 1; k <= p.reloads; k++) {
        const res = await fetch(`${stack.apis[k % stack.apis.length]}/api/services/${flip}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ acl: `hdr(host) -i flip-${edit++}.bench` }),
        });
        await res.text();
        if (res.status !== 200 && res.status !== 201) throw new Error(`rule edit ${k}: HTTP ${res.status}`);
        await until(async () => (await stack.reloads()) >= r0 + k, `reload ${k}`, 60000, 10);
        if (k % 25 === 0) ctx.log(`reload: ${mode}, ${k}/${p.reloads} reloads`);
      }
      await sleep(500);
    } finally {
      withReloads = await wrk.stop();
    }
    const reloadsDone = (await stack.reloads()) - r0;
    modes[mode] = {
      baseline,
      withReloads,
      reloads: reloadsDone,
      reloadPhaseS: round((performance.now() - t0) / 1000),
      reloadsPerSecond: round(reloadsDone / ((performance.now() - t0) / 1000), 2),
      failedRequests: withReloads.failed,
      failedPerReload: round(withReloads.failed / Math.max(1, reloadsDone), 2),
      p99ImpactMs: round(withReloads.latencyMs.p99 - baseline.latencyMs.p99, 2),
      throughputChangePct: round((100 * (withReloads.requestsPerSecond - baseline.requestsPerSecond)) / Math.max(1, baseline.requestsPerSecond), 1),
    };
    ctx.log(`reload: ${mode}: ${reloadsDone} reloads, ${withReloads.failed} failed of ${withReloads.requests}`);
  }
  return { apps: stack.size, url: '/bench/load/ (2 local backends)', wrk: { threads: p.threads, connections: p.connections }, ...modes };
}
