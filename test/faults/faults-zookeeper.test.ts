/**
 * Faults, part 1: ZooKeeper. The whole stack as `bamboo demo` runs it (two api copies and a worker as
 * child processes, a managed HAProxy, real backends, the Marathon simulator) on a real 3-node ZooKeeper
 * ensemble, which is then broken three ways:
 * - its leader is killed (SIGKILL by PID) during 500 rule writes through both api copies;
 * - the api copies and the worker are frozen longer than the session timeout (their sessions expire:
 *   registrations must return);
 * - all of it is down for 30 s (api degrades to cached reads and coded 503s, HAProxy keeps serving,
 *   everything recovers by itself).
 * A background load runs through HAProxy the whole time and must never see a failed request.
 * Every number is printed (`measured ...`) and collected for docs/RELIABILITY.md.
 */
import { expect } from 'chai';
import zookeeper from 'node-zookeeper-client';
import { startDemo, type RunningDemo } from '../../cli/demo.js';
import { queryEscape } from '../../common/adapters/zookeeper/zk-paths.js';
import { call, HttpLoad, measured, since } from '../support/faults.js';
import { httpGet, startBackend, type Backend } from '../../harness/http.js';
import { sleep, waitFor } from '../../harness/process.js';
import { pauseProcess, startEnsemble, waitForServing, type ZkServer } from '../../harness/zookeeper.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const SESSION_TIMEOUT_MS = 4000;

/** A raw client (no retries of our own): stats, ephemeral owners, and a view independent of the stack. */
async function rawClient(conn: string): Promise<ReturnType<typeof zookeeper.createClient>> {
  const c = zookeeper.createClient(conn, { sessionTimeout: 10000, spinDelay: 100 });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('raw ZooKeeper client did not connect')), 20000);
    c.once('connected', () => {
      clearTimeout(t);
      resolve();
    });
    c.connect();
  });
  return c;
}

type Raw = Awaited<ReturnType<typeof rawClient>>;

function getData(c: Raw, path: string): Promise<{ data: string; version: number; ephemeralOwner: string } | null> {
  return new Promise((resolve, reject) =>
    c.getData(path, (err, data, stat) => {
      if (err) {
        if ((err as { code?: number }).code === zookeeper.Exception.NO_NODE) resolve(null);
        else reject(err);
        return;
      }
      resolve({ data: (data ?? Buffer.alloc(0)).toString(), version: stat.version, ephemeralOwner: stat.ephemeralOwner.toString('hex') });
    }),
  );
}

function children(c: Raw, path: string): Promise<string[]> {
  return new Promise((resolve, reject) => c.getChildren(path, (err, names) => (err ? reject(err) : resolve(names ?? []))));
}

/** Ephemeral owner (session id) of every registration: api publishers and workers. */
async function registrations(c: Raw, control: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const dir of ['publishers', 'workers']) {
    for (const name of await children(c, `${control}/${dir}`)) {
      const node = await getData(c, `${control}/${dir}/${name}`);
      if (node) out[`${dir}/${name}`] = node.ephemeralOwner;
    }
  }
  return out;
}

