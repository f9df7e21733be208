/**
 * Faults, part 2: Marathon, bad input, security, crashed processes. One stack as `bamboo demo` runs it
 * (two api copies and a worker as child processes, a managed HAProxy, real backends), configured the
 * way production is: an auth token, a ZooKeeper digest, a Marathon behind basic auth with a second
 * endpoint (an HA pair sharing state), StatsD, a stats page with credentials. The scenarios run in
 * order on it, ending with the destructive ones (kills), and last the logs of every process are
 * searched for the secrets.
 *
 * Every number is printed (`measured ...`) and collected for docs/RELIABILITY.md.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { startDemo, type RunningDemo } from '../../cli/demo.js';
import { ERROR_CODES, type ErrorCode } from '../../common/core/errors.js';
import { sha256 } from '../../common/core/hash.js';
import { silentLogger } from '../../common/log.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { generateCorpus, sendRaw, type CorpusCategory } from '../support/corpus.js';
import { call, HttpLoad, measured, since } from '../support/faults.js';
import { haproxyCheck } from '../support/haproxy.js';
import { httpGet, startBackend, type Backend } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { sleep, waitFor, type Started } from '../../harness/process.js';
import { startStatsd, type StatsdServer } from '../support/statsd.js';
import { startZooKeeper, type ZkServer } from '../../harness/zookeeper.js';

const hex = () => randomBytes(8).toString('hex');
const SECRETS = {
  token: `tok-${hex()}`,
  marathonUser: 'bamboo',
  marathonPassword: `mpw-${hex()}`,
  zkUser: 'bamboo',
  zkPassword: `zkpw-${hex()}`,
  statsUser: 'ops',
  statsPassword: `spw-${hex()}`,
};
const ZK_DIGEST = `${SECRETS.zkUser}:${SECRETS.zkPassword}`;
const PREFIX = 'faults.';

describe('faults: Marathon, bad input, security and crashes on a production-like stack', function () {
  this.timeout(60000);
  let zk: ZkServer;
  let statsd: StatsdServer;
  let second: MarathonSimulator;
  let demo: RunningDemo;
  let load: HttpLoad;
  let statsPort: number;
  let admin: Zk;
  const extra: Backend[] = [];
  /** Every bamboo process started, for the log search at the end (restarted workers included). */
  const procs: Started[] = [];
  const hp = (path: string) => demo.haproxyUrl.replace(/\/$/, '') + path;
  const cfgPath = () => join(demo.dir, 'haproxy', 'haproxy.cfg');
  const auth = { Authorization: `Bearer ${SECRETS.token}` };
  /** Api copies still running (one is killed near the end). */
  const live = () => demo.uiUrls.map((u) => u.replace(/\/$/, '')).filter((_, i) => demo.apis[i].child.exitCode === null && demo.apis[i].child.signalCode === null);

  before(async function () {
    this.timeout(120000);
    zk = await startZooKeeper();
    statsd = await startStatsd();
    statsPort = await freePort();
    const marathonAuth = { user: SECRETS.marathonUser, password: SECRETS.marathonPassword };
    // The second Marathon of an HA pair: same apps and events, faults of its own.
    second = new MarathonSimulator({ auth: marathonAuth, heartbeatMs: 500 });
    await second.start();
    demo = await startDemo({
      zk: zk.connectionString,
      logLevel: 'debug',
      out: () => undefined,
      marathon: { auth: marathonAuth, heartbeatMs: 500, shareStateWith: second },
      moreMarathonEndpoints: [second.url],
      env: {
        BAMBOO_AUTH_TOKEN: SECRETS.token,
        // The fuzz corpus sends 1,328 writes as fast as it can: the write rate limit would answer 429.
        BAMBOO_WRITE_RATE_PER_MINUTE: '0',
        MARATHON_USER: SECRETS.marathonUser,
        MARATHON_PASSWORD: SECRETS.marathonPassword,
        MARATHON_TIMEOUT_MS: '1000',
        MARATHON_STREAM_IDLE_TIMEOUT_MS: '2000',
        // No periodic /v2/apps fetch: every recovery here must come from the fault's own path (retry,
        // reopened stream, failover), and a resync landing inside the stall test's window would route the
        // app the lost event named before the stream flows again.
        MARATHON_RESYNC_INTERVAL_MS: '0',
        BAMBOO_ZK_DIGEST: ZK_DIGEST,
        BAMBOO_ZK_SESSION_TIMEOUT_MS: '4000',
        HAPROXY_STATS_BIND: `127.0.0.1:${statsPort}`,
        HAPROXY_STATS_USER: SECRETS.statsUser,
        HAPROXY_STATS_PASSWORD: SECRETS.statsPassword,
        STATSD_ENABLED: 'true',
        STATSD_HOST: statsd.host,
        STATSD_PREFIX: PREFIX,
      },
    });
    procs.push(...demo.apis, demo.worker);
    admin = new Zk({ connectionString: zk.connectionString, digest: ZK_DIGEST, log: silentLogger() });
    expect(await admin.start(10000)).to.equal(true);
    load = new HttpLoad(hp('/demo/web/'), { lanes: 1, expect: (b) => b.startsWith('web-') }).start();
  });

  after(async () => {
    await load?.stop();
    await admin?.close();
    await Promise.all(extra.map((b) => b.close()));
    await demo?.stop();
    await second?.stop();
    await statsd?.stop();
    await zk?.stop();
  });

  async function status(api: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    return (await call('GET', `${api}/status`)).json;
  }

  /** A Marathon event posted to every live copy: each fetches /v2/apps (callbacks work in stream mode too). */
  async function poke(): Promise<void> {
    for (const a of live()) expect((await call('POST', `${a}/api/marathon/event_callback`, { eventType: 'status_update_event' })).status).to.equal(202);
  }

  async function counter(name: string): Promise<number> {
    return (await statsd.counters())[PREFIX + name] ?? 0;
  }

  /** Deploys a new app backed by a real server; it routes at /<id>/ once Marathon's answer is stored. */
  async function deployNew(id: string): Promise<Backend> {
    const b = await startBackend(id.replace(/\//g, '_'));
    extra.push(b);
    demo.sim.deployApp({ id, cmd: 'x', instances: 1, portDefinitions: [{ port: 0 }] }, { tasks: [{ host: '127.0.0.1', ports: [b.port] }] });
    return b;
  }

  async function routed(id: string, b: Backend): Promise<boolean> {
    return ((await httpGet(hp(`${id}/`)).catch(() => null))?.body ?? '').startsWith(b.name);
  }

  describe('Marathon failures never wipe a backend', () => {
    const faults: Array<{ name: string; apply: () => Promise<void> | void; reset: () => Promise<void> | void }> = [
      {
        name: 'unreachable',
        apply: async () => {
          await demo.sim.stop();
          await second.stop();
        },
        reset: async () => {
          await demo.sim.start();
          await second.start();
        },
      },
      { name: 'slower than the timeout', apply: () => setBoth((s) => (s.faults.latencyMs = 2500)), reset: () => setBoth((s) => s.faults.reset()) },
      { name: 'HTTP 500', apply: () => setBoth((s) => (s.faults.status = 500)), reset: () => setBoth((s) => s.faults.reset()) },
      { name: 'HTTP 401', apply: () => setBoth((s) => (s.faults.status = 401)), reset: () => setBoth((s) => s.faults.reset()) },
      { name: 'an HTML error page', apply: () => setBoth((s) => (s.faults.htmlError = true)), reset: () => setBoth((s) => s.faults.reset()) },
      { name: 'truncated JSON', apply: () => setBoth((s) => (s.faults.truncateJson = true)), reset: () => setBoth((s) => s.faults.reset()) },
    ];
    function setBoth(f: (s: MarathonSimulator) => void): void {
      f(demo.sim);
      f(second);
    }

    for (const [n, fault] of faults.entries()) {
      it(`keeps routing, reports the error in /status and StatsD, and recovers: Marathon ${fault.name}`, async () => {
        const mark = load.mark();
        const hashBefore = sha256(readFileSync(cfgPath()));
        const countersBefore = await statsd.counters();
        const failedBefore = countersBefore[`${PREFIX}marathon.fetch.failed`] ?? 0;
        const id = `/faults/m${n}`;
        const t0 = Date.now();
        await fault.apply();
        let failing = true;
        try {
          const b = await deployNew(id);
          await poke();
          const apis = live();
          let seen: Array<{ ok: boolean; reason: string; error: string; at: number }> = [];
          await waitFor(async () => {
            seen = (await Promise.all(apis.map(status))).map((s) => s.marathon.lastFetch);
            return seen.every((f) => f && !f.ok && f.at >= t0);
          }, `every copy to record a failed fetch (${JSON.stringify(seen)})`, 15000, 50);
          const reason = seen[0].reason;
          await waitFor(async () => (await counter(`marathon.fetch.failed.${reason}`)) > 0 && (await counter('marathon.fetch.failed')) > failedBefore, `StatsD marathon.fetch.failed.${reason}`, 5000, 50);
          const st = await status(apis[0]);
          // Nothing changed for HAProxy: the config in force is the one from before, the app is not routed yet.
          expect(st.status).to.equal('degraded');
          expect(seen.every((f) => typeof f.error === 'string' && f.error.length > 0)).to.equal(true);
          expect(sha256(readFileSync(cfgPath())), 'haproxy.cfg unchanged').to.equal(hashBefore);
          expect((await httpGet(hp('/demo/shop/api/x'))).body).to.match(/^shop-api-\d/);
          expect(await routed(id, b), 'the new app is not routed while Marathon fails').to.equal(false);

          const resetAt = Date.now();
          failing = false;
          await fault.reset();
          await poke();
          await waitFor(() => routed(id, b), `the app deployed during the failure to route after recovery`, 20000, 50);
          const recoveryMs = since(resetAt);
          const now = load.mark();
          measured(`marathon.${fault.name.replace(/\s+/g, '-')}`, {
            reason,
            error: seen[0].error.slice(0, 120),
            statsdFailed: (await counter(`marathon.fetch.failed.${reason}`)) - (countersBefore[`${PREFIX}marathon.fetch.failed.${reason}`] ?? 0),
            recoveryMsAfterMarathonReturned: recoveryMs,
            haproxyOk: now.ok - mark.ok,
            haproxyFailed: now.failed - mark.failed,
          });
          expect(now.failed - mark.failed, JSON.stringify(load.failures.slice(-5))).to.equal(0);
        } finally {
          // A failed assertion must not leave Marathon broken for the scenarios after this one.
          if (failing) await fault.reset();
        }
      });
    }

    it('keeps routing when Marathon answers an empty app list right after a full one, once', async () => {
      const mark = load.mark();
      const hashBefore = sha256(readFileSync(cfgPath()));
      const apis = live();
      const fetches = () => demo.sim.countRequests('/v2/apps') + second.countRequests('/v2/apps');
      const heldBack = () =>
        ['api-1.log', 'api-2.log'].reduce((n, f) => n + (readFileSync(join(demo.dir, f), 'utf8').match(/empty app list after a non-empty one/g) ?? []).length, 0);
      const before = fetches();
      const heldBefore = heldBack();
      const countedBefore = await counter('marathon.fetch.failed.suspicious_empty');
      const t0 = Date.now();
      setBoth((s) => (s.faults.emptyApps = true));
      await poke();
      // One empty answer per copy, then Marathon is back to normal well before the confirming fetch
      // (one second later): a glitch. (The simulator answers synchronously once it logged a request.)
      await waitFor(() => fetches() >= before + apis.length, 'each copy to fetch the empty list', 5000, 1);
      setBoth((s) => (s.faults.emptyApps = false));
      await waitFor(() => heldBack() >= heldBefore + apis.length, 'every copy to hold back the empty list (logged)', 5000, 20);
      await waitFor(async () => (await Promise.all(apis.map(status))).every((s) => !s.marathon.suspiciousEmpty && s.marathon.lastFetch.ok), 'the confirming fetch', 10000, 50);
      const confirmedMs = since(t0);
      await waitFor(async () => (await counter('marathon.fetch.failed.suspicious_empty')) >= countedBefore + apis.length, 'StatsD marathon.fetch.failed.suspicious_empty', 5000, 50);
      await sleep(500);
      const now = load.mark();
      measured('marathon.empty-list-once', {
        heldBackBy: heldBack() - heldBefore,
        statsdSuspiciousEmpty: (await counter('marathon.fetch.failed.suspicious_empty')) - countedBefore,
        confirmedFullMs: confirmedMs,
        haproxyOk: now.ok - mark.ok,
        haproxyFailed: now.failed - mark.failed,
      });
      expect(sha256(readFileSync(cfgPath())), 'haproxy.cfg unchanged').to.equal(hashBefore);
      expect(now.failed - mark.failed, JSON.stringify(load.failures.slice(-5))).to.equal(0);
    });

    async function streamLeader(): Promise<{ api: string; st: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
      for (const a of live()) {
        const st = await status(a);
        if (st.streamLeader?.isLeader) return { api: a, st };
      }
      throw new Error('no stream leader');
    }

    it('notices a stalled event stream, keeps routing, and catches up when it flows again', async () => {
      const mark = load.mark();
      const { api, st: before } = (await waitFor(() => streamLeader().then((l) => (l.st.streamLeader.reading ? l : null)), 'a reading stream leader', 10000, 100))!;
      const failedBefore = await counter('marathon.stream.failed');
      setBoth((s) => (s.faults.stallStream = true));
      const t0 = Date.now();
      try {
        // Events published during the stall are lost (the simulator drops them, as a hung proxy would).
        const id = '/faults/stalled';
        const b = await deployNew(id);
        let st = before;
        await waitFor(async () => {
          st = await status(api);
          return !st.streamLeader.reading && /silent|no answer/.test(st.streamLeader.lastError ?? '');
        }, `the leader to notice the silent stream (${JSON.stringify(st.streamLeader)})`, 15000, 100);
        const noticedMs = since(t0);
        await waitFor(async () => (await counter('marathon.stream.failed')) > failedBefore, 'StatsD marathon.stream.failed', 5000, 50);
        expect(await routed(id, b)).to.equal(false);
        const resetAt = Date.now();
        setBoth((s) => (s.faults.stallStream = false));
        // No poke: the reopened stream itself asks for a fetch (events may have been missed).
        await waitFor(() => routed(id, b), 'the change made during the stall to route', 20000, 50);
        const now = load.mark();
        measured('marathon.sse-stall', {
          idleTimeoutMs: 2000,
          noticedMs,
          lastError: st.streamLeader.lastError,
          statsdStreamFailures: (await counter('marathon.stream.failed')) - failedBefore,
          recoveryMsAfterStreamFlows: since(resetAt),
          haproxyOk: now.ok - mark.ok,
          haproxyFailed: now.failed - mark.failed,
        });
        expect(now.failed - mark.failed, JSON.stringify(load.failures.slice(-5))).to.equal(0);
      } finally {
        setBoth((s) => (s.faults.stallStream = false));
      }
    });

    it('reopens a dropped event stream and fetches what it missed', async () => {
      const mark = load.mark();
      const { api, st: before } = (await waitFor(() => streamLeader().then((l) => (l.st.streamLeader.reading ? l : null)), 'a reading stream leader', 10000, 100))!;
      const endedBefore = await counter('marathon.stream.failed.ended');
      const t0 = Date.now();
      setBoth((s) => s.faults.dropStream());
      const id = '/faults/dropped';
      const b = await deployNew(id);
      await waitFor(() => routed(id, b), 'the change made while the stream was down to route', 20000, 50);
      const routedMs = since(t0);
      const st = await status(api);
      await waitFor(async () => (await counter('marathon.stream.failed.ended')) > endedBefore, 'StatsD marathon.stream.failed.ended', 5000, 50);
      const now = load.mark();
      measured('marathon.sse-drop', {
        connectsBefore: before.streamLeader.connects,
        connectsAfter: st.streamLeader.connects,
        statsdStreamEnded: (await counter('marathon.stream.failed.ended')) - endedBefore,
        routedMsAfterDrop: routedMs,
        haproxyOk: now.ok - mark.ok,
        haproxyFailed: now.failed - mark.failed,
      });
      expect(st.streamLeader.connects).to.be.greaterThan(before.streamLeader.connects);
      expect(now.failed - mark.failed).to.equal(0);
    });

    it('fails over to the second Marathon endpoint', async () => {
      demo.sim.faults.status = 503;
      try {
        const [primaryBefore, secondBefore] = [demo.sim.countRequests('/v2/apps'), second.countRequests('/v2/apps')];
        const t0 = Date.now();
        const id = '/faults/failover';
        const b = await deployNew(id);
        await poke();
        await waitFor(() => routed(id, b), 'the app to route via the second Marathon', 20000, 50);
        const fetches = (await Promise.all(live().map(status))).map((s) => s.marathon.lastFetch);
        measured('marathon.failover', {
          routedMs: since(t0),
          lastFetchEndpoints: fetches.map((f) => (f.endpoint === second.url ? 'second' : f.endpoint)),
          fetchesRefusedByPrimary: demo.sim.countRequests('/v2/apps') - primaryBefore,
          fetchesServedBySecond: second.countRequests('/v2/apps') - secondBefore,
        });
        expect(fetches.every((f) => f.ok && f.endpoint === second.url)).to.equal(true);
      } finally {
        demo.sim.faults.reset();
      }
    });
  });

  describe('bad input', () => {
    it('answers 1,000+ malformed requests with coded 4xx, and changes neither ZooKeeper nor haproxy.cfg', async function () {
      this.timeout(120000);
      const apis = live();
      // Records that must survive everything the corpus throws at them.
      const existing = ['/corpus/keep1', '/corpus/keep2'];
      for (const id of existing) expect((await call('PUT', `${apis[0]}/api/services/${id}`, { acl: `path_beg -i ${id}` }, auth)).status).to.be.oneOf([200, 201]);
      await waitFor(async () => (await call('GET', `${apis[0]}/api/workers`)).json?.workers?.[0]?.upToDate, 'the records to be applied', 20000, 50);
      await waitFor(async () => (await call('GET', demo.workerStatusUrl)).json?.busy === false, 'the worker to go idle', 10000, 50);
      await sleep(300);

      const rulesPath = demo.zkPaths.rules;
      const zkState = async () => {
        const parent = await admin.exists(rulesPath);
        const nodes: Record<string, string> = {};
        for (const name of (await admin.children(rulesPath)).sort()) {
          const n = await admin.get(`${rulesPath}/${name}`);
          nodes[name] = `${n?.stat.version}:${n?.data.toString()}`;
        }
        return { parent: `${parent?.version}.${parent?.cversion}`, nodes };
      };
      const zkBefore = await zkState();
      const cfgBefore = sha256(readFileSync(cfgPath()));
      const statsdBefore = await statsd.counters();

      const corpus = generateCorpus({ seed: 20240611, token: SECRETS.token, maxBodyBytes: 65536, existingIds: existing });
      expect(corpus.length).to.be.at.least(1000);
      const ports = apis.map((a) => Number(new URL(a).port));
      const problems: string[] = [];
      const byCode: Record<string, number> = {};
      const queue = [...corpus.entries()];
      const t0 = Date.now();
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          for (let next = queue.shift(); next; next = queue.shift()) {
            const [i, req] = next;
            let res;
            try {
              res = await sendRaw(ports[i % ports.length], req);
            } catch (err) {
              problems.push(`${req.name}: ${(err as Error).message}`);
              continue;
            }
            let body: { code?: string; message?: unknown } | null = null;
            try {
              body = JSON.parse(res.body) as { code?: string; message?: unknown };
            } catch {
              body = null;
            }
            const code = body?.code as ErrorCode | undefined;
            byCode[`${res.status} ${code}`] = (byCode[`${res.status} ${code}`] ?? 0) + 1;
            const spec = code ? ERROR_CODES[code] : undefined;
            if (res.status < 400 || res.status > 499) problems.push(`${req.name}: status ${res.status} ${res.body.slice(0, 200)}`);
            else if (!code || !spec || spec.status !== res.status) problems.push(`${req.name}: ${res.status} without a matching code: ${res.body.slice(0, 200)}`);
            else if (!req.codes.includes(code)) problems.push(`${req.name}: ${code}, expected one of ${req.codes.join(', ')}`);
            else if (typeof body?.message !== 'string' || body.message === '') problems.push(`${req.name}: no message`);
            else if (/"dependencies"|root:x:0:0/.test(res.body)) problems.push(`${req.name}: the answer carries a file's content`);
          }
        }),
      );
      const ms = since(t0);
      // Anything the corpus could have set off has happened by now.
      await sleep(1000);
      await waitFor(async () => (await call('GET', demo.workerStatusUrl)).json?.busy === false, 'the worker to go idle', 10000, 50);
      const zkAfter = await zkState();
      const cfgAfter = sha256(readFileSync(cfgPath()));
      const alive = demo.apis.map((p) => p.child.exitCode === null && p.child.signalCode === null);
      const statuses = await Promise.all(apis.map((a) => call('GET', `${a}/status`)));
      const statsdAfter = await statsd.counters();
      const counted = Object.keys(statsdAfter)
        .filter((k) => k.startsWith(`${PREFIX}api.errors.`))
        .reduce((n, k) => n + (statsdAfter[k] - (statsdBefore[k] ?? 0)), 0);
      const categories = Object.fromEntries([...new Set(corpus.map((c) => c.category))].map((c) => [c, corpus.filter((r) => r.category === c).length])) as Record<CorpusCategory, number>;
      measured('input.corpus', {
        requests: corpus.length,
        categories,
        answers: byCode,
        problems: problems.length,
        ms,
        zookeeperUnchanged: JSON.stringify(zkAfter) === JSON.stringify(zkBefore),
        haproxyCfgUnchanged: cfgAfter === cfgBefore,
        apiErrorsCountedInStatsd: counted,
        apisAlive: alive,
      });
      expect(problems, problems.slice(0, 15).join('\n')).to.deep.equal([]);
      expect(zkAfter).to.deep.equal(zkBefore);
      expect(cfgAfter).to.equal(cfgBefore);
      expect(alive).to.deep.equal([true, true]);
      for (const s of statuses) expect(s.status).to.equal(200);
      expect(counted).to.be.at.least(corpus.length * 0.99); // UDP may drop a few
    });
  });

  describe('security', () => {
    it('needs the token for writes and for unredacted state', async () => {
      const api = live()[0];
      expect((await call('PUT', `${api}/api/services//demo/web`, { acl: 'path_beg -i /demo/web' })).status).to.equal(401);
      const redacted = await call('GET', `${api}/api/state`);
      expect(redacted.status).to.equal(200);
      expect(redacted.headers.get('x-bamboo-redacted')).to.equal('true');
      const echo = (r: typeof redacted) => r.json.Apps.find((a: { Id: string }) => a.Id === '/demo/echo');
      expect(echo(redacted).Env.BAMBOO_TCP_PORT).to.equal('***');
      expect((await call('GET', `${api}/api/state?unredacted=1`)).status).to.equal(401);
      expect((await call('GET', `${api}/api/state`, undefined, { Authorization: 'Bearer nope' })).status).to.equal(401);
      const full = await call('GET', `${api}/api/state`, undefined, auth);
      expect(full.headers.get('x-bamboo-redacted')).to.equal('false');
      expect(echo(full).Env.BAMBOO_TCP_PORT).to.equal(String(demo.tcpPort));
    });

    it("serves the default template's HAProxy stats page only with the configured credentials", async () => {
      const url = `http://127.0.0.1:${statsPort}/`;
      const basic = (u: string, p: string) => ({ Authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
      const none = await httpGet(url);
      const wrong = await httpGet(url, { headers: basic(SECRETS.statsUser, 'guess') });
      const right = await httpGet(url, { headers: basic(SECRETS.statsUser, SECRETS.statsPassword) });
      measured('security.stats-page', { withoutCredentials: none.status, wrongPassword: wrong.status, withCredentials: right.status });
      expect(none.status).to.equal(401);
      expect(wrong.status).to.equal(401);
      expect(right.status).to.equal(200);
      expect(right.body).to.contain('Statistics Report');
      // The password is in haproxy.cfg: the file is not world-readable.
      expect(statSync(cfgPath()).mode & 0o777).to.equal(0o640);
    });

    it('creates ZooKeeper nodes an unauthenticated client can neither read nor change', async () => {
      const rule = `${demo.zkPaths.rules}/${(await admin.children(demo.zkPaths.rules))[0]}`;
      const outcomes: Record<string, string> = {};
      for (const [who, digest] of [['anonymous', undefined], ['wrong password', `${SECRETS.zkUser}:nope`]] as const) {
        const stranger = new Zk({ connectionString: zk.connectionString, digest, log: silentLogger() });
        await stranger.start(10000);
        try {
          const attempt = async (what: string, fn: () => Promise<unknown>) => {
            try {
              await fn();
              outcomes[`${who}: ${what}`] = 'allowed';
            } catch (err) {
              const code = (err as { code?: number }).code;
              outcomes[`${who}: ${what}`] = code === zookeeper.Exception.NO_AUTH ? 'NO_AUTH' : String((err as Error).message);
            }
          };
          await attempt('read a rule', () => stranger.get(rule));
          await attempt('change a rule', () => stranger.set(rule, Buffer.from('{"version":"2","config":{"Acl":"path_beg /evil"}}')));
          await attempt('delete a rule', () => stranger.remove(rule));
          await attempt('add a rule', () => stranger.create(`${demo.zkPaths.rules}/%2Fevil`, Buffer.from('path_beg /evil')));
          await attempt('replace the snapshot', () => stranger.set(`${demo.zkPaths.control}/snapshot`, Buffer.from('{}')));
        } finally {
          await stranger.close();
        }
      }
      measured('security.zookeeper-digest', { outcomes });
      for (const [what, got] of Object.entries(outcomes)) expect(got, what).to.equal('NO_AUTH');
      // ... while the processes, which have the digest, work (every other scenario here depends on it).
      expect((await call('PUT', `${live()[0]}/api/services//corpus/digest`, { acl: 'path_beg -i /digest' }, auth)).status).to.be.oneOf([200, 201]);
    });
  });

  describe('crashed processes', () => {
    it('converges through the other api copy when one is killed (SIGKILL) during a burst', async function () {
      this.timeout(90000);
      const apis = demo.uiUrls.map((u) => u.replace(/\/$/, ''));
      const mark = load.mark();
      const leaderBefore = (await Promise.all(apis.map(status))).findIndex((s) => s.streamLeader?.isLeader);
      // 19 records of their own, and the rule of a real app, which HAProxy must end up routing by.
      const ids = [...Array.from({ length: 19 }, (_, i) => `/burst/app${String(i).padStart(2, '0')}`), '/demo/shop/api'];
      const last = new Map<string, number>();
      let acked = 0;
      let redirected = 0;
      let killedAt = 0;
      const WRITES = 200;
      const queue = [...Array(WRITES).keys()];
      // Four lanes, each owning every fourth id, so the last value of each id is well defined.
      await Promise.all(
        Array.from({ length: 4 }, async (_, lane) => {
          for (const w of queue.filter((x) => (x % ids.length) % 4 === lane)) {
            const id = ids[w % ids.length];
            for (let attempt = 0; attempt < 50; attempt++) {
              const api = apis[(w + attempt) % 2];
              const r = await call('PUT', `${api}/api/services/${id}`, { acl: `path_beg -i /burst/${w}` }, auth, 3000);
              if (r.status === 200 || r.status === 201) {
                acked++;
                last.set(id, w);
                if (acked === 60) {
                  killedAt = Date.now();
                  process.kill(demo.apis[0].pid, 'SIGKILL');
                }
                break;
              }
              redirected++; // the dead copy: a load balancer would send it to the other one
              await sleep(20);
            }
          }
        }),
      );
      await demo.apis[0].exited;
      const survivor = apis[1];
      // A Marathon change after the kill reaches HAProxy (the survivor reads the stream once the dead copy's session ends).
      const id = '/faults/after-api-kill';
      const b = await deployNew(id);
      let converged = 0;
      await waitFor(async () => {
        const fleet = (await call('GET', `${survivor}/api/workers`)).json;
        if (!converged && fleet?.workers?.[0]?.rulesUpToDate) converged = since(killedAt);
        return converged > 0;
      }, 'the worker to apply every rule of the burst', 30000, 50);
      await waitFor(() => routed(id, b), 'a Marathon change after the kill to route', 30000, 50);
      const marathonRoutedMs = since(killedAt);
      const stored = (await call('GET', `${survivor}/api/services`)).json;
      const wrong = ids.filter((i) => stored[i]?.Acl !== `path_beg -i /burst/${last.get(i)}`);
      const lastShop = last.get('/demo/shop/api');
      await waitFor(async () => (await httpGet(hp(`/burst/${lastShop}/x`))).body.startsWith('shop-api'), 'the last rule of the burst for a real app to route', 10000, 50);
      const now = load.mark();
      measured('process.api-kill', {
        writes: WRITES,
        acked,
        retriedOnTheOtherCopy: redirected,
        killedCopyWasStreamLeader: leaderBefore === 0,
        rulesAppliedMsAfterKill: converged,
        marathonChangeRoutedMsAfterKill: marathonRoutedMs,
        haproxyOk: now.ok - mark.ok,
        haproxyFailed: now.failed - mark.failed,
      });
      expect(acked).to.equal(WRITES);
      expect(wrong).to.deep.equal([]);
      expect(readFileSync(cfgPath(), 'utf8')).to.contain(`{ path_beg -i /burst/${lastShop} }\n`);
      expect(now.failed - mark.failed, JSON.stringify(load.failures.slice(-5))).to.equal(0);
    });

    it('leaves a valid haproxy.cfg when the worker is killed (SIGKILL) during an apply, and converges on restart', async function () {
      this.timeout(90000);
      const api = live()[0];
      const dir = join(demo.dir, 'haproxy');
      const temps = () => readdirSync(dir).filter((n) => n.startsWith('haproxy.cfg.tmp-'));
      const mark = load.mark();
      let moment = '';
      let host = '';
      for (let attempt = 0; attempt < 10 && !moment; attempt++) {
        host = `crash-${attempt}.faults.local`;
        const before = readFileSync(cfgPath(), 'utf8');
        expect((await call('PUT', `${api}/api/services//demo/shop/api`, { acl: `hdr(host) -i ${host}` }, auth)).status).to.be.oneOf([200, 201]);
        // Kill the moment the candidate appears (validation) or the new file is renamed into place (reload).
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline && !moment) {
          if (temps().length > 0) moment = 'while validating (temp file present)';
          else if (readFileSync(cfgPath(), 'utf8') !== before) moment = 'after the rename, during the reload';
          if (moment) process.kill(demo.worker.pid, 'SIGKILL');
          else await sleep(1);
        }
      }
      expect(moment, 'the kill landed during an apply').to.not.equal('');
      await demo.worker.exited;
      const check = await haproxyCheck(cfgPath());
      const left = temps();
      const killedAt = Date.now();
      // HAProxy serves on while no worker runs.
      await sleep(500);
      expect((await httpGet(hp('/demo/web/'))).body).to.match(/^web-/);
      await demo.restartWorker();
      procs.push(demo.worker);
      await waitFor(async () => (await httpGet(hp('/x'), { host }).catch(() => null))?.body.startsWith('shop-api'), 'the restarted worker to apply the rule', 30000, 50);
      const convergedMs = since(killedAt);
      await waitFor(() => temps().length === 0, 'stale temp files removed', 10000, 50);
      const now = load.mark();
      measured('process.worker-kill', {
        killed: moment,
        haproxyCheckOk: check.ok,
        tempFilesLeft: left.length,
        convergedMsAfterRestart: convergedMs,
        haproxyOk: now.ok - mark.ok,
        haproxyFailed: now.failed - mark.failed,
      });
      expect(check.ok, check.output).to.equal(true);
      expect(now.failed - mark.failed, JSON.stringify(load.failures.slice(-5))).to.equal(0);
    });

    it('restarts a managed HAProxy whose master was killed (SIGKILL)', async () => {
      const before = (await call('GET', demo.workerStatusUrl)).json.haproxy;
      expect(before.masterPid).to.be.a('number');
      const mark = load.mark();
      const t0 = Date.now();
      process.kill(before.masterPid, 'SIGKILL');
      let after = before;
      await waitFor(async () => {
        after = (await call('GET', demo.workerStatusUrl)).json.haproxy;
        return after.running && after.masterPid !== before.masterPid && (await httpGet(hp('/demo/web/')).catch(() => null))?.status === 200;
      }, `HAProxy restarted and serving (${JSON.stringify(after)})`, 30000, 50);
      const servingMs = since(t0);
      // The restart is counted once the new master has confirmed its worker (a moment after it serves).
      await waitFor(async () => {
        after = (await call('GET', demo.workerStatusUrl)).json.haproxy;
        return after.restarts >= 1;
      }, `the restart to be counted (${JSON.stringify(after)})`, 10000, 50);
      await sleep(300);
      const now = load.mark();
      measured('process.haproxy-master-kill', {
        oldMaster: before.masterPid,
        newMaster: after.masterPid,
        restarts: after.restarts,
        servingAgainMs: servingMs,
        failedRequestsWhileDown: now.failed - mark.failed,
        okRequests: now.ok - mark.ok,
      });
      expect(after.restarts).to.be.at.least(1);
    });
  });

  describe('secrets', () => {
    it('never writes a secret into any process log, across every scenario above', () => {
      const logs: Record<string, string> = {};
      for (const f of ['api-1.log', 'api-2.log', 'worker.log']) logs[f] = readFileSync(join(demo.dir, f), 'utf8');
      procs.forEach((p, i) => (logs[`process ${i} (pid ${p.pid}) stdout+stderr`] = p.output()));
      const forms: Record<string, string> = {
        'auth token': SECRETS.token,
        'Marathon password': SECRETS.marathonPassword,
        'Marathon basic auth header': Buffer.from(`${SECRETS.marathonUser}:${SECRETS.marathonPassword}`).toString('base64'),
        'ZooKeeper digest': ZK_DIGEST,
        'ZooKeeper password': SECRETS.zkPassword,
        'stats password': SECRETS.statsPassword,
      };
      // The demo's TLS private keys (HAProxy.CertDir): every base64 line of each.
      if (demo.https) {
        for (const f of readdirSync(demo.https.certDir).filter((n) => n.endsWith('.pem'))) {
          const key = readFileSync(join(demo.https.certDir, f), 'utf8').split(/-----END CERTIFICATE-----/).pop() ?? '';
          key.split('\n').filter((l) => l && !l.startsWith('-----')).forEach((l, i) => (forms[`private key of ${f}, line ${i + 1}`] = l));
        }
      }
      const leaks: string[] = [];
      for (const [file, text] of Object.entries(logs)) {
        for (const [what, value] of Object.entries(forms)) if (text.includes(value)) leaks.push(`${what} in ${file}`);
      }
      const all = Object.values(logs).join('\n');
      const evidence = {
        logBytes: all.length,
        marathonFailuresLogged: (all.match(/marathon fetch failed/g) ?? []).length,
        rejectedRequestsLogged: (all.match(/request rejected/g) ?? []).length,
        redactedMarks: (all.match(/\*\*\*/g) ?? []).length,
      };
      measured('security.secrets-in-logs', { files: Object.keys(logs).length, leaks, keyLinesSearched: Object.keys(forms).filter((k) => k.startsWith('private key')).length, ...evidence });
      expect(leaks).to.deep.equal([]);
      // The search covered a run full of errors, not a quiet one.
      expect(evidence.marathonFailuresLogged).to.be.greaterThan(0);
      expect(evidence.rejectedRequestsLogged).to.be.greaterThan(500);
    });
  });
});
