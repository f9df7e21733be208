/**
 * The shrink guard (review finding F9): a Marathon answer that would take most routes off the edge is
 * held back. First its pure decisions as tables, then from an attacker's seat (a Marathon, or a proxy
 * answering for it, that serves an empty or nearly empty app list) against real ZooKeeper, the
 * Marathon simulator, api copies and, for the traffic, a worker running a real HAProxy.
 */
import { expect } from 'chai';
import { runApi, type RunningApi } from '../../api/main.js';
import { countAnswer, decide, settledRecord, shrinkReason, type Counts, type GuardRecord, type HeldAnswer, type ShrinkPolicy } from '../../api/shrink-policy.js';
import { type Config } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { ControlStore } from '../../common/adapters/zookeeper/snapshot.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { runWorker } from '../../worker/main.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { measured } from '../support/faults.js';
import { httpGet, jsonCall, startBackend, type Backend } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { sleep, waitFor } from '../../harness/process.js';
import { startStatsd } from '../support/statsd.js';
import { sharedZooKeeper, uniquePath } from '../../harness/zookeeper.js';
import { testLogger, testSetup, workerConfig } from '../worker-fixtures.js';

const log = testLogger('shrink-guard');
const POLICY: ShrinkPolicy = { percent: 50, minDrop: 5, holdMs: 300000 };
const c = (apps: number, tasks: number): Counts => ({ apps, tasks });
const NONE: GuardRecord = { held: null, peak: null };

function heldAnswer(over: Partial<HeldAnswer> = {}): HeldAnswer {
  return { id: 'h1', reason: 'apps', before: c(100, 100), after: c(1, 1), since: 1000, seenAt: 1000, appliesAt: 1000 + POLICY.holdMs, copy: 'a', confirmed: null, ...over };
}

