/**
 * Wall-clock steps (review finding F7), at process level: the stack `bamboo demo` runs (two api
 * copies in callback mode, a worker with a managed HAProxy, the Marathon simulator), every bamboo
 * process started with test/support/clockshift.cjs, which moves `Date.now()` / `new Date()` by an
 * offset read from a file while timers and `performance.now()` stay monotonic, as with a real NTP
 * step. After a step of an hour back, and then an hour forward, a rule change must still be applied
 * by the worker and a Marathon callback must still lead to a fetch by each api within seconds.
 *
 * Needs `npm run build` (the demo spawns bin/bamboo.js, which runs dist/).
 */
import { expect } from 'chai';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemo, type RunningDemo } from '../../cli/demo.js';
import { call } from '../support/faults.js';
import { httpGet } from '../../harness/http.js';
import { waitFor } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';

const PRELOAD = fileURLToPath(new URL('../support/clockshift.cjs', import.meta.url));
const HOUR = 3_600_000;

describe('wall-clock steps of an hour (spawned api and worker, callback mode)', function () {
  this.timeout(120000);
  let demo: RunningDemo;
  const dir = tempDir('bamboo-clock-');
  const clockFile = join(dir, 'offset');

  before(async function () {
    this.timeout(90000);
    writeFileSync(clockFile, '0');
    demo = await startDemo({
      out: () => undefined,
      env: {
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${PRELOAD}`.trim(),
        CLOCKSHIFT_FILE: clockFile,
        MARATHON_USE_EVENT_STREAM: 'false',
      },
    });
  });

  after(async () => {
    await demo?.stop();
  });

  /** Sets the offset and waits until every bamboo process applies it. */
  async function step(offset: number): Promise<void> {
    writeFileSync(clockFile, String(offset));
    const pids = [...demo.apis.map((a) => a.pid), demo.worker.pid];
    await waitFor(
      () => pids.every((pid) => existsSync(`${clockFile}.ack-${pid}`) && Number(readFileSync(`${clockFile}.ack-${pid}`, 'utf8')) === offset),
      `every bamboo process to apply the clock offset ${offset}`,
      10000,
      20,
    );
  }

  async function fetchesOf(api: string): Promise<number> {
    const r = await call('GET', `${api}status`);
    return (r.json as { marathon: { fetches: number } }).marathon.fetches;
  }

  for (const [label, offset] of [['back', -HOUR], ['forward', HOUR]] as const) {
    it(`applies a rule change and fetches after a Marathon callback within seconds, after a step ${label} of an hour`, async () => {
      const path = `/stepped-${label}`;
      await step(offset);

      // Both at once, so a frozen worker and a frozen intake each show up on their own.
      const rule = (async () => {
        const put = await call('PUT', `${demo.uiUrls[0]}api/services//demo/shop/api`, { acl: `path_beg -i ${path}` });
        expect(put.status, put.text).to.be.oneOf([200, 201]);
        const t0 = performance.now();
        await waitFor(async () => (await httpGet(`${demo.haproxyUrl.replace(/\/$/, '')}${path}/x`)).body.startsWith('shop-api-'), `the worker to apply the rule for ${path}`, 10000, 50);
        return performance.now() - t0;
      })();
      const fetch = (async () => {
        const before = await Promise.all(demo.uiUrls.map(fetchesOf));
        const t1 = performance.now();
        // A routing event Marathon posts to every subscribed callback URL.
        demo.sim.startDeployment('/demo/web');
        await waitFor(
          async () => (await Promise.all(demo.uiUrls.map(fetchesOf))).every((n, i) => n > before[i]),
          'each api copy to fetch after the Marathon callback',
          10000,
          50,
        );
        return performance.now() - t1;
      })();
      const [ruleR, fetchR] = await Promise.allSettled([rule, fetch]);
      const failed = [ruleR, fetchR].filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as Error).message);
      expect(failed, `after a step ${label} of an hour`).to.deep.equal([]);
      const ruleMs = (ruleR as PromiseFulfilledResult<number>).value;
      const fetchMs = (fetchR as PromiseFulfilledResult<number>).value;
      console.log(`      measured clock step ${label}: rule routed in ${Math.round(ruleMs)} ms, both apis fetched in ${Math.round(fetchMs)} ms`);
    });
  }
});
