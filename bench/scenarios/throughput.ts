/**
 * Scenario 6, throughput of the api alone (its own process, callback mode, real ZooKeeper and
 * ZeroMQ, the simulator as Marathon), with wrk as the client:
 *
 * - `GET /api/services` with no rules and with 1,000 rules; `GET /api/services/:id`;
 * - `PUT /api/services/:id` replacing random existing rules (no If-Match), then GET again;
 * - creating 1,000 rules one by one (Bamboo: 1.4 s) and 50 at a time, deleting them 50 at a time;
 * - a burst of 1,000 Marathon callbacks: the /v2/apps fetches it costs and how soon the final state is
 *   published;
 * - Marathon event -> hint published on ZeroMQ (the api's share of the event latency).
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Subscriber } from 'zeromq';
import { decodeHint, type Hint } from '../../common/adapters/zeromq/bus.js';
import { silentLogger } from '../../common/log.js';
import { ControlStore } from '../../common/adapters/zookeeper/snapshot.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { httpGet } from '../../harness/http.js';
import { startApiProcess } from '../lib/api-proc.js';
import { withOverrides, type Ctx } from '../lib/context.js';
import { round, sleep, summarize, until } from '../lib/stats.js';
import { runWrk } from '../lib/wrk.js';

export interface ThroughputParams {
  rules: number;
  durationS: number;
  threads: number;
  connections: number;
  callbacks: number;
  rounds: number;
}

export function throughputParams(ctx: Ctx): ThroughputParams {
  return withOverrides(
    ctx,
    'throughput',
    ctx.smoke
    ? { rules: 20, durationS: 1, threads: 1, connections: 4, callbacks: 50, rounds: 2 }
    : { rules: 1000, durationS: 5, threads: 2, connections: 16, callbacks: 1000, rounds: 20 },
  );
}

const PUT_LUA = (rules: number) => `
local n = 0
request = function()
  n = n + 1
  local i = math.random(0, ${rules - 1})
  local body = '{"acl":"path_beg -i /rule-' .. i .. '-v' .. n .. '"}'
  return wrk.format("PUT", "/api/services//bench/rule-" .. i, { ["Content-Type"] = "application/json" }, body)
end
`;

async function send(url: string, method: string, body?: unknown): Promise<number> {
  const res = await fetch(url, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
  await res.text();
  return res.status;
}

export async function throughputScenario(ctx: Ctx) {
  const p = throughputParams(ctx);
  const sim = new MarathonSimulator({ heartbeatMs: 10000 });
  await sim.start();
  sim.deployApp({ id: '/bench/web', cmd: 'x', instances: 3 });
  const base = `/bench-api-${Math.random().toString(16).slice(2, 8)}`;
  const zk = new Zk({ connectionString: ctx.zk, log: silentLogger() });
  await zk.start(10000);
  const control = new ControlStore(zk, `${base}/control`);
  const api = await startApiProcess({
    zk: ctx.zk,
    zkPath: `${base}/rules`,
    controlPath: `${base}/control`,
    marathon: sim.url,
    stream: false,
    logFile: join(ctx.dir, 'throughput-api.log'),
  });
  const sub = new Subscriber({ linger: 0 });
  const hints: Array<Hint & { receivedAt: number }> = [];
  const wrk = { threads: p.threads, connections: p.connections, durationS: p.durationS, dir: ctx.dir };
  const out: Record<string, unknown> = {};
  try {
    sub.connect(api.zmq);
    sub.subscribe('bamboo');
    void (async () => {
      for await (const frames of sub) {
        const h = decodeHint(frames as Buffer[]);
        if (h) hints.push({ ...h, receivedAt: performance.now() });
      }
    })().catch(() => undefined);

    // ZooKeeper's own write latency here (each rule write is one transaction writing the rule and its parent).
    const probe = `${base}/probe`;
    await zk.mkdirp(probe);
    const zkMs: number[] = [];
    for (let i = 0; i < (ctx.smoke ? 20 : 200); i++) {
      const s = performance.now();
      await zk.set(probe, Buffer.from(String(i)));
      zkMs.push(performance.now() - s);
    }
    out.zookeeperWriteMs = summarize(zkMs, 2);

    ctx.log('throughput: GET /api/services, no rules');
    if (!ctx.smoke) await runWrk({ ...wrk, durationS: 1, url: `${api.url}/api/services` }); // warm-up (JIT), not reported
    out.getServicesNoRules = await runWrk({ ...wrk, url: `${api.url}/api/services` });

    // Create p.rules rules 50 at a time, delete them 50 at a time, then create them one by one.
    const ids = Array.from({ length: p.rules }, (_, i) => `/bench/rule-${i}`);
    let t0 = performance.now();
    let bad = 0;
    for (let i = 0; i < ids.length; i += 50) {
      const codes = await Promise.all(ids.slice(i, i + 50).map((id) => send(`${api.url}/api/services`, 'POST', { id, acl: `path_beg -i ${id}` })));
      bad += codes.filter((c) => c !== 201).length;
    }
    out.createRules50InFlight = { rules: ids.length, ms: round(performance.now() - t0), failed: bad };
    t0 = performance.now();
    bad = 0;
    for (let i = 0; i < ids.length; i += 50) {
      const codes = await Promise.all(ids.slice(i, i + 50).map((id) => send(`${api.url}/api/services/${id}`, 'DELETE')));
      bad += codes.filter((c) => c !== 200 && c !== 204).length;
    }
    out.deleteRules50InFlight = { rules: ids.length, ms: round(performance.now() - t0), failed: bad };
    t0 = performance.now();
    bad = 0;
    for (const id of ids) if ((await send(`${api.url}/api/services`, 'POST', { id, acl: `path_beg -i ${id}` })) !== 201) bad++;
    out.createRulesOneByOne = { rules: ids.length, ms: round(performance.now() - t0), failed: bad };

    ctx.log(`throughput: GET /api/services, ${p.rules} rules`);
    await httpGet(`${api.url}/api/services`);
    out.getServices = await runWrk({ ...wrk, url: `${api.url}/api/services` });
    out.getOneService = await runWrk({ ...wrk, url: `${api.url}/api/services//bench/rule-1` });
    ctx.log(`throughput: PUT /api/services/:id, ${p.rules} rules`);
    out.putService = await runWrk({ ...wrk, url: `${api.url}/api/services`, lua: PUT_LUA(p.rules) });
    out.getServicesAfterWrites = await runWrk({ ...wrk, url: `${api.url}/api/services` });

    // A burst of Marathon callbacks (status updates of one task), the last one carrying a real change.
    ctx.log(`throughput: ${p.callbacks} Marathon callbacks`);
    await until(async () => (await control.readSnapshot()) !== null, 'the first snapshot', 30000, 20);
    await sleep(1500);
    const fetches0 = sim.countRequests('/v2/apps');
    const delivered0 = sim.callbackStats.delivered + sim.callbackStats.dropped;
    const taskId = sim.tasks('/bench/web')[0].id;
    const b0 = performance.now();
    const b0Epoch = Date.now();
    for (let i = 0; i < p.callbacks; i++) {
      if (i === p.callbacks - 1) sim.scaleApp('/bench/web', 5);
      else sim.emit('status_update_event', { eventType: 'status_update_event', appId: '/bench/web', taskId, taskStatus: 'TASK_RUNNING', timestamp: new Date().toISOString() });
    }
    await until(() => sim.callbackStats.delivered + sim.callbackStats.dropped - delivered0 >= p.callbacks, 'callback delivery', 60000, 5);
    const deliveryMs = performance.now() - b0;
    let finalAt = 0;
    await until(async () => {
      const snap = await control.readSnapshot();
      const app = snap?.apps.find((a) => (a as { id?: string }).id === '/bench/web') as { tasks?: unknown[] } | undefined;
      const h = hints.filter((x) => x.kind === 'marathon' && snap && x.snapshotVersion === snap.version).at(0);
      if (app?.tasks?.length === 5 && h) {
        finalAt = h.receivedAt;
        return true;
      }
      return false;
    }, 'the final state to be published', 60000, 10);
    let lastCount = sim.countRequests('/v2/apps');
    let movedAt = performance.now();
    while (performance.now() - movedAt < 1000) {
      await sleep(20);
      const c = sim.countRequests('/v2/apps');
      if (c !== lastCount) {
        lastCount = c;
        movedAt = performance.now();
      }
    }
    const lastFetch = sim.requests.filter((r) => r.path.startsWith('/v2/apps')).at(-1);
    out.callbackBurst = {
      callbacks: p.callbacks,
      marathonFetches: sim.countRequests('/v2/apps') - fetches0,
      callbacksDroppedByMarathon: sim.callbackStats.dropped,
      deliveryMs: round(deliveryMs),
      untilFinalStatePublishedMs: round(finalAt - b0),
      lastFetchAfterBurstStartMs: lastFetch ? lastFetch.at - b0Epoch : null,
    };

    // Marathon event -> hint on ZeroMQ, each round starting idle.
    const lat: number[] = [];
    for (let r = 0; r < p.rounds; r++) {
      await sleep(400); // past the api's minimum fetch interval (250 ms)
      const seen = hints.length;
      const s0 = performance.now();
      sim.scaleApp('/bench/web', r % 2 === 0 ? 4 : 5);
      await until(() => hints.slice(seen).some((h) => h.kind === 'marathon'), 'a marathon hint', 30000, 1);
      lat.push(hints.slice(seen).find((h) => h.kind === 'marathon')!.receivedAt - s0);
    }
    out.eventToHintMs = summarize(lat);
  } finally {
    sub.close();
    await api.stop();
    await zk.close();
    await sim.stop();
  }
  return { params: { ...p, mode: 'bamboo api process, callback mode; wrk client' }, result: out };
}