describe('shrink guard: decisions (pure)', () => {
  const cases: Array<[string, Counts, Counts, string | null]> = [
    ['an empty answer after one app', c(1, 1), c(0, 0), 'empty'],
    ['an empty answer after 10,023 apps', c(10023, 30000), c(0, 0), 'empty'],
    ['a 99.8 % shrink of the apps', c(10023, 30000), c(22, 66), 'apps'],
    ['most tasks gone, every app still there', c(100, 300), c(100, 100), 'tasks'],
    ['deleting 1 of 3 apps (below the minimum drop)', c(3, 3), c(2, 2), null],
    ['scaling 4 tasks down to 1 (below the minimum drop)', c(1, 4), c(1, 1), null],
    ['deleting 40 % of 100 apps (under the share)', c(100, 100), c(60, 60), null],
    ['deleting exactly half (not more than the share)', c(100, 100), c(50, 50), null],
    ['deleting 51 of 100 apps', c(100, 100), c(49, 49), 'apps'],
    ['growing', c(3, 3), c(300, 300), null],
    ['nothing before', c(0, 0), c(0, 0), null],
  ];
  for (const [name, before, after, want] of cases) {
    it(`${want ? 'holds' : 'applies'} ${name}`, () => {
      expect(shrinkReason(before, after, POLICY)).to.equal(want);
    });
  }

  it('counts only tasks that can take traffic, so marking every task killed or unhealthy is a shrink too', () => {
    const t = (extra: Record<string, unknown> = {}) => ({ id: 'x', host: 'h', ports: [1], state: 'TASK_RUNNING', startedAt: '2024-01-01T00:00:00.000Z', ...extra });
    const apps = [
      { id: '/a', tasks: [t(), t({ healthCheckResults: [{ alive: true }] }), t({ healthCheckResults: [] })] },
      { id: '/b', tasks: [t({ state: 'TASK_KILLED' }), t({ state: 'TASK_STAGING', startedAt: null }), t({ healthCheckResults: [{ alive: true }, { alive: false }] })] },
      { id: '/c' },
      null,
    ];
    expect(countAnswer(apps)).to.deep.equal({ apps: 4, tasks: 3 });
    const sick = Array.from({ length: 10 }, (_, i) => ({ id: `/s${i}`, tasks: [t({ healthCheckResults: [{ alive: false }] })] }));
    const well = sick.map((a) => ({ ...a, tasks: [t()] }));
    expect(shrinkReason(countAnswer(well), countAnswer(sick), POLICY)).to.equal('tasks');
  });

  const base = { id: () => 'h2', policy: POLICY, copy: 'b' };
  it('holds a shrink cut into steps: the reference is the largest snapshot stored within the hold time', () => {
    // 100 apps, then 55 stored (45 %, applied); then 30: 45 % of 55, but 70 % of the recent peak.
    const record: GuardRecord = { held: null, peak: { ...c(100, 100), at: 5000 } };
    const d = decide({ ...base, record, stored: c(55, 55), answer: c(30, 30), now: 6000 });
    expect(d.action).to.equal('hold');
    // Once the peak is older than the hold time, the stored snapshot alone is the reference.
    expect(decide({ ...base, record, stored: c(55, 55), answer: c(30, 30), now: 5000 + POLICY.holdMs }).action).to.equal('apply');
  });

  it('keeps the streak: the latest suspicious answer is held since the first, and applies after the hold time', () => {
    const record: GuardRecord = { held: heldAnswer(), peak: null };
    const d = decide({ ...base, record, stored: c(100, 100), answer: c(2, 2), now: 2000 });
    expect(d).to.deep.include({ action: 'hold' });
    expect((d as { held: HeldAnswer }).held).to.deep.include({ id: 'h2', since: 1000, appliesAt: 1000 + POLICY.holdMs });
    expect(decide({ ...base, record, stored: c(100, 100), answer: c(2, 2), now: 1000 + POLICY.holdMs })).to.deep.equal({ action: 'apply', ended: 'expired', resetPeak: true });
  });

  it('drops a held answer when Marathon answers normally again', () => {
    const record: GuardRecord = { held: heldAnswer(), peak: null };
    expect(decide({ ...base, record, stored: c(100, 100), answer: c(100, 100), now: 2000 })).to.deep.equal({ action: 'apply', ended: 'recovered', resetPeak: false });
    expect(settledRecord(record, c(100, 100), 2000, POLICY.holdMs, false).held).to.equal(null);
  });

  it('applies a confirmed answer, and holds anew one that shrinks further than what was confirmed', () => {
    const record: GuardRecord = { held: heldAnswer({ after: c(10, 10), confirmed: { at: 1500, copy: 'b' } }), peak: null };
    expect(decide({ ...base, record, stored: c(100, 100), answer: c(10, 10), now: 2000 })).to.deep.equal({ action: 'apply', ended: 'confirmed', resetPeak: true });
    const further = decide({ ...base, record, stored: c(100, 100), answer: c(0, 0), now: 2000 });
    expect(further.action).to.equal('hold');
    expect((further as { held: HeldAnswer }).held).to.deep.include({ reason: 'empty', since: 2000, confirmed: null });
  });

  it('never holds the first snapshot, nor an answer that takes nothing away from what is stored', () => {
    expect(decide({ ...base, record: NONE, stored: null, answer: c(0, 0), now: 1 }).action).to.equal('apply');
    const record: GuardRecord = { held: null, peak: { ...c(1000, 1000), at: 1 } };
    expect(decide({ ...base, record, stored: c(10, 10), answer: c(10, 10), now: 2 }).action).to.equal('apply');
  });

  it('raises the peak on growth and resets it when a held answer applied', () => {
    const record: GuardRecord = { held: null, peak: { ...c(10, 10), at: 1 } };
    expect(settledRecord(record, c(20, 5), 2, POLICY.holdMs, false).peak).to.deep.equal({ ...c(20, 10), at: 2 });
    expect(settledRecord(record, c(5, 5), 2, POLICY.holdMs, false).peak).to.equal(record.peak);
    expect(settledRecord(record, c(1, 1), 3, POLICY.holdMs, true).peak).to.deep.equal({ ...c(1, 1), at: 3 });
  });
});

