/**
 * The Marathon adapter against the Marathon simulator: fetch checks and failover, subscriptions,
 * redirects to the leader, and the event stream (both framings, failover, silent-stream detection).
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createLogger, silentLogger } from '../../common/log.js';
import { MarathonEventStream } from '../../common/adapters/marathon/event-stream.js';
import { MarathonClient } from '../../common/adapters/marathon/marathon.js';
import { MarathonError } from '../../common/adapters/marathon/marathon-errors.js';
import { appPath, EVENTS_PATH, toMarathonEvent, type MarathonEvent } from '../../common/core/marathon-api.js';
import { MarathonSimulator, type MarathonSimulatorOptions } from '../../harness/marathon-sim/index.js';
import { fixturesDir } from '../../harness/marathon-sim/fixtures.js';
import { freePort } from '../../harness/ports.js';
import { sleep, waitFor } from '../../harness/process.js';

const log = process.env.TEST_LOG ? createLogger({ level: 'debug' }) : silentLogger();

/** A tiny HTTP server that answers every request with a redirect to `target` + the same path. */
async function redirector(target: () => string, status = 307): Promise<{ url: string; hits: number; close(): Promise<void> }> {
  const state = { hits: 0 };
  const server: Server = createServer((req, res) => {
    state.hits++;
    res.writeHead(status, { Location: target() + (req.url ?? '/') });
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get hits() {
      return state.hits;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('Marathon adapter (against the simulator)', function () {
  this.timeout(20000);
  const sims: MarathonSimulator[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];

  async function sim(opts: MarathonSimulatorOptions = {}): Promise<MarathonSimulator> {
    const s = new MarathonSimulator({ heartbeatMs: 100, ...opts });
    await s.start();
    sims.push(s);
    return s;
  }

  function client(endpoints: string[], extra: Partial<ConstructorParameters<typeof MarathonClient>[0]> = {}): MarathonClient {
    return new MarathonClient({ endpoints, timeoutMs: 500, log, ...extra });
  }

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await Promise.all(sims.splice(0).map((s) => s.stop()));
  });

  describe('fetchApps', () => {
    it('reads every app with its tasks', async () => {
      const s = await sim();
      s.deployApp({ id: '/web', instances: 2 });
      const r = await client([s.url]).fetchApps();
      expect(r.apps).to.have.length(1);
      const app = r.apps[0] as { id: string; tasks: unknown[] };
      expect(app.id).to.equal('/web');
      expect(app.tasks).to.have.length(2);
      const req = s.requests.find((q) => q.path === '/v2/apps')!;
      expect(req.query).to.include('embed=apps.tasks');
      expect(req.query).to.include('embed=apps.deployments');
      expect(req.query).to.include('embed=apps.readiness');
    });

    it('fetches one app (GET /v2/apps/{id} with the app. embeds) exactly as the list shows it, and says gone on a 404', async () => {
      const s = await sim();
      // Marathon's documented single-app answer (0.7 docs, with lastTaskFailure) seeds the simulator.
      s.loadFixture(JSON.parse(readFileSync(join(fixturesDir(), 'apps/v2-apps-id__marathon-docs-0.7-toggle-embed-tasks-healthcheckresults.json'), 'utf8')));
      const c = client([s.url]);
      const list = await c.fetchApps();
      const id = (list.apps[0] as { id: string }).id;
      const raw = (await (await fetch(`${s.url}${appPath(id)}`)).json()) as { app: Record<string, unknown> };
      expect(raw.app, 'the single-app answer embeds lastTaskFailure').to.have.property('lastTaskFailure');
      const one = await c.fetchApp(id);
      expect(one.found).to.equal(true);
      if (!one.found) return;
      // lastTaskFailure left out: the app and its text are the list's, so a per-app fetch changes nothing by itself.
      expect(one.app).to.deep.equal(list.apps[0]);
      expect(one.text).to.equal(list.texts![0]);
      const req = s.requests.at(-1)!;
      expect(req.path).to.equal(`/v2/apps${id}`);
      expect(req.query).to.equal('embed=app.tasks&embed=app.deployments&embed=app.readiness');
      expect(await c.fetchApp('/no-such-app')).to.deep.include({ found: false });
      s.faults.status = 500;
      const err = await c.fetchApp(id).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(MarathonError);
    });

    it('parses only the apps that changed since the answer it is given, and keeps each app\'s text', async () => {
      const s = await sim();
      s.deployApp({ id: '/web', instances: 2 });
      s.deployApp({ id: '/api', instances: 1 });
      const c = client([s.url]);
      const first = await c.fetchApps();
      expect(first.texts).to.have.length(2);
      expect(first.texts!.map((t) => JSON.parse(t))).to.deep.equal(first.apps);
      s.scaleApp('/web', 3);
      const second = await c.fetchApps({ texts: first.texts!, apps: first.apps });
      const byId = (r: typeof first, id: string) => r.apps.find((a) => (a as { id: string }).id === id);
      expect(byId(second, '/api')).to.equal(byId(first, '/api'));
      expect(byId(second, '/web')).to.not.equal(byId(first, '/web'));
      expect((byId(second, '/web') as { tasks: unknown[] }).tasks).to.have.length(3);
      // The same apps as a fresh client's whole parse.
      expect(second.apps).to.deep.equal((await client([s.url]).fetchApps()).apps);
    });

    const faults: Array<[string, (s: MarathonSimulator) => void, string]> = [
      ['a 500', (s) => (s.faults.status = 500), 'status'],
      ['a 503', (s) => (s.faults.status = 503), 'status'],
      ['an HTML error page', (s) => (s.faults.htmlError = true), 'status'],
      ['truncated JSON', (s) => (s.faults.truncateJson = true), 'parse'],
      ['no answer within the timeout', (s) => (s.faults.latencyMs = 2000), 'timeout'],
    ];
    for (const [name, apply, reason] of faults) {
      it(`rejects ${name} with reason "${reason}"`, async () => {
        const s = await sim();
        s.deployApp({ id: '/web', instances: 1 });
        apply(s);
        const err = await client([s.url]).fetchApps().then(() => null, (e: unknown) => e);
        expect(err).to.be.instanceOf(MarathonError);
        expect((err as MarathonError).reason).to.equal(reason);
      });
    }

    it('rejects a 200 HTML page and JSON without an apps array', async () => {
      const server = createServer((req, res) => {
        if (req.url?.startsWith('/html')) {
          res.writeHead(200, { 'Content-Type': 'text/html' });
          res.end('<html><body>maintenance</body></html>');
        } else {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end('{"apps":{}}');
        }
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const html = await client([`${base}/html`]).fetchApps().catch((e: MarathonError) => e);
      expect((html as MarathonError).reason).to.equal('html');
      const shape = await client([`${base}/shape`]).fetchApps().catch((e: MarathonError) => e);
      expect((shape as MarathonError).reason).to.equal('shape');
    });

    it('fails over to the next endpoint and then prefers the one that answered', async () => {
      const a = await sim();
      const b = await sim({ shareStateWith: a });
      a.deployApp({ id: '/web', instances: 1 });
      a.faults.status = 503;
      const c = client([a.url, b.url]);
      const r1 = await c.fetchApps();
      expect(r1.endpoint).to.equal(b.url);
      a.faults.reset();
      const r2 = await c.fetchApps();
      expect(r2.endpoint).to.equal(b.url);
      expect(a.countRequests('/v2/apps')).to.equal(1);
    });

    it('fails over when an endpoint is down', async () => {
      const dead = `http://127.0.0.1:${await freePort()}`;
      const b = await sim();
      b.deployApp({ id: '/web', instances: 1 });
      const r = await client([dead, b.url]).fetchApps();
      expect(r.apps).to.have.length(1);
    });

    it('sends basic auth, and reports a 401 without the password in the message', async () => {
      const s = await sim({ auth: { user: 'ops', password: 's3cret-pw' } });
      s.deployApp({ id: '/web', instances: 1 });
      const ok = await client([s.url], { user: 'ops', password: 's3cret-pw' }).fetchApps();
      expect(ok.apps).to.have.length(1);
      const err = (await client([s.url], { user: 'ops', password: 'wrong-pw' }).fetchApps().catch((e: unknown) => e)) as MarathonError;
      expect(err.reason).to.equal('status');
      expect(err.status).to.equal(401);
      expect(err.message).not.to.include('wrong-pw');
    });

    it("follows a 307 to Marathon's leader on another host, keeping the credentials", async () => {
      const s = await sim({ auth: { user: 'ops', password: 'pw' } });
      s.deployApp({ id: '/web', instances: 1 });
      const r = await redirector(() => s.url);
      cleanups.push(() => r.close());
      const out = await client([r.url], { user: 'ops', password: 'pw' }).fetchApps();
      expect(out.apps).to.have.length(1);
      expect(r.hits).to.equal(1);
    });
  });

  describe('event subscriptions', () => {
    it('subscribes, lists and unsubscribes a callback URL', async () => {
      const s = await sim();
      const c = client([s.url]);
      const cb = 'http://bamboo.example:8000/api/marathon/event_callback';
      expect(await c.subscriptions(s.url)).to.deep.equal([]);
      expect(await c.subscribe(s.url, cb)).to.equal('ok');
      expect(await c.subscriptions(s.url)).to.deep.equal([cb]);
      expect(await c.unsubscribe(s.url, cb)).to.equal('ok');
      expect(await c.subscriptions(s.url)).to.deep.equal([]);
    });

    it('reports Marathon 1.5+ (no subscriptions API) as unsupported', async () => {
      const s = await sim({ subscriptions: false, version: '1.6.322' });
      const c = client([s.url]);
      expect(await c.subscriptions(s.url)).to.equal('unsupported');
      expect(await c.subscribe(s.url, 'http://x/cb')).to.equal('unsupported');
    });
  });

  describe('event typing', () => {
    const cases: Array<[string, { event?: string; data: string }, string, unknown]> = [
      ['an event: line and JSON data', { event: 'status_update_event', data: '{"eventType":"status_update_event","appId":"/a"}' }, 'status_update_event', { eventType: 'status_update_event', appId: '/a' }],
      ['an event: line naming another type than the JSON', { event: 'deployment_info', data: '{"eventType":"other"}' }, 'deployment_info', { eventType: 'other' }],
      ['an event: line and data that is not JSON', { event: 'deployment_success', data: '{"plan":' }, 'deployment_success', null],
      ['JSON with eventType and no event: line', { data: '{"eventType":"api_post_event"}' }, 'api_post_event', { eventType: 'api_post_event' }],
      ['JSON without eventType and no event: line', { data: '{"x":1}' }, 'message', { x: 1 }],
      ['data that is neither typed nor JSON', { data: 'hello' }, 'message', null],
    ];
    for (const [name, msg, type, payload] of cases) {
      it(`types ${name} as ${type}`, () => {
        const e = toMarathonEvent(msg);
        expect(e.type).to.equal(type);
        expect(e.data).to.equal(msg.data);
        expect(e.payload()).to.deep.equal(payload);
        expect(e.payload()).to.equal(e.payload()); // parsed once, then kept
      });
    }
  });

  describe('event stream', () => {
    function stream(c: MarathonClient, extra: { idleTimeoutMs?: number } = {}) {
      const events: MarathonEvent[] = [];
      const connects: string[] = [];
      const st = new MarathonEventStream(c, {
        idleTimeoutMs: extra.idleTimeoutMs ?? 5000,
        backoffMinMs: 20,
        backoffMaxMs: 200,
        log,
        onEvent: (e) => events.push(e),
        onConnected: (u) => connects.push(u),
      });
      cleanups.push(() => st.stop());
      st.start();
      return { st, events, connects, types: () => events.map((e) => e.type) };
    }

    it('reads CRLF-framed events with event: lines', async () => {
      const s = await sim({ version: '1.6.322' });
      const r = stream(client([s.url]));
      await waitFor(() => r.types().includes('event_stream_attached'), 'attached');
      s.deployApp({ id: '/web', instances: 1 });
      await waitFor(() => r.types().includes('status_update_event'), 'status update');
      const upd = r.events.find((e) => e.type === 'status_update_event')!.payload() as { appId: string };
      expect(upd.appId).to.equal('/web');
      const req = s.requests.find((q) => q.path === '/v2/events')!;
      expect(req.headers.accept).to.equal('text/event-stream');
    });

    it('asks for the light plan format, so deployment events do not carry the whole app group twice', async () => {
      const s = await sim({ version: '1.6.322' });
      const r = stream(client([s.url]));
      await waitFor(() => r.types().includes('event_stream_attached'), 'attached');
      s.deployApp({ id: '/web', instances: 1 });
      await waitFor(() => r.types().includes('deployment_success'), 'deployment events');
      expect(new URLSearchParams(s.requests.find((q) => q.path === '/v2/events')!.query).get('plan-format')).to.equal('light');
      for (const e of r.events.filter((x) => x.type.startsWith('deployment_'))) {
        const plan = (e.payload() as { plan: Record<string, unknown> }).plan;
        expect(plan, e.type).to.include.keys('id', 'steps');
        expect(plan, e.type).to.not.have.any.keys('original', 'target');
      }
    });

    it('types events by their event: line without needing their data to parse', async () => {
      const s = await sim({ version: '1.6.322' });
      const r = stream(client([s.url]));
      await waitFor(() => r.connects.length > 0, 'connect');
      s.emit('deployment_info', '{"eventType":"deployment_info","plan":');
      await waitFor(() => r.types().includes('deployment_info'), 'typed event');
      const e = r.events.find((x) => x.type === 'deployment_info')!;
      expect(e.data).to.equal('{"eventType":"deployment_info","plan":');
      expect(e.payload()).to.equal(null);
    });

    it('reads data-only frames (Marathon 0.9/0.10), typing events from their JSON', async () => {
      const s = await sim({ version: '0.9.0', eventFraming: 'data-only' });
      const r = stream(client([s.url]));
      await waitFor(() => r.connects.length > 0, 'connect');
      s.emit('status_update_event', { eventType: 'status_update_event', appId: '/x', taskStatus: 'TASK_RUNNING' });
      await waitFor(() => r.types().includes('status_update_event'), 'typed event');
      expect(r.events.find((e) => e.type === 'status_update_event')!.payload()).to.include({ appId: '/x' });
    });

    it('reconnects after the stream is dropped, and fails over to the next endpoint', async () => {
      const a = await sim();
      const b = await sim({ shareStateWith: a });
      const r = stream(client([a.url, b.url]));
      await waitFor(() => r.connects.length === 1, 'first connect');
      expect(r.connects[0]).to.equal(`${a.url}${EVENTS_PATH}`);
      await a.stop();
      await waitFor(() => r.connects.length >= 2 && r.connects.at(-1) === `${b.url}${EVENTS_PATH}`, 'failover to b');
      b.emit('deployment_success', { eventType: 'deployment_success', id: 'd1' });
      await waitFor(() => r.types().includes('deployment_success'), 'event from b');
    });

    it('notices a silent stream and reopens it', async () => {
      const s = await sim({ heartbeatMs: 50 });
      const r = stream(client([s.url], { timeoutMs: 300 }), { idleTimeoutMs: 300 });
      await waitFor(() => r.connects.length === 1, 'connect');
      s.faults.stallStream = true;
      await sleep(500);
      s.faults.stallStream = false;
      await waitFor(() => r.connects.length >= 2, 'reopened after the stall', 5000);
      expect(r.st.status().lastError).to.be.a('string');
    });

    it('follows a 307 on the stream to another host', async () => {
      const s = await sim();
      const red = await redirector(() => s.url);
      cleanups.push(() => red.close());
      const r = stream(client([red.url]));
      await waitFor(() => r.types().includes('event_stream_attached'), 'attached through the redirect');
      expect(red.hits).to.be.greaterThan(0);
      expect(r.st.status().endpoint).to.equal(`${s.url}${EVENTS_PATH}`);
    });

    it('stops cleanly and closes the connection', async () => {
      const s = await sim();
      const r = stream(client([s.url]));
      await waitFor(() => r.connects.length === 1, 'connect');
      await r.st.stop();
      expect(r.st.status().connected).to.equal(false);
      const before = s.countRequests('/v2/events');
      await sleep(100);
      expect(s.countRequests('/v2/events')).to.equal(before);
    });
  });
});
