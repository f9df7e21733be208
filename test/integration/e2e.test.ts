/**
 * End to end: the whole system as `bamboo demo` runs it (real ZooKeeper, two api copies and a worker
 * as child processes, a managed HAProxy, real HTTP backends), with only Marathon simulated.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { demoBanner, startDemo, type RunningDemo } from '../../cli/demo.js';
import { MEMORY_NODE_FLAGS } from '../../cli/node-options.js';
import { startBackend, httpGet, type Backend } from '../../harness/http.js';
import { waitFor, sleep } from '../../harness/process.js';

/** Sends `n` requests and tallies which backend answered (the body starts with its name). */
async function tally(url: string, n: number, host?: string): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await httpGet(url, { host });
    const name = r.status === 200 ? r.body.split(' ')[0] : `status-${r.status}`;
    seen[name] = (seen[name] ?? 0) + 1;
  }
  return seen;
}

async function put(url: string, body: unknown): Promise<number> {
  const r = await fetch(url, { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  await r.text();
  return r.status;
}

function tcpRoundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    let got = '';
    sock.setTimeout(3000, () => {
      sock.destroy();
      reject(new Error('tcp timeout'));
    });
    sock.on('connect', () => sock.write(text));
    sock.on('data', (d) => {
      got += d.toString();
      if (got.length >= text.length) {
        sock.end();
        resolve(got);
      }
    });
    sock.on('error', reject);
  });
}

