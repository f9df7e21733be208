/**
 * Benchmark of the api process against real ZooKeeper, real ZeroMQ and the Marathon simulator.
 * Prints one JSON object:
 *
 * - `getServices` / `putService`: requests per second with 1,000 rules stored (keep-alive clients,
 *   fixed concurrency, bounded duration; PUT replaces random existing rules, no If-Match);
 * - `burst`: Marathon fetches caused by a burst of 1,000 status updates delivered by Marathon's
 *   callbacks, and the time until the final state is published;
 * - `eventToPublish`: from a Marathon change (scale) to the `marathon` hint received by a ZeroMQ
 *   subscriber, repeated, median and spread.
 *
 * Run: npx tsx bench/api.ts [--duration-ms 3000] [--concurrency 16] [--rounds 20]
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Subscriber } from 'zeromq';
import { runApi, type RunningApi } from '../api/main.js';
import { decodeHint, type Hint } from '../common/bus.js';
import { loadConfig } from '../common/config.js';
import { silentLogger } from '../common/log.js';
import { ControlStore } from '../common/snapshot.js';
import { Zk } from '../common/zk.js';
import { MarathonSimulator } from '../test/marathon-sim/index.js';
import { freePort } from '../test/support/ports.js';
import { startZooKeeper } from '../test/support/zookeeper.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const DURATION_MS = arg('duration-ms', 3000);
const CONCURRENCY = arg('concurrency', 16);
const ROUNDS = arg('rounds', 20);
const RULES = 1000;

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function send(url: string, method: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method, agent, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/** A closed-loop load: CONCURRENCY workers sending back to back for DURATION_MS. */
async function load(next: () => { url: string; method: string; body?: string }, okStatus: (s: number) => boolean) {
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + DURATION_MS;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const r = next();
        const s = performance.now();
        const status = await send(r.url, r.method, r.body).catch(() => 0);
        latencies.push(performance.now() - s);
        if (!okStatus(status)) errors++;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  return {
    requests: latencies.length,
    requestsPerSecond: round(latencies.length / secs, 0),
    errors,
    latencyMs: { p50: round(quantile(latencies, 0.5), 2), p99: round(quantile(latencies, 0.99), 2) },
  };
}

async function hintsOf(api: RunningApi): Promise<{ hints: Array<Hint & { receivedAt: number }>; close(): void }> {
  const sub = new Subscriber({ linger: 0 });
  sub.connect(api.registration.zmq);
  sub.subscribe('bamboo');
  const hints: Array<Hint & { receivedAt: number }> = [];
  void (async () => {
    for await (const frames of sub) {
      const h = decodeHint(frames as Buffer[]);
      if (h) hints.push({ ...h, receivedAt: performance.now() });
    }
  })().catch(() => undefined);
  while (hints.length === 0) {
    await api.publisher.publish('heartbeat');
    await new Promise((r) => setTimeout(r, 20));
  }
  return { hints, close: () => sub.close() };
}