describe('faults: ZooKeeper ensemble under the running stack', function () {
  this.timeout(150000);
  let ens: ZkServer;
  let demo: RunningDemo;
  let raw: Raw;
  let load: HttpLoad;
  const extra: Backend[] = [];
  const hp = (path: string) => demo.haproxyUrl.replace(/\/$/, '') + path;

  before(async function () {
    this.timeout(120000);
    ens = await startEnsemble(3);
    demo = await startDemo({
      zk: ens.connectionString,
      logLevel: 'info',
      out: () => undefined,
      // 500 writes as fast as ZooKeeper takes them: no write rate limit.
      env: { BAMBOO_ZK_SESSION_TIMEOUT_MS: String(SESSION_TIMEOUT_MS), BAMBOO_WRITE_RATE_PER_MINUTE: '0' },
    });
    raw = await rawClient(ens.connectionString);
    // Through HAProxy, all along: the worker must keep serving whatever ZooKeeper does.
    load = new HttpLoad(hp('/demo/web/'), { lanes: 1, expect: (b) => b.startsWith('web-') }).start();
  });

  after(async () => {
    await load?.stop();
    raw?.close();
    await Promise.all(extra.map((b) => b.close()));
    await demo?.stop();
    await ens?.stop();
  });

  it('keeps every acknowledged write, applied once, when the ensemble leader is killed during 500 writes through two api copies', async () => {
    const before = load.mark();
    const IDS = 100;
    const VERSIONS = 5; // 100 ids x 5 writes = 500 writes
    const LANES = 20;
    const apis = demo.uiUrls.map((u) => u.replace(/\/$/, ''));
    const ids = Array.from({ length: IDS }, (_, i) => `/zk/app${String(i).padStart(3, '0')}`);
    // Half the ids are written with versions (If-None-Match / If-Match "k-1", retried until acknowledged);
    // the other half as Bamboo clients write, without versions and without retries.
    const versioned = (i: number) => i < IDS / 2;
    const valueOf = (i: number, k: number) => `path_beg -i /zk/${i}/v${k}`;
    const stats = { acked: 0, ackedFirstTry: 0, answered503: 0, mayHaveBeenApplied503: 0, connErrors: 0, appliedBehind503: 0 };
    const violations: string[] = [];
    const statuses: Record<string, number> = {};
    /** Per id: what each write got (plain ids), to bound what ZooKeeper may hold. */
    const outcomes = new Map<number, Array<'acked' | 'unknown'>>();
    let killedAt = 0;
    let firstAckAfterKill = 0;
    let killing: Promise<void> | undefined;
    const leader = (await ens.leader())!;
    expect(leader, 'an ensemble leader').to.not.equal(undefined);

    const deadline = Date.now() + 60000;
    async function writeOne(i: number, k: number): Promise<void> {
      const id = ids[i];
      const acl = valueOf(i, k);
      const headers: Record<string, string> = !versioned(i) ? {} : k === 0 ? { 'If-None-Match': '*' } : { 'If-Match': `"${k - 1}"` };
      for (let attempt = 0; ; attempt++) {
        if (Date.now() > deadline) {
          violations.push(`${id} v${k}: not acknowledged before the deadline`);
          return;
        }
        // Alternate copies by write, and switch copies on a retry.
        const api = apis[(i + k + attempt) % apis.length];
        const r = await call('PUT', `${api}/api/services/${id}`, { acl }, headers);
        statuses[String(r.status)] = (statuses[String(r.status)] ?? 0) + 1;
        const ctx = `${id} v${k} attempt ${attempt} (${killedAt ? `${Date.now() - killedAt} ms after the kill` : 'before the kill'})`;
        if (r.status === 200 || r.status === 201) {
          stats.acked++;
          if (attempt === 0) stats.ackedFirstTry++;
          if (killedAt && !firstAckAfterKill) firstAckAfterKill = Date.now();
          if (versioned(i) && r.headers.get('etag') !== `"${k}"`) violations.push(`${ctx}: acknowledged with ETag ${r.headers.get('etag')}, expected "${k}"`);
          if (!versioned(i)) outcomes.get(i)!.push('acked');
          if (stats.acked >= 150 && !killing) {
            killedAt = Date.now();
            killing = leader.stop('SIGKILL');
          }
          return;
        }
        if (r.status === 503) {
          stats.answered503++;
          if (r.json?.code !== 'BAMBOO_ZK_UNAVAILABLE') violations.push(`${ctx}: 503 with code ${r.json?.code}`);
          if (/may have been applied/.test(r.json?.message ?? '')) stats.mayHaveBeenApplied503++;
          if (!versioned(i)) {
            outcomes.get(i)!.push('unknown');
            return;
          }
          await sleep(100);
          continue;
        }
        if (r.status === 0) {
          stats.connErrors++;
          if (!versioned(i)) {
            outcomes.get(i)!.push('unknown');
            return;
          }
          await sleep(100);
          continue;
        }
        if (versioned(i) && r.status === 409 && attempt > 0 && r.json?.current?.Acl === acl && r.json?.version === k) {
          // An earlier attempt was applied although its answer was a 503 (the connection to ZooKeeper
          // broke after the write was sent): the version check kept the retry from applying it twice.
          stats.appliedBehind503++;
          stats.acked++;
          return;
        }
        violations.push(`${ctx}: ${r.status} ${r.text}`);
        return;
      }
    }
    const queue = [...ids.keys()];
    for (const i of queue) if (!versioned(i)) outcomes.set(i, []);
    // Interleave the two kinds so both run while the leader dies.
    queue.sort((a, b) => (a % (IDS / 2)) - (b % (IDS / 2)) || a - b);
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: LANES }, async () => {
        for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
          for (let k = 0; k < VERSIONS; k++) await writeOne(i, k);
        }
      }),
    );
    const writeMs = since(t0);
    await killing;
    expect(killedAt, 'the leader was killed during the writes').to.be.greaterThan(0);

    // What ZooKeeper holds, read with a client of its own.
    const wrong: string[] = [];
    let plainAcked = 0;
    let plainUnknown = 0;
    let plainHoldingAnUnacknowledgedWrite = 0;
    for (const [i, id] of ids.entries()) {
      const node = await getData(raw, `${demo.zkPaths.rules}/${queryEscape(id)}`);
      const acl = node ? (JSON.parse(node.data) as { config: { Acl: string } }).config.Acl : null;
      if (versioned(i)) {
        // Every version written exactly once: the last value at znode version 4.
        if (!node || acl !== valueOf(i, VERSIONS - 1) || node.version !== VERSIONS - 1) wrong.push(`${id}: ${acl} at version ${node?.version}`);
        continue;
      }
      const got = outcomes.get(i)!;
      const lastAcked = got.lastIndexOf('acked');
      const acked = got.filter((o) => o === 'acked').length;
      plainAcked += acked;
      plainUnknown += got.length - acked;
      if (lastAcked < 0) continue; // nothing acknowledged: nothing promised
      // The last acknowledged value, or a later write whose answer was lost; each write applied at most once.
      const allowed = got.map((o, k) => (k >= lastAcked ? valueOf(i, k) : null)).filter(Boolean);
      if (!node || !allowed.includes(acl)) wrong.push(`${id}: ${acl}, expected one of ${allowed.join(' | ')}`);
      else if (acl !== valueOf(i, lastAcked)) plainHoldingAnUnacknowledgedWrite++; // a 503 whose write had landed
      else if (node.version > got.length - 1 || node.version < acked - 1) wrong.push(`${id}: version ${node.version} after ${acked} acknowledged of ${got.length} writes (applied twice?)`);
    }
    // Both copies list the same records and versions.
    const lists = await Promise.all(apis.map((a) => call('GET', `${a}/api/services?versions=1`)));
    for (const l of lists) expect(l.status).to.equal(200);
    const newLeader = (await ens.leader())?.id;
    // Bring the killed node back for the next scenarios.
    await leader.start();
    await waitForServing(ens, 60000);
    const during = load.mark();

    measured('zk.leader-kill', {
      writes: IDS * VERSIONS,
      acknowledged: stats.acked,
      versionedAcknowledged: stats.acked - plainAcked,
      plainAcknowledged: plainAcked,
      plainUnacknowledged: plainUnknown,
      plainIdsHoldingAnUnacknowledgedWrite: plainHoldingAnUnacknowledgedWrite,
      ackedFirstTry: stats.ackedFirstTry,
      answered503: stats.answered503,
      answered503MayHaveBeenApplied: stats.mayHaveBeenApplied503,
      appliedBehindA503: stats.appliedBehind503,
      connectionErrors: stats.connErrors,
      idsHoldingTheRightValue: IDS - wrong.length,
      firstAckAfterKillMs: firstAckAfterKill ? firstAckAfterKill - killedAt : null,
      writeMs,
      killedNode: leader.id,
      newLeader,
      statuses,
      haproxyOk: during.ok - before.ok,
      haproxyFailed: during.failed - before.failed,
    });
    expect(violations, violations.slice(0, 10).join('\n')).to.deep.equal([]);
    expect(stats.acked - plainAcked, 'every versioned write acknowledged').to.equal((IDS / 2) * VERSIONS);
    expect(wrong, wrong.slice(0, 10).join('\n')).to.deep.equal([]);
    expect(lists[1].json).to.deep.equal(lists[0].json);
    expect(during.failed - before.failed, JSON.stringify(load.failures.slice(-5))).to.equal(0);
  });

  it('recreates the ephemeral registrations (api publishers, worker) after their processes froze longer than the session timeout, and keeps routing', async () => {
    const control = demo.zkPaths.control;
    const before = await registrations(raw, control);
    expect(Object.keys(before).sort()).to.have.length(3); // two publishers and one worker
    const mark = load.mark();
    const logBytes = ['api-1.log', 'api-2.log', 'worker.log'].map((f) => readFileSync(join(demo.dir, f), 'utf8').length);

    // Freeze both api copies and the worker (SIGSTOP by PID) for twice the session timeout, as a long
    // GC pause or a frozen VM would: the ensemble, still running, expires their sessions. (Freezing
    // the ensemble instead does not always expire them: on resume it may elect a leader, which gives
    // every session a fresh timeout, or serve a queued reconnect before its session tracker runs.)
    // HAProxy is not frozen and must keep serving.
    const pauseMs = SESSION_TIMEOUT_MS * 2 + 1000;
    await Promise.all([...demo.apis, demo.worker].map((p) => pauseProcess(p.pid, pauseMs)));
    const resumedAt = Date.now();

    let after: Record<string, string> = {};
    try {
      await waitFor(async () => {
        after = await registrations(raw, control);
        return Object.keys(after).length === 3 && Object.entries(after).every(([k, owner]) => before[k] !== undefined && owner !== before[k]);
      }, 'every registration recreated under a new session', 30000, 100);
    } catch (err) {
      // Say what was there at the end, and what each process logged about ZooKeeper since the pause.
      const logs = ['api-1.log', 'api-2.log', 'worker.log'].map((f, i) => `${f}:\n${readFileSync(join(demo.dir, f), 'utf8').slice(logBytes[i]).split('\n').filter((l) => /zookeeper|ephemeral|session|election/i.test(l)).slice(-15).join('\n')}`);
      throw new Error(`${(err as Error).message}: before ${JSON.stringify(before)}, now ${JSON.stringify(after)}\n${logs.join('\n')}`);
    }
    const recreatedMs = since(resumedAt);
    const expiredIn = ['api-1.log', 'api-2.log', 'worker.log'].filter((f, i) => readFileSync(join(demo.dir, f), 'utf8').slice(logBytes[i]).includes('session expired'));

    // Still wired: a rule written through each copy reaches HAProxy (the worker found both publishers again).
    const t0 = Date.now();
    for (const [i, ui] of demo.uiUrls.entries()) {
      const host = `expiry-${i}.zk.local`;
      const r = await call('PUT', `${ui}api/services//demo/shop/api`, { acl: `hdr(host) -i ${host}` });
      expect(r.status, r.text).to.be.oneOf([200, 201]);
      await waitFor(async () => (await httpGet(hp('/'), { host })).body.startsWith('shop-api'), `the rule written through copy ${i + 1} to route`, 20000, 50);
    }
    const ruleRoutedMs = since(t0);
    const worker = (await call('GET', demo.workerStatusUrl)).json;
    const fleet = (await call('GET', `${demo.uiUrls[0]}api/workers`)).json;
    const now = load.mark();
    measured('zk.session-expiry', {
      pauseMs,
      sessionTimeoutMs: SESSION_TIMEOUT_MS,
      registrations: Object.keys(after).length,
      newSessions: Object.keys(after).filter((k) => after[k] !== before[k]).length,
      expiryLogged: expiredIn,
      recreatedMsAfterResume: recreatedMs,
      rulesRoutedMs: ruleRoutedMs,
      haproxyOk: now.ok - mark.ok,
      haproxyFailed: now.failed - mark.failed,
    });
    expect(expiredIn).to.have.members(['api-1.log', 'api-2.log', 'worker.log']);
    expect(worker.publishers).to.have.length(2);
    expect(fleet.workers.map((w: { name: string }) => w.name)).to.deep.equal(['demo-worker']);
    expect(now.failed - mark.failed, JSON.stringify(load.failures.slice(-5))).to.equal(0);
  });

  it('serves cached reads or coded 503s, keeps HAProxy serving through a 30 s outage of the whole ensemble, and recovers by itself', async function () {
    this.timeout(120000);
    const OUTAGE_MS = 30000;
    const apis = demo.uiUrls.map((u) => u.replace(/\/$/, ''));
    const mark = load.mark();

    const downAt = Date.now();
    await Promise.all(ens.nodes.map((n) => n.stop('SIGKILL')));
    await waitFor(async () => (await Promise.all(apis.map((a) => call('GET', `${a}/status`)))).every((r) => r.status === 503), 'both api copies to report ZooKeeper lost', 20000, 100);
    const noticedMs = since(downAt);

    // A Marathon change during the outage: it cannot be stored now, and must arrive after it.
    const b = await startBackend('during-outage');
    extra.push(b);
    demo.sim.deployApp({ id: '/zk/during-outage', cmd: 'x', instances: 1, portDefinitions: [{ port: 0 }] }, { tasks: [{ host: '127.0.0.1', ports: [b.port] }] });

    // What clients see meanwhile (repeated through the outage; every answer is kept).
    const seen: Record<string, Record<string, number>> = {};
    const note = (what: string, r: { status: number; json: { code?: string } | null }) => {
      const key = `${r.status}${r.json?.code ? ' ' + r.json.code : ''}`;
      seen[what] ??= {};
      seen[what][key] = (seen[what][key] ?? 0) + 1;
    };
    let slowest = 0;
    const probes = async () => {
      for (const a of apis) {
        const rs: Array<[string, Promise<Awaited<ReturnType<typeof call>>>]> = [
          ['GET /status', call('GET', `${a}/status`)],
          ['GET /api/services', call('GET', `${a}/api/services`)],
          ['GET /api/services/:id', call('GET', `${a}/api/services//demo/shop/api`)],
          ['GET /api/state', call('GET', `${a}/api/state`)],
          ['GET /api/workers', call('GET', `${a}/api/workers`)],
          ['PUT /api/services/:id', call('PUT', `${a}/api/services//zk/outage`, { acl: 'path_beg -i /outage' })],
          ['POST /api/services', call('POST', `${a}/api/services`, { id: '/zk/outage-post', acl: 'path_beg -i /outage' })],
          ['DELETE /api/services/:id', call('DELETE', `${a}/api/services//demo/shop/api`)],
        ];
        for (const [what, p] of rs) {
          const r = await p;
          slowest = Math.max(slowest, r.ms);
          note(what, r);
        }
      }
      note('worker GET /status', await call('GET', demo.workerStatusUrl));
    };
    let workerDegraded: string[] = [];
    while (Date.now() - downAt < OUTAGE_MS) {
      await probes();
      workerDegraded = (await call('GET', demo.workerStatusUrl)).json?.degraded ?? workerDegraded;
      await sleep(2000);
    }

    // ZooKeeper returns.
    const restartAt = Date.now();
    await Promise.all(ens.nodes.map((n) => n.start()));
    await waitForServing(ens, 60000);
    const back = Date.now();
    const startupMs = back - restartAt;
    const t: Record<string, number | null> = { apiStatus: null, write: null, workerConnected: null, ruleRouted: null, marathonChangeRouted: null };
    const host = 'after-outage.zk.local';
    let wrote = false;
    await waitFor(async () => {
      if (t.apiStatus === null && (await Promise.all(apis.map((a) => call('GET', `${a}/status`)))).every((r) => r.status === 200)) t.apiStatus = since(back);
      if (!wrote) {
        const r = await call('PUT', `${apis[1]}/api/services//demo/shop/api`, { acl: `hdr(host) -i ${host}` });
        if (r.status === 200 || r.status === 201) {
          wrote = true;
          t.write = since(back);
        }
      }
      if (t.workerConnected === null && (await call('GET', demo.workerStatusUrl)).json?.zookeeper === 'connected') t.workerConnected = since(back);
      if (wrote && t.ruleRouted === null && (await httpGet(hp('/x'), { host }).catch(() => null))?.body.startsWith('shop-api')) t.ruleRouted = since(back);
      if (t.marathonChangeRouted === null && (await httpGet(hp('/zk/during-outage/')).catch(() => null))?.body.startsWith('during-outage')) t.marathonChangeRouted = since(back);
      return Object.values(t).every((v) => v !== null);
    }, `recovery after ZooKeeper returned (so far ${JSON.stringify(t)})`, 60000, 50);
    const end = load.mark();
    // Nothing written during the outage reached ZooKeeper.
    expect(await getData(raw, `${demo.zkPaths.rules}/${queryEscape('/zk/outage')}`).catch(async () => {
      raw.close();
      raw = await rawClient(ens.connectionString);
      return getData(raw, `${demo.zkPaths.rules}/${queryEscape('/zk/outage')}`);
    })).to.equal(null);

    measured('zk.outage', {
      outageMs: restartAt - downAt,
      apisNoticedMs: noticedMs,
      zkStartupMs: startupMs,
      answers: seen,
      slowestAnswerMs: Math.round(slowest),
      workerDegraded,
      recoveryMsAfterZkServing: t,
      haproxyOk: end.ok - mark.ok,
      haproxyFailed: end.failed - mark.failed,
    });

    for (const w of ['PUT /api/services/:id', 'POST /api/services', 'DELETE /api/services/:id']) {
      expect(Object.keys(seen[w]), w).to.deep.equal(['503 BAMBOO_ZK_UNAVAILABLE']);
    }
    expect(Object.keys(seen['GET /status'])).to.deep.equal(['503']);
    for (const w of ['GET /api/services', 'GET /api/services/:id', 'GET /api/state', 'GET /api/workers']) {
      for (const k of Object.keys(seen[w])) expect(['200', '503 BAMBOO_ZK_UNAVAILABLE'], `${w} answered ${k}`).to.include(k);
    }
    expect(Object.keys(seen['worker GET /status']), 'the worker stays healthy (serving)').to.deep.equal(['200']);
    expect(workerDegraded).to.include('zookeeper unavailable');
    expect(slowest, 'answers come at once, not after a hang').to.be.lessThan(6000);
    expect(end.failed - mark.failed, JSON.stringify(load.failures.slice(-5))).to.equal(0);
    // The target is 5 s; asserted generously (a loaded CI machine), reported exactly above.
    for (const [k, v] of Object.entries(t)) expect(v, k).to.be.lessThan(30000);
  });
});