describe('end to end: the demo stack with a simulated Marathon', function () {
  this.timeout(120000);
  let demo: RunningDemo;
  const extra: Backend[] = [];
  const hp = (path: string) => demo.haproxyUrl.replace(/\/$/, '') + path;

  before(async () => {
    demo = await startDemo({ logLevel: 'warn' });
  });
  after(async () => {
    await Promise.all(extra.map((b) => b.close()));
    await demo?.stop();
  });

  it('runs the api copies and the worker with the heap flags production uses (cli/node-options.ts)', () => {
    for (const proc of [...demo.apis, demo.worker]) {
      const env = readFileSync(`/proc/${proc.pid}/environ`, 'utf8').split('\0');
      const options = env.find((e) => e.startsWith('NODE_OPTIONS='))?.slice('NODE_OPTIONS='.length).split(' ') ?? [];
      for (const flag of MEMORY_NODE_FLAGS) expect(options, `pid ${proc.pid}`).to.include(flag);
    }
  });

  it('makes an app deployed in Marathon reachable through HAProxy at its default path', async () => {
    const b = await startBackend('fresh-1');
    extra.push(b);
    const t0 = Date.now();
    demo.sim.deployApp({ id: '/e2e/fresh', cmd: 'x', instances: 1, portDefinitions: [{ port: 0 }] }, { tasks: [{ host: '127.0.0.1', ports: [b.port] }] });
    await waitFor(async () => (await httpGet(hp('/e2e/fresh/hello'))).body.startsWith('fresh-1'), 'new app routed', 20000, 20);
    // Reported, not asserted: speed belongs to the benchmarks.
    console.log(`      deploy -> routed in ${Date.now() - t0} ms`);
    expect((await httpGet(hp('/e2e/freshness'))).status, '/e2e/fresh must not capture /e2e/freshness').to.equal(503);
  });

  it('routes by host after a rule is set through the second api copy, via a worker subscribed to both', async () => {
    expect(await put(`${demo.uiUrls[1]}api/services//demo/shop/api`, { acl: 'hdr(host) -i shop.e2e.local' })).to.be.oneOf([200, 201]);
    await waitFor(async () => (await httpGet(hp('/anything'), { host: 'shop.e2e.local' })).body.startsWith('shop-api'), 'host rule live', 20000, 20);
    // The other copy serves the same rule.
    const viaFirst = await (await fetch(`${demo.uiUrls[0]}api/services//demo/shop/api`)).json();
    expect(viaFirst).to.deep.include({ Id: '/demo/shop/api', Acl: 'hdr(host) -i shop.e2e.local' });
  });

  it('restores the default path rule when the rule is deleted', async () => {
    const r = await fetch(`${demo.uiUrls[0]}api/services//demo/shop/api`, { method: 'DELETE' });
    expect(r.status).to.be.oneOf([200, 204]);
    await waitFor(async () => (await httpGet(hp('/anything'), { host: 'shop.e2e.local' })).status === 503, 'host rule gone', 20000, 20);
    expect((await httpGet(hp('/demo/shop/api/x'))).body).to.match(/^shop-api-\d/);
  });

  it('sends traffic to new tasks on scale-up and stops sending it to removed ones on scale-down', async () => {
    const snapshots = async () => (await (await fetch(demo.workerStatusUrl)).json()).snapshots as { reads: number; deltas: number };
    const before = await snapshots();
    const more = [await startBackend('web-3'), await startBackend('web-4')];
    extra.push(...more);
    demo.sim.scaleApp('/demo/web', 4, { tasks: more.map((b) => ({ host: '127.0.0.1', ports: [b.port] })) });
    await waitFor(async () => {
      const seen = await tally(hp('/demo/web/'), 12);
      return seen['web-3'] && seen['web-4'];
    }, 'new tasks to get traffic', 20000, 50);
    const tasks = demo.sim.tasks('/demo/web');
    const gone = tasks.filter((t) => t.ports[0] === more[0].port || t.ports[0] === more[1].port);
    for (const t of gone) demo.sim.killTask(t.id, { scale: true });
    await waitFor(async () => {
      const seen = await tally(hp('/demo/web/'), 12);
      return !seen['web-3'] && !seen['web-4'] && (seen['web-1'] ?? 0) + (seen['web-2'] ?? 0) === 12;
    }, 'removed tasks to get no traffic', 20000, 50);
    // Task churn reached the worker as hint deltas (common/core/snapshot-delta.ts), not only as snapshot reads.
    const after = await snapshots();
    expect(after.deltas - before.deltas, JSON.stringify({ before, after })).to.be.greaterThan(0);
  });

  it('gives no traffic to a task whose health check fails, and takes it back when healthy', async () => {
    const [t1] = demo.sim.tasks('/demo/web').filter((t) => t.ports[0] === demo.backends['/demo/web'][0].port);
    demo.sim.setTaskHealth(t1.id, false);
    await waitFor(async () => {
      const seen = await tally(hp('/demo/web/'), 8);
      return !seen['web-1'] && seen['web-2'] === 8;
    }, 'unhealthy task out of rotation', 20000, 50);
    demo.sim.setTaskHealth(t1.id, true);
    await waitFor(async () => (await tally(hp('/demo/web/'), 8))['web-1'], 'healthy task back', 20000, 50);
  });

  it('fails no request during a rolling deployment', async () => {
    const fresh = [await startBackend('web-r1'), await startBackend('web-r2')];
    extra.push(...fresh);
    const olds = demo.sim.tasks('/demo/web');
    // A killed task's process really goes away once Marathon reports it killed.
    const byPort = new Map(demo.backends['/demo/web'].map((b) => [b.port, b]));
    const off = demo.sim.onEvent((e) => {
      const d = e.data as { taskStatus?: string; ports?: number[] };
      if (e.eventType === 'status_update_event' && d.taskStatus === 'TASK_KILLED') void byPort.get(d.ports?.[0] ?? -1)?.close();
    });
    let running = true;
    let ok = 0;
    const failures: string[] = [];
    const load = (async () => {
      while (running) {
        try {
          const r = await httpGet(hp('/demo/web/'));
          if (r.status === 200) ok++;
          else failures.push(`status ${r.status}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    })();
    try {
      const { done } = demo.sim.rollingRestart('/demo/web', {
        tasks: fresh.map((b) => ({ host: '127.0.0.1', ports: [b.port] })),
        stepDelayMs: 1500,
        // Like a Marathon readiness/health gate: the old task goes only once the new one serves.
        beforeKill: async (_old, replacement) => {
          const name = fresh.find((b) => b.port === replacement.ports[0])!.name;
          await waitFor(async () => (await tally(hp('/demo/web/'), 6))[name], `${name} to get traffic`, 20000, 50);
        },
      });
      await done;
      await waitFor(async () => {
        const seen = await tally(hp('/demo/web/'), 8);
        return (seen['web-r1'] ?? 0) + (seen['web-r2'] ?? 0) === 8;
      }, 'only the new tasks to get traffic', 20000, 50);
    } finally {
      running = false;
      await load;
      off();
    }
    expect(failures, `${failures.length} failed of ${ok + failures.length}`).to.deep.equal([]);
    expect(olds).to.have.length(2);
    expect(ok).to.be.greaterThan(20);
  });

  it('serves /demo/secure over HTTPS with its own certificate and redirects its plain HTTP, as the printed curl lines say', async function () {
    if (!demo.https) this.skip();
    const banner = demoBanner(demo);
    const run = async (marker: string) => {
      const line = banner.find((l) => l.includes(marker));
      expect(line, `a printed line with ${marker}`).to.be.a('string');
      const cmd = line!.replace(/\s+#.*$/, '').trim();
      return (await promisify(execFile)('sh', ['-c', cmd], { timeout: 15000 })).stdout;
    };
    expect(await run('--cacert')).to.match(/^secure-1/);
    expect(await run('redirects HTTP to HTTPS')).to.match(new RegExp(`^location: https://secure\\.demo\\.local:${demo.https!.port}/demo/secure/`, 'mi'));
    expect(await run('the default certificate')).to.contain('CN = edge.demo.local');
  });

  it('routes by the label HAPROXY_0_VHOST and by an api rule, as the printed curl lines say', async () => {
    const banner = demoBanner(demo);
    const line = (marker: string) => {
      const l = banner.find((x) => x.includes(marker));
      expect(l, `a printed line with ${marker}`).to.be.a('string');
      return l!.replace(/\s+#.*$/, '').trim();
    };
    const sh = async (cmd: string) => (await promisify(execFile)('sh', ['-c', cmd], { timeout: 15000 })).stdout;
    expect(await sh(line('HAPROXY_0_VHOST'))).to.match(/^shop-web-1/);
    // The rule: set through the api, routed by its host, removed again.
    const byRule = line('# now routed by host, by the api rule');
    expect(await sh(byRule)).to.not.match(/^shop-api/);
    await sh(line('an api rule for app /demo/shop/api'));
    await waitFor(async () => /^shop-api-\d/.test(await sh(byRule)), 'the printed rule to route', 20000, 50);
    await sh(line('back to the default rule'));
    await waitFor(async () => !/^shop-api/.test(await sh(byRule)), 'the printed rule to be gone', 20000, 50);
  });

  it('carries raw TCP through the BAMBOO_TCP_PORT listener', async () => {
    expect(await tcpRoundTrip(demo.tcpPort, 'ping over tcp\n')).to.equal('ping over tcp\n');
  });

  it('keeps working through the other api copy when one copy stops', async () => {
    await demo.apis[0].stop('SIGTERM');
    expect(await put(`${demo.uiUrls[1]}api/services//demo/web`, { acl: 'hdr(host) -i web.e2e.local' })).to.be.oneOf([200, 201]);
    await waitFor(async () => (await httpGet(hp('/'), { host: 'web.e2e.local' })).body.startsWith('web-r'), 'rule via the surviving copy', 20000, 20);
    // Marathon changes still arrive: the surviving copy takes over the event stream.
    const b = await startBackend('after-failover');
    extra.push(b);
    demo.sim.deployApp({ id: '/e2e/after', cmd: 'x', instances: 1, portDefinitions: [{ port: 0 }] }, { tasks: [{ host: '127.0.0.1', ports: [b.port] }] });
    await waitFor(async () => (await httpGet(hp('/e2e/after/'))).body.startsWith('after-failover'), 'app deployed after failover routed', 40000, 50);
  });

  it('converges after the worker is killed and restarted, with HAProxy serving meanwhile', async () => {
    await demo.restartWorker('SIGKILL');
    // While no worker runs, a change is made; HAProxy keeps serving the last config.
    expect((await httpGet(hp('/e2e/fresh/'))).body).to.match(/^fresh-1/);
    const b = await startBackend('while-down');
    extra.push(b);
    demo.sim.deployApp({ id: '/e2e/while-down', cmd: 'x', instances: 1, portDefinitions: [{ port: 0 }] }, { tasks: [{ host: '127.0.0.1', ports: [b.port] }] });
    await waitFor(async () => (await httpGet(hp('/e2e/while-down/'))).body.startsWith('while-down'), 'restarted worker converges', 40000, 50);
    await sleep(10);
  });
});