async function waitUntil(fn: () => boolean | Promise<boolean>, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error('benchmark step timed out');
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function main(): Promise<void> {
  const log = silentLogger();
  const zkServer = await startZooKeeper();
  const sim = new MarathonSimulator({ heartbeatMs: 60000 });
  await sim.start();
  sim.deployApp({ id: '/bench/web', instances: 3 });
  const port = await freePort();
  const cfg = loadConfig({
    env: {},
    overrides: {
      'Bamboo.Zookeeper.Host': zkServer.connectionString,
      'Bamboo.Zookeeper.Path': '/bench/rules',
      'Bamboo.Zookeeper.ControlPath': '/bench/control',
      'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
      'Marathon.Endpoint': sim.url,
      'Marathon.ResyncIntervalMs': 0,
      'Bamboo.Endpoint': `http://127.0.0.1:${port}`,
    },
  });
  const api = await runApi(cfg, log, { bind: `127.0.0.1:${port}`, intake: { subscriptionCheckMs: 60000 } });
  const zk = new Zk({ connectionString: zkServer.connectionString, log });
  await zk.start();
  const control = new ControlStore(zk, cfg.Bamboo.Zookeeper.ControlPath);
  const out: Record<string, unknown> = {
    machine: { node: process.version, concurrency: CONCURRENCY, durationMs: DURATION_MS },
  };
  try {
    // --- 1,000 rules ---
    const t0 = performance.now();
    for (let i = 0; i < RULES; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, j) => send(`${api.url}/api/services//bench/app-${i + j}`, 'PUT', JSON.stringify({ acl: `path_beg -i /app-${i + j}` }))),
      );
    }
    out.createRules = { rules: RULES, ms: round(performance.now() - t0, 0), note: '50 concurrent PUTs at a time' };
    await send(`${api.url}/api/services`, 'GET'); // warm the cache
    out.getServices = await load(() => ({ url: `${api.url}/api/services`, method: 'GET' }), (s) => s === 200);
    let n = 0;
    out.putService = await load(
      () => {
        const i = n++ % RULES;
        return { url: `${api.url}/api/services//bench/app-${i}`, method: 'PUT', body: JSON.stringify({ acl: `path_beg -i /app-${i}-v${n}` }) };
      },
      (s) => s === 200,
    );
    out.getServicesAfterWrites = await load(() => ({ url: `${api.url}/api/services`, method: 'GET' }), (s) => s === 200);

    // --- a burst of 1,000 callbacks ---
    const { hints, close } = await hintsOf(api);
    try {
      await waitUntil(async () => (await control.readSnapshot()) !== null);
      await api.intake.idle();
      const fetches0 = sim.countRequests('/v2/apps');
      const delivered0 = sim.callbackStats.delivered;
      const taskId = sim.tasks('/bench/web')[0].id;
      const b0 = performance.now();
      for (let i = 0; i < 1000; i++) {
        sim.emit('status_update_event', { eventType: 'status_update_event', appId: '/bench/web', taskId, taskStatus: 'TASK_RUNNING', timestamp: new Date().toISOString() });
        if (i === 998) sim.scaleApp('/bench/web', 5);
      }
      await waitUntil(() => sim.callbackStats.delivered + sim.callbackStats.dropped - delivered0 >= 1000);
      const delivery = performance.now() - b0;
      let finalAt = 0;
      await waitUntil(async () => {
        const snap = await control.readSnapshot();
        const app = snap?.apps.find((a) => (a as { id?: string }).id === '/bench/web') as { tasks?: unknown[] } | undefined;
        const h = hints.filter((x) => x.kind === 'marathon').at(-1);
        if (app?.tasks?.length === 5 && h && h.snapshotVersion === snap!.version) {
          finalAt = h.receivedAt;
          return true;
        }
        return false;
      });
      await api.intake.idle();
      const quiet = performance.now() - b0;
      out.burst = {
        events: 1000,
        marathonFetches: sim.countRequests('/v2/apps') - fetches0,
        callbacksDroppedByMarathon: sim.callbackStats.dropped,
        deliveryMs: round(delivery, 0),
        untilFinalStatePublishedMs: round(finalAt - b0, 0),
        untilQuietMs: round(quiet, 0),
      };

      // --- event -> publish latency ---
      const lat: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        await api.intake.idle();
        await new Promise((res) => setTimeout(res, 300)); // past the minimum fetch interval: each round starts idle
        const seen = hints.length;
        const s0 = performance.now();
        sim.scaleApp('/bench/web', r % 2 === 0 ? 4 : 5);
        await waitUntil(() => hints.slice(seen).some((h) => h.kind === 'marathon'));
        const h = hints.slice(seen).find((x) => x.kind === 'marathon')!;
        lat.push(h.receivedAt - s0);
      }
      out.eventToPublish = {
        rounds: ROUNDS,
        medianMs: round(quantile(lat, 0.5), 1),
        minMs: round(Math.min(...lat), 1),
        p90Ms: round(quantile(lat, 0.9), 1),
        maxMs: round(Math.max(...lat), 1),
        note: `includes Marathon.FetchDebounceMs=${cfg.Marathon.FetchDebounceMs} ms, callback delivery, the /v2/apps fetch, the ZooKeeper write and ZeroMQ`,
      };
    } finally {
      close();
    }
  } finally {
    await api.close();
    await zk.close();
    await sim.stop();
    await zkServer.stop();
    agent.destroy();
  }
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