describe('shrink guard: Marathon cannot wipe the edge (simulator, ZooKeeper, api copies, HAProxy)', function () {
  this.timeout(90000);
  let conn: string;
  let zk: Zk;
  const cleanups: Array<() => Promise<unknown> | unknown> = [];

  before(async () => {
    conn = (await sharedZooKeeper()).connectionString;
    zk = new Zk({ connectionString: conn, log });
    await zk.start();
  });
  after(async () => {
    await zk.close();
  });
  afterEach(async () => {
    for (const f of cleanups.splice(0).reverse()) await f();
  });

  async function sim(): Promise<MarathonSimulator> {
    const s = new MarathonSimulator({ heartbeatMs: 60000 });
    await s.start();
    cleanups.push(() => s.stop());
    return s;
  }

  function apiConfig(s: MarathonSimulator, paths: { rules: string; control: string }, over: Record<string, string | number | boolean> = {}): Readonly<Config> {
    return loadConfig({
      env: {},
      overrides: {
        'Bamboo.Zookeeper.Host': conn,
        'Bamboo.Zookeeper.Path': paths.rules,
        'Bamboo.Zookeeper.ControlPath': paths.control,
        'Bamboo.Zookeeper.SessionTimeoutMs': 4000,
        'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
        'Marathon.Endpoint': s.url,
        'Marathon.ResyncIntervalMs': 0,
        'Bamboo.Endpoint': 'http://127.0.0.1:9',
        ...over,
      },
    });
  }

  async function api(cfg: Readonly<Config>): Promise<RunningApi> {
    const port = await freePort();
    const a = await runApi(cfg, log, { bind: `127.0.0.1:${port}`, intake: { subscriptionCheckMs: 60000, emptyConfirmDelayMs: 200 } });
    cleanups.push(() => a.close());
    return a;
  }

  /** A routing event, so the copy fetches now (the simulator's fault switches send none). */
  async function poke(a: RunningApi): Promise<void> {
    const r = await jsonCall('POST', `${a.url}/api/marathon/event_callback`, { eventType: 'status_update_event' });
    expect(r.status).to.equal(202);
  }

  async function held(a: RunningApi): Promise<HeldAnswer | null> {
    return (await jsonCall('GET', `${a.url}/status`)).json.marathon.held as HeldAnswer | null;
  }

  async function storedApps(control: ControlStore): Promise<number> {
    return (await control.readSnapshot())?.apps.length ?? -1;
  }

  function deploy(s: MarathonSimulator, n: number, task: (i: number) => { host: string; ports: number[] }, prefix = '/fleet/app-'): void {
    for (let i = 0; i < n; i++) {
      s.deployApp({ id: `${prefix}${String(i).padStart(2, '0')}`, cmd: 'x', instances: 1, portDefinitions: [{ port: 0 }] }, { tasks: [task(i)] });
    }
  }

  it('keeps HAProxy answering from the backends through an empty and a 99 % shrinking answer, drops the first on recovery and applies the second after the hold', async () => {
    const s = await sim();
    const backends: Backend[] = [];
    for (const name of ['b-0', 'b-1', 'b-2']) {
      const b = await startBackend(name);
      backends.push(b);
      cleanups.push(() => b.close());
    }
    deploy(s, 100, (i) => ({ host: '127.0.0.1', ports: [backends[i % 3].port] }));
    const setup = await testSetup();
    const paths = { rules: setup.rulesPath, control: setup.controlPath };
    const holdMs = 5000;
    const a = await api(apiConfig(s, paths, { 'Marathon.ShrinkGuardHoldMs': holdMs }));
    const control = new ControlStore(zk, paths.control);
    await waitFor(async () => (await storedApps(control)) === 100, 'the first snapshot');
    const w = await runWorker(workerConfig(setup), log, { bind: '127.0.0.1:0', retryInitialMs: 200 });
    cleanups.push(() => w.close());

    // Traffic to three apps, one kept by the shrink and two it removes, all the time.
    const probes = ['/fleet/app-00/', '/fleet/app-50/', '/fleet/app-99/'];
    const results: Array<{ at: number; path: string; ok: boolean; body: string }> = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        for (const path of probes) {
          const r = await httpGet(`http://127.0.0.1:${setup.httpPort}${path}`, { timeoutMs: 2000 }).catch((e: Error) => ({ status: 0, body: e.message }));
          results.push({ at: Date.now(), path, ok: r.status === 200 && /^b-\d/.test(r.body), body: `${r.status} ${r.body.slice(0, 60)}` });
        }
        await sleep(20);
      }
    })();
    cleanups.push(async () => {
      running = false;
      await loop;
    });
    await waitFor(() => probes.every((p) => results.some((r) => r.path === p && r.ok)), 'every probe to be routed by HAProxy', 20000, 50);
    const failedBetween = (t0: number, t1: number) => results.filter((r) => r.at >= t0 && r.at <= t1 && !r.ok);
    const versionBefore = await control.snapshotVersion();

    // 1. Marathon answers an empty list for longer than the old one-second confirmation.
    const emptyAt = Date.now();
    s.faults.emptyApps = true;
    await poke(a);
    for (let i = 0; i < 7; i++) {
      await sleep(300);
      await poke(a); // more fetches, each still empty
    }
    expect(await control.snapshotVersion(), 'an empty answer lasting 2 s is not stored').to.equal(versionBefore);
    expect(failedBetween(emptyAt, Date.now()), 'failures while Marathon answered empty').to.deep.equal([]);
    const e = (await held(a))!;
    expect(e, '/status shows the held answer').to.not.equal(null);
    expect(e.reason).to.equal('empty');
    expect(e.before.apps).to.equal(100);
    expect(e.after).to.deep.equal({ apps: 0, tasks: 0 });
    expect(e.appliesAt).to.equal(e.since + holdMs);
    // Marathon recovers: the held answer is dropped, nothing was ever stored.
    s.faults.emptyApps = false;
    await poke(a);
    await waitFor(async () => (await held(a)) === null, 'the held empty answer to be dropped');
    const recoveredAt = Date.now();
    expect(await control.snapshotVersion()).to.equal(versionBefore);
    expect(recoveredAt - emptyAt).to.be.greaterThan(1500);

    // 2. Marathon answers 1 app of 100: held for the whole hold time, then applied by itself.
    await sleep(300);
    const shrinkAt = Date.now();
    s.faults.keepApps = 1;
    await poke(a);
    await sleep(1000);
    await poke(a);
    await sleep(300);
    expect(await storedApps(control), 'a 99 % shrink is not applied at once').to.equal(100);
    const h = (await waitFor(() => held(a), 'the 99 % shrink to be held'))!;
    expect(h).to.deep.include({ reason: 'apps', before: { apps: 100, tasks: 100 }, after: { apps: 1, tasks: 1 } });
    const state = await jsonCall('GET', `${a.url}/api/state`);
    expect(state.json.Apps, '/api/state still serves the previous snapshot').to.have.length(100);
    await waitFor(async () => (await storedApps(control)) === 1, 'the held answer to apply after the hold time', holdMs + 15000, 100);
    const appliedAt = Date.now();
    expect(appliedAt, 'not applied before the hold time').to.be.at.least(h.appliesAt);
    await waitFor(async () => (await held(a)) === null, 'the held answer to be cleared once applied');

    const during = results.filter((r) => r.at >= emptyAt && r.at <= appliedAt - 200);
    expect(during.length, 'requests sent during the hold').to.be.greaterThan(50);
    expect(failedBetween(emptyAt, recoveredAt), 'failures while the empty answer was held').to.deep.equal([]);
    expect(failedBetween(shrinkAt, appliedAt - 200), 'failures while the shrink was held').to.deep.equal([]);
    const inWindow = (t0: number, t1: number) => results.filter((r) => r.at >= t0 && r.at <= t1);
    measured('marathon.shrink-guard', {
      emptyHeldMs: recoveredAt - emptyAt,
      emptyRequests: inWindow(emptyAt, recoveredAt).length,
      emptyFailed: failedBetween(emptyAt, recoveredAt).length,
      shrinkHeldMs: appliedAt - shrinkAt,
      shrinkRequests: inWindow(shrinkAt, appliedAt).length,
      shrinkFailed: failedBetween(shrinkAt, appliedAt - 200).length,
      appliedAfterAppliesAtMs: appliedAt - h.appliesAt,
    });
    // Then the removed apps really leave HAProxy, and the kept one still routes.
    await waitFor(async () => (await httpGet(`http://127.0.0.1:${setup.httpPort}/fleet/app-99/`)).status === 503, 'the removed apps to leave HAProxy', 20000, 100);
    expect((await httpGet(`http://127.0.0.1:${setup.httpPort}/fleet/app-00/`)).body).to.match(/^b-0/);
  });

  it('applies a held answer when an operator confirms it on another copy, and refuses unauthenticated and stale confirms', async () => {
    const s = await sim();
    deploy(s, 20, (i) => ({ host: '10.0.0.1', ports: [31000 + i] }));
    const statsd = await startStatsd();
    cleanups.push(() => statsd.stop());
    const paths = { rules: uniquePath('/sg-rules'), control: uniquePath('/sg-control') };
    const TOKEN = 'shrink-guard-token';
    const over = { 'Marathon.ShrinkGuardHoldMs': 600000, 'Bamboo.AuthToken': TOKEN, 'StatsD.Enabled': true, 'StatsD.Host': statsd.host, 'StatsD.Prefix': 'sg.' };
    const a = await api(apiConfig(s, paths, over));
    const b = await api(apiConfig(s, paths, over));
    const control = new ControlStore(zk, paths.control);
    await waitFor(async () => (await storedApps(control)) === 20, 'the first snapshot');
    await a.intake.idle();
    await b.intake.idle();
    const confirm = (id: unknown, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) =>
      jsonCall('POST', `${b.url}/api/marathon/held/confirm`, { id }, headers);

    expect((await confirm('x')).json.code, 'nothing held yet').to.equal('BAMBOO_NOTHING_HELD');

    s.faults.keepApps = 1;
    await poke(a);
    const first = (await waitFor(() => held(b), "a's held answer to show on b (shared in ZooKeeper)"))!;
    expect(first.after.apps).to.equal(1);

    const anonymous = await confirm(first.id, {});
    expect(anonymous.status).to.equal(401);
    expect(anonymous.json.code).to.equal('BAMBOO_UNAUTHORIZED');
    const forged = await confirm(first.id, { authorization: 'Bearer guessed' });
    expect(forged.status).to.equal(401);
    expect((await confirm(undefined)).json.code).to.equal('BAMBOO_INVALID_BODY');

    // Marathon's answer changes while the operator looks at the first one: that confirm is stale.
    s.faults.keepApps = 2;
    await poke(a);
    const second = (await waitFor(async () => {
      const x = await held(b);
      return x && x.id !== first.id ? x : null;
    }, 'the held answer to change'))!;
    expect(second.since, 'the hold keeps counting from the first answer').to.equal(first.since);
    const stale = await confirm(first.id);
    expect(stale.status).to.equal(409);
    expect(stale.json.code).to.equal('BAMBOO_HELD_CHANGED');
    expect(stale.json.held.id).to.equal(second.id);
    expect(await storedApps(control), 'a refused confirm applies nothing').to.equal(20);

    const ok = await confirm(second.id);
    expect(ok.status, ok.text).to.equal(202);
    expect(ok.json.held.confirmed.copy).to.equal(b.id);
    await waitFor(async () => (await storedApps(control)) === 2, 'the confirmed answer to apply');
    await waitFor(async () => (await held(a)) === null && (await held(b)) === null, 'no answer held on either copy');
    const again = await confirm(second.id);
    expect(again.status).to.equal(409);
    expect(again.json.code).to.equal('BAMBOO_NOTHING_HELD');

    // After the confirm, the confirmed size is the reference: Marathon growing back applies at once.
    s.faults.keepApps = null;
    await poke(a);
    await waitFor(async () => (await storedApps(control)) === 20, 'the full answer to apply at once');

    await waitFor(async () => ((await statsd.counters())['sg.marathon.held.confirmed'] ?? 0) >= 1, 'StatsD marathon.held.confirmed');
    const counters = await statsd.counters();
    expect(counters['sg.marathon.fetch.failed.suspicious_shrink']).to.be.at.least(2);
    const gauges = (await statsd.admin('gauges')) as Record<string, number>;
    expect(gauges['sg.marathon.held']).to.equal(0);
  });

  it('applies a held answer after the hold time on another copy when the copy that held it is gone', async () => {
    const s = await sim();
    deploy(s, 20, (i) => ({ host: '10.0.0.4', ports: [34000 + i] }));
    const paths = { rules: uniquePath('/sg-rules'), control: uniquePath('/sg-control') };
    const cfg = apiConfig(s, paths, { 'Marathon.ShrinkGuardHoldMs': 3000 });
    const a = await api(cfg);
    const b = await api(cfg);
    const control = new ControlStore(zk, paths.control);
    await waitFor(async () => (await storedApps(control)) === 20, 'the first snapshot');
    await a.intake.idle();
    await b.intake.idle();
    s.faults.keepApps = 1;
    await poke(a);
    const h = (await waitFor(() => held(b), "a's held answer to show on b"))!;
    await a.close();
    // No event and no resync timer: b fetches by itself when the hold is over.
    await waitFor(async () => (await storedApps(control)) === 1, 'b to apply the held answer', 15000, 100);
    expect(Date.now()).to.be.at.least(h.appliesAt);
  });

  it('applies small deletions at once, and measures a shrink cut into steps against where it started', async () => {
    const s = await sim();
    deploy(s, 3, (i) => ({ host: '10.0.0.2', ports: [32000 + i] }));
    const paths = { rules: uniquePath('/sg-rules'), control: uniquePath('/sg-control') };
    const a = await api(apiConfig(s, paths, { 'Marathon.ShrinkGuardHoldMs': 600000 }));
    const control = new ControlStore(zk, paths.control);
    await waitFor(async () => (await storedApps(control)) === 3, 'the first snapshot');
    // Deleting 1 of 3 apps is an everyday operation: applied at once.
    s.destroyApp('/fleet/app-02');
    await poke(a);
    await waitFor(async () => (await storedApps(control)) === 2, 'the deletion to apply at once');
    expect(await held(a)).to.equal(null);

    // A bigger fleet, then a shrink in two steps: 22 -> 12 (45 %, under the share, applied) -> 7
    // (42 % of 12, but 68 % of the 22 stored a moment ago: held).
    deploy(s, 20, (i) => ({ host: '10.0.0.3', ports: [33000 + i] }), '/more/app-');
    await poke(a);
    await waitFor(async () => (await storedApps(control)) === 22, 'the bigger fleet');
    s.faults.keepApps = 12;
    await poke(a);
    await waitFor(async () => (await storedApps(control)) === 12, 'the first step to apply');
    s.faults.keepApps = 7;
    await poke(a);
    const h = (await waitFor(() => held(a), 'the second step to be held'))!;
    expect(h.before.apps, 'measured against the peak').to.equal(22);
    await a.intake.idle();
    expect(await storedApps(control)).to.equal(12);
  });
});
