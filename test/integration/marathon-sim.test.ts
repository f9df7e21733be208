/**
 * The Marathon simulator against the wire-format evidence (harness/fixtures/marathon):
 * every apps/, events/ and sse/ fixture is replayed through it, and its controls, embed parameters,
 * auth and faults are checked against what real Marathon does.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import {
  appsFromFixture,
  fixturesDir,
  listFixtureFiles,
  MarathonSimulator,
  sseFrame,
  type AppDefinition,
  type JsonObject,
  type MarathonSimulatorOptions,
  type SimEvent,
} from '../../harness/marathon-sim/index.js';
import { openEventStream, startCallbackReceiver, waitUntil, type CallbackReceiver, type SseClient } from '../../harness/marathon-sim/clients.js';

const FIXTURES = fixturesDir();
const readFixture = (rel: string): string => readFileSync(join(FIXTURES, rel), 'utf8');
const filesIn = (dir: string): string[] => listFixtureFiles(join(FIXTURES, dir)).map((f) => join(dir, f));
const COUNT_AND_DEPLOYMENT_KEYS = ['tasksStaged', 'tasksRunning', 'tasksHealthy', 'tasksUnhealthy', 'deployments'];

/** Parses SSE text with eventsource-parser, a spec-following parser (an unterminated last frame is dropped, per the spec). */
function parseSse(text: string): EventSourceMessage[] {
  const out: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => out.push(e) });
  parser.feed(text);
  return out;
}

/** Starts simulators and stream/callback clients and closes all of them after each test. */
function harness(): {
  sim(opts?: MarathonSimulatorOptions): Promise<MarathonSimulator>;
  stream(sim: MarathonSimulator, opts?: { query?: string; headers?: Record<string, string> }): Promise<SseClient>;
  receiver(opts?: { hang?: boolean }): Promise<CallbackReceiver>;
} {
  const sims: MarathonSimulator[] = [];
  const streams: SseClient[] = [];
  const receivers: CallbackReceiver[] = [];
  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    await Promise.all(sims.splice(0).map((s) => s.stop()));
    await Promise.all(receivers.splice(0).map((r) => r.close()));
  });
  return {
    async sim(opts = {}) {
      const s = new MarathonSimulator({ heartbeatMs: 60_000, ...opts });
      sims.push(s);
      await s.start();
      return s;
    },
    async stream(sim, opts = {}) {
      const s = await openEventStream(sim.url, opts);
      streams.push(s);
      return s;
    },
    async receiver(opts = {}) {
      const r = await startCallbackReceiver(opts);
      receivers.push(r);
      return r;
    },
  };
}

async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, { headers: { Accept: 'application/json', ...headers } });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text), headers: res.headers };
}

async function send(method: string, url: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** Collects the events a simulator sends, parsed, for assertions on order and shape. */
function record(sim: MarathonSimulator): { events: SimEvent[]; types(): string[]; of(type: string): JsonObject[] } {
  const events: SimEvent[] = [];
  sim.onEvent((e) => events.push(e));
  return {
    events,
    types: () => events.map((e) => e.eventType),
    of: (type) => events.filter((e) => e.eventType === type).map((e) => JSON.parse(e.data) as JsonObject),
  };
}

/** The keys of the first `data:` payload of the real 1.6 lifecycle capture with this event type and predicate. */
function realKeys(eventType: string, pick: (o: JsonObject) => boolean = () => true): string[] {
  const frames = parseSse(readFixture('sse/real-marathon-1.6_gestalt-dcos_app-lifecycle.txt'));
  const found = frames.map((f) => JSON.parse(f.data) as JsonObject).find((o) => o['eventType'] === eventType && pick(o));
  if (!found) throw new Error(`no ${eventType} in the capture`);
  return Object.keys(found);
}

/**
 * A served app is equivalent to a fixture app when every fixture field comes back equal; the only
 * extra fields allowed are the counts and deployments Marathon always embeds, and an empty task
 * list when the fixture had none.
 */
function expectEquivalentApp(served: JsonObject, fixture: JsonObject, where: string): void {
  for (const [key, value] of Object.entries(fixture)) expect(served[key], `${where}: ${key}`).to.deep.equal(value);
  for (const key of Object.keys(served)) {
    if (key in fixture) continue;
    if (key === 'tasks') expect(served[key], `${where}: tasks`).to.deep.equal([]);
    else expect(COUNT_AND_DEPLOYMENT_KEYS, `${where}: unexpected key ${key}`).to.include(key);
  }
}

describe('Marathon simulator', function () {
  this.timeout(10_000);
  const h = harness();

  describe('replaying apps/ fixtures', () => {
    const responses = filesIn('apps').filter((f) => !f.startsWith(join('apps', 'definitions')));

    for (const file of responses) {
      it(`serves ${file} back equivalent through GET /v2/apps and /v2/tasks`, async () => {
        const sim = await h.sim();
        const json: unknown = JSON.parse(readFixture(file));
        const apps = appsFromFixture(json);
        sim.loadFixture(json);

        const embedded = await getJson(`${sim.url}/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure`);
        expect(embedded.status).to.equal(200);
        expect(embedded.body.apps.map((a: JsonObject) => a['id'])).to.deep.equal(apps.map((a) => a['id']));
        apps.forEach((app, i) => expectEquivalentApp(embedded.body.apps[i], app, `${file} ${String(app['id'])}`));

        // Without embed Marathon omits tasks but keeps counts and deployments.
        const plain = await getJson(`${sim.url}/v2/apps`);
        for (const app of plain.body.apps) {
          expect(app).to.not.have.property('tasks');
          expect(app).to.include.keys('tasksRunning', 'deployments');
        }

        const tasks = await getJson(`${sim.url}/v2/tasks`);
        const fixtureTasks = apps.flatMap((a) => (Array.isArray(a['tasks']) ? (a['tasks'] as JsonObject[]) : []));
        expect(tasks.body.tasks.map((t: JsonObject) => t['id'])).to.deep.equal(fixtureTasks.map((t) => t['id']));
        for (const t of tasks.body.tasks) expect(t['servicePorts']).to.be.an('array');

        for (const app of apps) {
          const one = await getJson(`${sim.url}/v2/apps/${String(app['id']).replace(/^\//, '')}`);
          expect(one.status, `GET /v2/apps/${String(app['id'])}`).to.equal(200);
          expectEquivalentApp(one.body.app, app, `${file} GET /v2/apps/{id}`);
        }
        if (file.includes('v2-apps-id__')) {
          // GET /v2/apps/{id} embeds tasks, counts, deployments and lastTaskFailure: the whole fixture comes back.
          const id = String((json as { app: JsonObject }).app['id']);
          expect((await getJson(`${sim.url}/v2/apps/${id}`)).body).to.deep.equal(json);
        }
      });
    }

    it('filters the docs label fixture with ?label= selectors', async () => {
      const sim = await h.sim();
      sim.loadFixture(JSON.parse(readFixture('apps/v2-apps-label-filter__marathon-docs-0.x-labels.json')));
      const ids = async (q: string): Promise<string[]> => (await getJson(`${sim.url}/v2/apps?${q}`)).body.apps.map((a: JsonObject) => a['id']);
      expect(await ids('label=foo==one')).to.have.length(1);
      expect(await ids('label=foo==two')).to.deep.equal([]);
      expect(await ids(`label=${encodeURIComponent('foo in (one, three),existence')}`)).to.have.length(1);
      expect(await ids('label=bla!=four')).to.deep.equal([]);
      expect(await ids('label=missing')).to.deep.equal([]);
    });

    it('finds apps whose fixture ids lack the leading slash, and serves ids with slashes', async () => {
      const sim = await h.sim();
      sim.loadFixture(JSON.parse(readFixture('apps/v2-apps-embed-tasks__STUB-bamboo-test_ip-per-task-minimal.json')));
      expect((await getJson(`${sim.url}/v2/apps/app1WithoutSlash`)).body.app.id).to.equal('app1WithoutSlash');
      sim.loadFixture(JSON.parse(readFixture('apps/v2-apps-list__EDITED-real-marathon-0.x_f5_nested-group-id.json')));
      const nested = await getJson(`${sim.url}/v2/apps//my_services/test-2/server-app`);
      expect(nested.body.app.id).to.equal('/my_services/test-2/server-app');
      expect(nested.body.app.tasks[0].id).to.match(/^my_services_test-2_server-app\./);
    });

    for (const file of filesIn(join('apps', 'definitions'))) {
      it(`deploys ${file} with one task per instance and a port per declared port`, async () => {
        const sim = await h.sim();
        const def = JSON.parse(readFixture(file)) as JsonObject;
        const { appId } = sim.deployApp(def as AppDefinition);
        const { body } = await getJson(`${sim.url}/v2/apps?embed=apps.tasks`);
        const app = body.apps[0] as JsonObject;
        expect(app['id']).to.equal(`/${String(def['id']).replace(/^\//, '')}`).and.equal(appId);
        for (const key of ['env', 'labels', 'healthChecks', 'readinessChecks', 'cmd', 'instances']) {
          if (key in def) expect(app[key], key).to.deep.equal(def[key]);
        }
        const tasks = app['tasks'] as JsonObject[];
        expect(tasks).to.have.length(Number(def['instances'] ?? 1));
        const container = (def['container'] ?? {}) as JsonObject;
        const declared = (container['portMappings'] ??
          (container['docker'] as JsonObject | undefined)?.['portMappings'] ??
          def['ports'] ??
          def['portDefinitions'] ??
          [0]) as unknown[];
        for (const t of tasks) {
          expect(t['ports'] as number[]).to.have.length(declared.length);
          expect(t['appId']).to.equal(appId);
          expect(t['state']).to.equal('TASK_RUNNING');
        }
        const servicePorts = ((await getJson(`${sim.url}/v2/tasks`)).body.tasks[0] as JsonObject)['servicePorts'] as number[];
        expect(servicePorts).to.have.length(declared.length);
        for (const p of servicePorts) expect(p).to.be.greaterThan(0);
      });
    }
  });

  describe('replaying events/ fixtures', () => {
    let sim: MarathonSimulator;
    let stream: SseClient;
    let receiver: CallbackReceiver;
    const solo = harness();

    // Each file gets a fresh simulator, stream and subscriber, so its event is always frame 2 and POST 3.
    beforeEach(async () => {
      sim = await solo.sim();
      receiver = await solo.receiver();
      await send('POST', `${sim.url}/v2/eventSubscriptions?callbackUrl=${encodeURIComponent(receiver.url)}`);
      await receiver.waitFor(1); // its own subscribe_event
      stream = await solo.stream(sim);
      await stream.waitForEvents(1); // event_stream_attached
      await receiver.waitFor(2); // the attach is an event bus event too
    });

    for (const file of filesIn('events')) {
      it(`delivers ${file} byte-identical over SSE and callback POST`, async () => {
        const text = readFixture(file);
        const parsed = JSON.parse(text) as JsonObject;
        const eventType = String(parsed['eventType']);
        expect(file.slice('events/'.length).startsWith(eventType), 'file name starts with the eventType').to.equal(true);
        // Single-line captures go out byte for byte; pretty-printed docs samples go out as Marathon
        // would send them, compact on one data: line.
        const lines = text.replace(/\n$/, '').split('\n');
        const data = lines.length === 1 ? (lines[0] as string) : JSON.stringify(parsed);
        sim.emit(eventType, lines.length === 1 ? data : parsed);
        await stream.waitForEvents(2);
        await receiver.waitFor(3);
        expect(stream.events[1]).to.deep.include({ event: eventType, data });
        expect(stream.raw().endsWith(sseFrame(eventType, data, 'event'))).to.equal(true);
        expect(receiver.received[2]).to.deep.include({ body: data, contentType: 'application/json' });
      });
    }
  });

  describe('replaying sse/ fixtures', () => {
    for (const file of filesIn('sse')) {
      it(`parses ${file} with a standard SSE parser and replays its frames`, async () => {
        let text = readFixture(file);
        const dataOnly = file.includes('data-only');
        // The 0.9 docs sample was cut from a code block without the blank line that ends its last
        // frame (README "edits"); a standard parser rightly drops an unterminated frame, so restore it.
        if (dataOnly && !text.endsWith('\n\n')) text += '\n';
        const frames = parseSse(text);
        expect(frames.length).to.be.greaterThan(0);
        for (const f of frames) {
          const payload = JSON.parse(f.data) as JsonObject;
          expect(payload['eventType']).to.be.a('string');
          if (f.event !== undefined) expect(f.event).to.equal(payload['eventType']);
        }
        if (file.includes('NONSTANDARD')) {
          // Blank lines between event: and data: dispatch early (README notes): the names are lost.
          expect(frames.every((f) => f.event === undefined)).to.equal(true);
        } else if (dataOnly) {
          expect(frames.map((f) => f.event)).to.deep.equal([undefined, undefined]);
        } else {
          expect(frames.every((f) => f.event !== undefined)).to.equal(true);
        }

        const sim = await h.sim({ eventFraming: dataOnly ? 'data-only' : 'event' });
        const stream = await h.stream(sim);
        await stream.waitForEvents(1);
        const before = stream.raw().length;
        for (const f of frames) sim.emit(f.event ?? String((JSON.parse(f.data) as JsonObject)['eventType']), f.data);
        await stream.waitForEvents(1 + frames.length);
        const replayed = stream.events.slice(1);
        expect(replayed.map((e) => e.data)).to.deep.equal(frames.map((f) => f.data));
        expect(replayed.map((e) => e.event)).to.deep.equal(
          frames.map((f) => (dataOnly ? undefined : (f.event ?? (JSON.parse(f.data) as JsonObject)['eventType']))),
        );
        if (dataOnly) {
          // Same frames as the 0.9 docs, with Jetty's CRLF line ends.
          expect(stream.raw().slice(before)).to.equal(text.replace(/\n/g, '\r\n'));
        }
      });
    }

    it('frames its own stream exactly like the real CRLF capture', async () => {
      const capture = readFixture('sse/real-marathon_async-worker_single-event_CRLF.txt');
      const captured = JSON.parse(parseSse(capture)[0]!.data) as JsonObject;
      const sim = await h.sim();
      const stream = await h.stream(sim);
      await stream.waitForEvents(1);
      const ours = stream.events[0]!.data;
      expect(stream.raw()).to.equal(capture.replace(JSON.stringify(captured), ours));
      expect(Object.keys(JSON.parse(ours) as JsonObject)).to.deep.equal(Object.keys(captured));
      expect(JSON.parse(ours)).to.include({ remoteAddress: '127.0.0.1', eventType: 'event_stream_attached' });
      expect(stream.headers['content-type']).to.equal('text/event-stream;charset=UTF-8');
      expect(stream.headers['connection']).to.equal('close');
    });
  });

  describe('controls', () => {
    const web = { id: '/web', instances: 2, healthChecks: [{ protocol: 'HTTP', path: '/', portIndex: 0 }] };

    it('deploys an app with the events of the real 1.6 create lifecycle, shaped like the captures', async () => {
      const sim = await h.sim();
      const rec = record(sim);
      const { taskIds } = sim.deployApp(web, { tasks: [{ host: '127.0.0.1', ports: [8081] }, { host: '127.0.0.1', ports: [8082] }] });
      const perTask = ['instance_changed_event', 'status_update_event', 'instance_changed_event', 'health_status_changed_event', 'instance_health_changed_event'];
      expect(rec.types()).to.deep.equal([
        'deployment_info',
        'group_change_success',
        'api_post_event',
        'deployment_step_success',
        'deployment_info',
        ...perTask,
        ...perTask,
        'deployment_step_success',
        'deployment_success',
      ]);
      expect(rec.of('instance_changed_event').map((e) => e['condition'])).to.deep.equal(['Created', 'Running', 'Created', 'Running']);
      expect(rec.of('status_update_event').map((e) => [e['taskId'], e['taskStatus'], e['ports']])).to.deep.equal([
        [taskIds[0], 'TASK_RUNNING', [8081]],
        [taskIds[1], 'TASK_RUNNING', [8082]],
      ]);
      // Same keys in the same order as real Marathon 1.6 / 1.4 payloads.
      expect(Object.keys(rec.of('status_update_event')[0]!)).to.deep.equal(realKeys('status_update_event'));
      expect(Object.keys(rec.of('instance_changed_event')[0]!)).to.deep.equal(realKeys('instance_changed_event'));
      expect(Object.keys(rec.of('group_change_success')[0]!)).to.deep.equal(realKeys('group_change_success'));
      expect(Object.keys(rec.of('api_post_event')[0]!)).to.deep.equal(realKeys('api_post_event'));
      expect(Object.keys(rec.of('deployment_info')[0]!)).to.deep.equal(realKeys('deployment_info'));
      expect(Object.keys(rec.of('deployment_info')[0]!['plan'] as JsonObject)).to.deep.equal(['id', 'original', 'target', 'steps', 'version']);
      expect(Object.keys(rec.of('deployment_step_success')[0]!)).to.deep.equal(realKeys('deployment_step_success'));
      expect(Object.keys(rec.of('deployment_success')[0]!)).to.deep.equal(realKeys('deployment_success'));
      const health = JSON.parse(readFixture('events/health_status_changed_event__real-marathon-1.4_issue-5434.json')) as JsonObject;
      expect(Object.keys(rec.of('health_status_changed_event')[0]!)).to.deep.equal(Object.keys(health));
      const instHealth = JSON.parse(readFixture('events/instance_health_changed_event__marathon-1.4-changelog.json')) as JsonObject;
      expect(Object.keys(rec.of('instance_health_changed_event')[0]!)).to.deep.equal(Object.keys(instHealth));
      const [first] = rec.of('deployment_info');
      expect((first!['currentStep'] as JsonObject)['actions']).to.deep.equal([{ action: 'StartApplication', app: '/web' }]);
      for (const e of rec.events) expect(JSON.parse(e.data).timestamp).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(taskIds[0]).to.match(/^web\.[0-9a-f-]{36}$/);
      expect(rec.of('health_status_changed_event')[0]!['instanceId']).to.equal(taskIds[0]!.replace('web.', 'web.marathon-'));
    });

    it('destroys an app with the events of the real 1.6 destroy lifecycle, in the same order', async () => {
      const sim = await h.sim();
      sim.deployApp({ id: '/test-container', instances: 1 });
      const rec = record(sim);
      sim.destroyApp('/test-container');
      // The capture's task exited with TASK_FINISHED/Finished; a killed task reports TASK_KILLED/Killed.
      const frames = parseSse(readFixture('sse/real-marathon-1.6_gestalt-dcos_app-lifecycle.txt'));
      const captured = frames.slice(frames.findIndex((f, i) => i > 1 && f.event === 'deployment_info'), -1);
      expect(rec.types()).to.deep.equal(captured.map((f) => f.event));
      expect(rec.of('status_update_event').map((e) => e['taskStatus'])).to.deep.equal(['TASK_KILLING', 'TASK_KILLED']);
      expect(rec.of('app_terminated_event')[0]).to.include({ appId: '/test-container' });
      expect((await getJson(`${sim.url}/v2/apps`)).body.apps).to.deep.equal([]);
      expect((await getJson(`${sim.url}/v2/apps/test-container`)).body).to.deep.equal({ message: "App '/test-container' does not exist" });
    });

    it('scales up with explicit task endpoints and down by killing the youngest tasks', async () => {
      const sim = await h.sim();
      const { taskIds: first } = sim.deployApp({ id: '/api', instances: 1 });
      const rec = record(sim);
      const { taskIds: added } = sim.scaleApp('/api', 3, { tasks: [{ host: '10.0.0.5', ports: [9001] }] });
      expect(added).to.have.length(2);
      expect(sim.tasks('/api').map((t) => [t.host, t.ports.length])).to.deep.equal([
        ['127.0.0.1', 1],
        ['10.0.0.5', 1],
        ['127.0.0.1', 1],
      ]);
      expect(sim.tasks('/api')[1]!.ports).to.deep.equal([9001]);
      expect(rec.types().slice(0, 3)).to.deep.equal(['deployment_info', 'group_change_success', 'api_post_event']);
      expect((rec.of('deployment_info')[0]!['currentStep'] as JsonObject)['actions']).to.deep.equal([{ action: 'ScaleApplication', app: '/api' }]);
      rec.events.length = 0;
      sim.scaleApp('/api', 1);
      expect(sim.tasks('/api').map((t) => t.id)).to.deep.equal(first);
      expect(rec.of('status_update_event').map((e) => e['taskStatus'])).to.deep.equal(['TASK_KILLING', 'TASK_KILLING', 'TASK_KILLED', 'TASK_KILLED']);
      expect(rec.types().at(-1)).to.equal('deployment_success');
      expect((await getJson(`${sim.url}/v2/apps/api`)).body.app).to.include({ instances: 1, tasksRunning: 1 });
    });

    it('changes an app\'s labels as a configuration change that keeps its tasks', async () => {
      const sim = await h.sim();
      const { taskIds } = sim.deployApp({ id: '/shop', instances: 1, labels: { team: 'a' } });
      const before = (await getJson(`${sim.url}/v2/apps/shop`)).body.app as JsonObject;
      const rec = record(sim);
      await new Promise((r) => setTimeout(r, 5)); // a later version than the deployment's
      sim.setLabels('/shop', { team: 'a', HAPROXY_0_VHOST: 'shop.test' });
      expect(rec.types()).to.deep.equal(['deployment_info', 'group_change_success', 'api_post_event', 'deployment_step_success', 'deployment_success']);
      expect((rec.of('api_post_event')[0]!['appDefinition'] as JsonObject)['labels']).to.deep.equal({ team: 'a', HAPROXY_0_VHOST: 'shop.test' });
      const after = (await getJson(`${sim.url}/v2/apps/shop`)).body.app as JsonObject;
      expect(after['labels']).to.deep.equal({ team: 'a', HAPROXY_0_VHOST: 'shop.test' });
      expect(after['version']).to.not.equal(before['version']);
      expect((after['versionInfo'] as JsonObject)['lastConfigChangeAt']).to.equal(after['version']);
      expect(sim.tasks('/shop').map((t) => t.id)).to.deep.equal(taskIds);
    });

    it('kills a task: killing then killed, and a replacement unless scaling down', async () => {
      const sim = await h.sim();
      const { taskIds } = sim.deployApp({ id: '/svc', instances: 2 });
      const rec = record(sim);
      const { replacementTaskId } = sim.killTask(taskIds[0]!, { replacement: { host: '127.0.0.1', ports: [7000] } });
      expect(rec.of('status_update_event').map((e) => [e['taskId'], e['taskStatus']])).to.deep.equal([
        [taskIds[0], 'TASK_KILLING'],
        [taskIds[0], 'TASK_KILLED'],
        [replacementTaskId, 'TASK_RUNNING'],
      ]);
      expect(rec.of('status_update_event')[1]!['message']).to.equal('Container exited with status 137');
      expect(rec.types()).to.not.include('deployment_info');
      expect(sim.tasks('/svc').map((t) => t.id)).to.deep.equal([taskIds[1], replacementTaskId]);
      rec.events.length = 0;
      const { deploymentId } = sim.killTask(taskIds[1]!, { scale: true });
      expect(rec.types()[0]).to.equal('deployment_info');
      expect(rec.of('deployment_success')[0]).to.include({ id: deploymentId });
      expect(sim.tasks('/svc').map((t) => t.id)).to.deep.equal([replacementTaskId]);
      expect(sim.app('/svc')).to.include({ instances: 1 });
    });

    it('flips health: results, counts and events only on change (1.6 shape)', async () => {
      const sim = await h.sim();
      const { taskIds } = sim.deployApp(web);
      const rec = record(sim);
      sim.setTaskHealth(taskIds[0]!, false, { cause: 'ConnectException: Connection refused' });
      sim.setTaskHealth(taskIds[0]!, false);
      expect(rec.types()).to.deep.equal([
        'failed_health_check_event',
        'health_status_changed_event',
        'instance_health_changed_event',
        'failed_health_check_event',
      ]);
      expect(rec.of('health_status_changed_event')[0]).to.include({ appId: '/web', alive: false });
      expect(rec.of('instance_health_changed_event')[0]).to.include({ runSpecId: '/web', healthy: false });
      const failed = JSON.parse(readFixture('events/failed_health_check_event__real-marathon-1.4_issue-5434.json')) as JsonObject;
      expect(Object.keys(rec.of('failed_health_check_event')[0]!)).to.deep.equal(Object.keys(failed));
      const app = (await getJson(`${sim.url}/v2/apps/web`)).body.app;
      expect(app).to.include({ tasksHealthy: 1, tasksUnhealthy: 1 });
      const result = app.tasks.find((t: JsonObject) => t['id'] === taskIds[0]).healthCheckResults[0];
      expect(result).to.include({ alive: false, consecutiveFailures: 2, lastFailureCause: 'ConnectException: Connection refused' });
      expect(Object.keys(result)).to.deep.equal(['alive', 'consecutiveFailures', 'firstSuccess', 'lastFailure', 'lastSuccess', 'lastFailureCause', 'instanceId']);
      rec.events.length = 0;
      sim.setTaskHealth(taskIds[0]!, true);
      expect(rec.types()).to.deep.equal(['health_status_changed_event', 'instance_health_changed_event']);
      expect(() => sim.setTaskHealth(sim.deployApp({ id: '/nohc' }).taskIds[0]!, false)).to.throw(/no health checks/);
    });

    it('uses taskId and no instance events before 1.4, and "type" actions before 1.1', async () => {
      const sim = await h.sim({ version: '1.3.10' });
      const rec = record(sim);
      const { taskIds } = sim.deployApp(web);
      expect(rec.types()).to.not.include('instance_changed_event');
      expect(rec.of('health_status_changed_event')[0]).to.have.property('taskId', taskIds[0]);
      const task = (await getJson(`${sim.url}/v2/apps/web`)).body.app.tasks[0];
      expect(task.healthCheckResults[0]).to.have.property('taskId', taskIds[0]);
      expect(task).to.have.property('state', 'TASK_RUNNING');
      expect((await getJson(`${sim.url}/v2/apps/web`)).body.app).to.have.property('ports').that.deep.equals([10000]);

      const old = await h.sim({ version: '0.15.3' });
      const oldRec = record(old);
      old.deployApp({ id: '/legacy', instances: 1 });
      const oldStep = oldRec.of('deployment_info')[0]!['currentStep'] as JsonObject;
      expect(oldStep['actions']).to.deep.equal([{ type: 'StartApplication', app: '/legacy' }]);
      expect((await getJson(`${old.url}/v2/apps/legacy`)).body.app.tasks[0]).to.not.have.property('state');
    });

    it('reports Mesos-side (MESOS_HTTP) health only with instance_health_changed_event on 1.4+', async () => {
      const sim = await h.sim();
      const { taskIds } = sim.deployApp({ id: '/m', healthChecks: [{ protocol: 'MESOS_HTTP', path: '/' }] });
      const rec = record(sim);
      sim.setTaskHealth(taskIds[0]!, false);
      expect(rec.types()).to.deep.equal(['instance_health_changed_event']);
    });

    it('shows readiness results only with embed=apps.readiness', async () => {
      const sim = await h.sim();
      const { taskIds } = sim.deployApp({ id: '/r', readinessChecks: [{ name: 'readiness', path: '/ready' }] });
      sim.setTaskReady(taskIds[0]!, false);
      expect((await getJson(`${sim.url}/v2/apps`)).body.apps[0]).to.not.have.property('readinessCheckResults');
      const { body } = await getJson(`${sim.url}/v2/apps?embed=apps.readiness`);
      expect(body.apps[0].readinessCheckResults).to.have.length(1);
      expect(body.apps[0].readinessCheckResults[0]).to.include({ name: 'readiness', taskId: taskIds[0], ready: false });
      expect(Object.keys(body.apps[0].readinessCheckResults[0])).to.deep.equal(['name', 'taskId', 'ready', 'lastResponse']);
    });

    it('sets task states: TASK_LOST stays listed, TASK_FAILED is expunged and becomes lastTaskFailure', async () => {
      const sim = await h.sim();
      const { taskIds } = sim.deployApp({ id: '/s', instances: 2 });
      const rec = record(sim);
      sim.setTaskState(taskIds[0]!, 'TASK_LOST');
      sim.setTaskState(taskIds[1]!, 'TASK_FAILED', { message: 'boom' });
      expect(rec.of('instance_changed_event').map((e) => e['condition'])).to.deep.equal(['Unreachable', 'Failed']);
      const app = (await getJson(`${sim.url}/v2/apps/s`)).body.app;
      expect(app.tasks.map((t: JsonObject) => [t['id'], t['state']])).to.deep.equal([[taskIds[0], 'TASK_LOST']]);
      expect(app.lastTaskFailure).to.include({ taskId: taskIds[1], state: 'TASK_FAILED', message: 'boom' });
      expect((await getJson(`${sim.url}/v2/apps?embed=apps.lastTaskFailure`)).body.apps[0]).to.have.property('lastTaskFailure');
      expect((await getJson(`${sim.url}/v2/apps`)).body.apps[0]).to.not.have.property('lastTaskFailure');
    });

    it('adds and removes tasks, silently when asked (a lost event)', async () => {
      const sim = await h.sim();
      sim.deployApp({ id: '/a', instances: 0 });
      const rec = record(sim);
      const id = sim.addTask('/a', { host: '127.0.0.1', ports: [5555] });
      expect(rec.of('status_update_event')[0]).to.include({ taskId: id, taskStatus: 'TASK_RUNNING' });
      rec.events.length = 0;
      sim.removeTask(id, { silent: true });
      expect(rec.events).to.deep.equal([]);
      expect(sim.tasks('/a')).to.deep.equal([]);
      const staging = sim.addTask('/a', { host: '127.0.0.1', ports: [5556], state: 'TASK_STAGING', silent: true });
      expect((await getJson(`${sim.url}/v2/apps/a`)).body.app).to.include({ tasksStaged: 1, tasksRunning: 0 });
      sim.removeTask(staging);
      expect(rec.of('status_update_event').map((e) => e['taskStatus'])).to.deep.equal(['TASK_KILLED']);
    });

    it('lists open deployments under embed=apps.deployments and /v2/deployments until finished', async () => {
      const sim = await h.sim();
      const { deploymentId: held } = sim.deployApp({ id: '/d', instances: 1 }, { hold: true });
      let app = (await getJson(`${sim.url}/v2/apps?embed=apps.deployments`)).body.apps[0];
      expect(app.deployments).to.deep.equal([{ id: held }]);
      const rec = record(sim);
      sim.finishDeployment(held);
      expect(rec.types()).to.deep.equal(['deployment_step_success', 'deployment_success']);
      const { deploymentId } = sim.startDeployment('/d');
      const listed = (await getJson(`${sim.url}/v2/deployments`)).body;
      expect(listed).to.have.length(1);
      expect(listed[0]).to.include({ id: deploymentId, currentStep: 1, totalSteps: 1 });
      expect(listed[0].affectedApps).to.deep.equal(['/d']);
      app = (await getJson(`${sim.url}/v2/apps`)).body.apps[0];
      expect(app.deployments).to.deep.equal([{ id: deploymentId }]);
      sim.failDeployment(deploymentId, 'readiness timeout');
      expect(rec.types().slice(-2)).to.deep.equal(['deployment_step_failure', 'deployment_failed']);
      expect(rec.of('deployment_failed')[0]).to.include({ id: deploymentId, reason: 'readiness timeout' });
      expect((await getJson(`${sim.url}/v2/apps`)).body.apps[0].deployments).to.deep.equal([]);
    });

    it('rolls a restart: each replacement runs before its old task is killed', async () => {
      const sim = await h.sim();
      const { taskIds: olds } = sim.deployApp(
        { id: '/roll', instances: 2 },
        { tasks: [{ host: '127.0.0.1', ports: [6001] }, { host: '127.0.0.1', ports: [6002] }] },
      );
      const rec = record(sim);
      const runningAtKill: number[] = [];
      sim.onEvent((e) => {
        if (e.eventType === 'status_update_event' && JSON.parse(e.data).taskStatus === 'TASK_KILLING') {
          runningAtKill.push(sim.tasks('/roll').filter((t) => t.state === 'TASK_RUNNING').length);
        }
      });
      const killedSeen: string[] = [];
      const { deploymentId, done } = sim.rollingRestart('/roll', {
        stepDelayMs: 5,
        tasks: [{ host: '127.0.0.1', ports: [6003] }, { host: '127.0.0.1', ports: [6004] }],
        beforeKill: (old, fresh) => {
          killedSeen.push(`${old.ports[0]}->${fresh.ports[0]}`);
        },
      });
      expect((await getJson(`${sim.url}/v2/apps`)).body.apps[0].deployments).to.deep.equal([{ id: deploymentId }]);
      await done;
      expect(killedSeen).to.deep.equal(['6001->6003', '6002->6004']);
      expect(runningAtKill).to.deep.equal([2, 2]);
      expect(sim.tasks('/roll').map((t) => t.ports[0])).to.deep.equal([6003, 6004]);
      expect(sim.tasks('/roll').map((t) => t.id)).to.not.include.members(olds);
      expect(rec.types()[0]).to.equal('deployment_info');
      expect((rec.of('deployment_info')[0]!['currentStep'] as JsonObject)['actions']).to.deep.equal([{ action: 'RestartApplication', app: '/roll' }]);
      expect(rec.types().at(-1)).to.equal('deployment_success');
      expect((await getJson(`${sim.url}/v2/apps`)).body.apps[0].deployments).to.deep.equal([]);
    });
  });

  describe('HTTP API', () => {
    it('embeds tasks for every Marathon embed prefix and only when asked', async () => {
      const sim = await h.sim();
      sim.deployApp({ id: '/group/app', instances: 1 });
      for (const q of ['embed=apps.tasks', 'embed=app.tasks', 'embed=group.apps.tasks', 'embed=app.tasks&embed=app.deployments&embed=app.readiness']) {
        const app = (await getJson(`${sim.url}/v2/apps?${q}`)).body.apps[0];
        expect(app.tasks, q).to.have.length(1);
        expect(app.deployments, q).to.deep.equal([]);
      }
      for (const q of ['', 'embed=tasks', 'embed=apps.counts', 'embed=apps.deployments']) {
        expect((await getJson(`${sim.url}/v2/apps?${q}`)).body.apps[0], q).to.not.have.property('tasks');
      }
      expect((await getJson(`${sim.url}/v2/apps?id=GROUP`)).body.apps).to.have.length(1);
      expect((await getJson(`${sim.url}/v2/apps?id=other`)).body.apps).to.have.length(0);
      expect((await getJson(`${sim.url}/v2/apps//group/app`)).body.app.tasks).to.have.length(1);
      expect((await getJson(`${sim.url}/v2/apps/group/app/tasks`)).body.tasks[0].servicePorts).to.deep.equal([10000]);
    });

    it('answers with Marathon headers, /ping, /v2/info, /v2/leader and 404 messages', async () => {
      const sim = await h.sim({ version: '1.4.12' });
      const apps = await getJson(`${sim.url}/v2/apps`);
      expect(apps.headers.get('content-type')).to.equal('application/json');
      expect(apps.headers.get('cache-control')).to.equal('no-cache, no-store, must-revalidate');
      expect(apps.headers.get('pragma')).to.equal('no-cache');
      expect(apps.headers.get('expires')).to.equal('0');
      expect(apps.headers.get('transfer-encoding')).to.equal('chunked');
      const ping = await fetch(`${sim.url}/ping`);
      expect(await ping.text()).to.equal(readFixture('other/ping__real-marathon_vcr.txt'));
      expect(ping.headers.get('content-type')).to.match(/^text\/plain/);
      expect((await getJson(`${sim.url}/v2/info`)).body).to.include({ name: 'marathon', version: '1.4.12', elected: true, leader: sim.url.slice(7) });
      expect((await getJson(`${sim.url}/v2/leader`)).body).to.deep.equal({ leader: sim.url.slice(7) });
      const missing = await getJson(`${sim.url}/v2/apps/fooo%20app`);
      expect(missing.status).to.equal(404);
      expect(missing.body).to.deep.equal(JSON.parse(readFixture('other/error-404-app-not-found__real-marathon-0.8.1_vcr.json')));
      expect((await getJson(`${sim.url}/v2/nope`)).status).to.equal(404);
    });

    it('creates, scales, kills and deletes through the REST write endpoints', async () => {
      const sim = await h.sim();
      const rec = record(sim);
      const created = await send('POST', `${sim.url}/v2/apps`, { id: 'rest', instances: 1 });
      expect(created.status).to.equal(201);
      expect(created.body).to.include({ id: '/rest' });
      expect(created.body.deployments).to.have.length(1);
      expect(rec.of('api_post_event')[0]).to.include({ clientIp: '127.0.0.1', uri: '/v2/apps' });
      expect((await send('POST', `${sim.url}/v2/apps`, { id: '/rest' })).status).to.equal(409);
      const scaled = await send('PUT', `${sim.url}/v2/apps//rest`, { instances: 2 });
      expect(scaled.body).to.have.keys('version', 'deploymentId');
      expect(sim.tasks('/rest')).to.have.length(2);
      const victim = sim.tasks('/rest')[0]!.id;
      const killed = await send('DELETE', `${sim.url}/v2/apps/rest/tasks/${victim}?scale=true`);
      expect(killed.body).to.have.keys('version', 'deploymentId');
      expect(sim.tasks('/rest').map((t) => t.id)).to.not.include(victim);
      expect((await send('DELETE', `${sim.url}/v2/apps/rest`)).status).to.equal(200);
      expect(rec.types().at(-1)).to.equal('app_terminated_event');
    });

    it('counts requests per path prefix', async () => {
      const sim = await h.sim();
      await getJson(`${sim.url}/v2/apps?embed=apps.tasks`);
      await getJson(`${sim.url}/v2/apps`);
      await getJson(`${sim.url}/v2/info`);
      expect(sim.countRequests('/v2/apps')).to.equal(2);
      expect(sim.requests[0]).to.include({ method: 'GET', path: '/v2/apps', query: 'embed=apps.tasks' });
      expect(sim.requests[0]!.at).to.be.a('number');
    });
  });

  describe('event stream', () => {
    it('filters by repeated event_type parameters', async () => {
      const sim = await h.sim();
      const stream = await h.stream(sim, { query: 'event_type=status_update_event&event_type=app_terminated_event' });
      sim.deployApp({ id: '/f', instances: 1 });
      sim.destroyApp('/f');
      await stream.waitForEvents(4);
      expect(stream.events.map((e) => e.event)).to.deep.equal(['status_update_event', 'status_update_event', 'status_update_event', 'app_terminated_event']);
    });

    for (const [version, honoured] of [['1.6.322', true], ['1.5.0', false], ['1.7.0', true]] as const) {
      it(`${honoured ? 'honours' : 'ignores'} plan-format=light on ${version}: deployment events ${honoured ? 'without' : 'with'} original/target`, async () => {
        const sim = await h.sim({ version });
        const light = await h.stream(sim, { query: 'plan-format=light&event_type=deployment_info&event_type=deployment_success' });
        const full = await h.stream(sim, { query: 'event_type=deployment_info&event_type=deployment_success' });
        sim.deployApp({ id: '/p', instances: 1 });
        await light.waitForEvents(2);
        await full.waitForEvents(2);
        const plans = (c: SseClient) => c.events.map((e) => (JSON.parse(e.data) as { plan: JsonObject }).plan);
        const heavyByDefault = version !== '1.7.0';
        for (const p of plans(full)) expect(Object.keys(p).includes('original'), 'a stream without the parameter').to.equal(heavyByDefault);
        for (const p of plans(light)) expect(Object.keys(p).includes('original') || Object.keys(p).includes('target'), 'light stream').to.equal(!honoured);
        // Light is the same event minus the two groups: everything else is kept, in order.
        const strip = (p: JsonObject) => Object.fromEntries(Object.entries(p).filter(([k]) => k !== 'original' && k !== 'target'));
        expect(plans(light).map(strip)).to.deep.equal(plans(full).map(strip));
      });
    }

    it('sends a bare CRLF heartbeat every heartbeatMs, which parsers ignore', async () => {
      const sim = await h.sim({ heartbeatMs: 20 });
      const stream = await h.stream(sim);
      await stream.waitForEvents(1);
      const frame = stream.raw();
      await waitUntil(() => stream.raw().length >= frame.length + 6, 'three heartbeats');
      expect(stream.raw().slice(frame.length)).to.match(/^(\r\n)+$/);
      expect(stream.events).to.have.length(1);
    });

    it('uses data-only framing for 0.9/0.10 versions', async () => {
      const sim = await h.sim({ version: '0.9.2' });
      const stream = await h.stream(sim);
      await stream.waitForEvents(1);
      expect(stream.raw()).to.match(/^data: \{.*\}\r\n\r\n$/);
      expect(stream.events[0]!.event).to.equal(undefined);
    });

    it('refuses a request without Accept: text/event-stream, as Jetty does', async () => {
      const sim = await h.sim();
      const res = await fetch(`${sim.url}/v2/events`, { headers: { Accept: 'application/json' } });
      expect(res.status).to.equal(406);
      expect(await res.json()).to.have.property('message');
    });

    it('tells other listeners when a stream attaches and detaches', async () => {
      const sim = await h.sim();
      const first = await h.stream(sim);
      await first.waitForEvents(1);
      const second = await h.stream(sim);
      await first.waitForEvents(2);
      second.close();
      await first.waitForEvents(3);
      expect(first.events.map((e) => e.event)).to.deep.equal(['event_stream_attached', 'event_stream_attached', 'event_stream_detached']);
    });
  });

  describe('callback subscriptions', () => {
    it('subscribes, lists, delivers every event as JSON POSTs in order, and unsubscribes', async () => {
      const sim = await h.sim();
      const receiver = await h.receiver();
      const posted = await send('POST', `${sim.url}/v2/eventSubscriptions?callbackUrl=${encodeURIComponent(receiver.url)}`);
      expect(posted.status).to.equal(200);
      const real = JSON.parse(readFixture('subscriptions/post-v2-eventSubscriptions__real-marathon-0.8.1_vcr.json')) as JsonObject;
      expect(Object.keys(posted.body)).to.deep.equal(Object.keys(real));
      expect(posted.body).to.include({ callbackUrl: receiver.url, eventType: 'subscribe_event', clientIp: '127.0.0.1' });
      expect((await getJson(`${sim.url}/v2/eventSubscriptions`)).body).to.deep.equal({ callbackUrls: [receiver.url] });
      expect((await getJson(`${sim.url}/v2/info`)).body.event_subscriber).to.deep.equal({ type: 'http_callback', http_endpoints: [receiver.url] });
      const rec = record(sim);
      sim.deployApp({ id: '/cb', instances: 1 });
      const deployEvents = rec.events.map((e) => e.data);
      await receiver.waitFor(1 + deployEvents.length);
      expect(receiver.received.map((r) => r.body)).to.deep.equal([JSON.stringify(posted.body), ...deployEvents]);
      expect(receiver.received.every((r) => r.contentType === 'application/json')).to.equal(true);
      const deleted = await send('DELETE', `${sim.url}/v2/eventSubscriptions?callbackUrl=${encodeURIComponent(receiver.url)}`);
      expect(deleted.body).to.include({ eventType: 'unsubscribe_event', callbackUrl: receiver.url });
      await receiver.waitFor(2 + deployEvents.length); // its own unsubscribe_event
      const count = receiver.received.length;
      sim.destroyApp('/cb');
      const check = await h.receiver();
      await send('POST', `${sim.url}/v2/eventSubscriptions?callbackUrl=${encodeURIComponent(check.url)}`);
      await check.waitFor(1);
      expect(receiver.received).to.have.length(count);
    });

    it('keeps delivering to a live subscriber while another never answers', async () => {
      const sim = await h.sim({ callbackTimeoutMs: 200 });
      const dead = await h.receiver({ hang: true });
      const live = await h.receiver();
      for (const r of [dead, live]) await send('POST', `${sim.url}/v2/eventSubscriptions?callbackUrl=${encodeURIComponent(r.url)}`);
      sim.deployApp({ id: '/slow', instances: 3 });
      await live.waitFor(10);
      expect(dead.received.length).to.be.at.most(1);
      await waitUntil(() => sim.callbackStats.failed >= 1, 'the dead subscriber POST to time out');
    });

    it('answers 404 on /v2/eventSubscriptions when subscriptions are off, as Marathon 1.5+ does', async () => {
      const sim = await h.sim({ subscriptions: false });
      expect((await getJson(`${sim.url}/v2/eventSubscriptions`)).status).to.equal(404);
      expect((await send('POST', `${sim.url}/v2/eventSubscriptions?callbackUrl=http://127.0.0.1:1/x`)).status).to.equal(404);
      expect((await getJson(`${sim.url}/v2/info`)).body).to.not.have.property('event_subscriber');
    });
  });

  describe('auth', () => {
    const auth = { user: 'marathon', password: 's3cret' };
    const basic = (u: string, p: string): Record<string, string> => ({ Authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });

    it('requires basic auth everywhere but /ping', async () => {
      const sim = await h.sim({ auth });
      const none = await getJson(`${sim.url}/v2/apps`);
      expect(none.status).to.equal(401);
      expect(none.body).to.have.property('message').that.is.a('string');
      expect(none.headers.get('www-authenticate')).to.match(/^Basic /);
      expect((await getJson(`${sim.url}/v2/apps`, basic('marathon', 'wrong'))).status).to.equal(401);
      expect((await getJson(`${sim.url}/v2/apps`, basic('marathon', 's3cret'))).status).to.equal(200);
      expect((await fetch(`${sim.url}/ping`)).status).to.equal(200);
      expect((await h.stream(sim)).status).to.equal(401);
      const stream = await h.stream(sim, { headers: basic('marathon', 's3cret') });
      expect(stream.status).to.equal(200);
    });
  });

  describe('faults', () => {
    it('answers a configured status with a Marathon error body', async () => {
      const sim = await h.sim();
      sim.faults.status = 500;
      const res = await getJson(`${sim.url}/v2/apps`);
      expect(res.status).to.equal(500);
      expect(res.body).to.have.property('message').that.is.a('string');
      sim.faults.status = 401;
      expect((await getJson(`${sim.url}/v2/apps`)).status).to.equal(401);
      sim.faults.status = null;
      expect((await getJson(`${sim.url}/v2/apps`)).status).to.equal(200);
    });

    it('serves an HTML 502 page, truncated JSON, empty apps and slow answers on demand', async () => {
      const sim = await h.sim();
      sim.deployApp({ id: '/x', instances: 1 });
      sim.faults.htmlError = true;
      const html = await fetch(`${sim.url}/v2/apps`);
      expect(html.status).to.equal(502);
      expect(html.headers.get('content-type')).to.equal('text/html');
      expect(await html.text()).to.match(/^<html>/);
      sim.faults.htmlError = false;
      sim.faults.truncateJson = true;
      const cut = await fetch(`${sim.url}/v2/apps`);
      expect(cut.status).to.equal(200);
      const text = await cut.text();
      expect(() => JSON.parse(text)).to.throw();
      sim.faults.truncateJson = false;
      sim.faults.emptyApps = true;
      expect((await getJson(`${sim.url}/v2/apps?embed=apps.tasks`)).body).to.deep.equal({ apps: [] });
      sim.faults.emptyApps = false;
      sim.faults.latencyMs = 150;
      const t0 = Date.now();
      await getJson(`${sim.url}/v2/apps`);
      expect(Date.now() - t0).to.be.at.least(140);
    });

    it('stalls the stream (no events, no heartbeats) and resumes without the lost events', async () => {
      const sim = await h.sim({ heartbeatMs: 10 });
      const stream = await h.stream(sim);
      await stream.waitForEvents(1);
      sim.faults.stallStream = true;
      await new Promise((r) => setTimeout(r, 30)); // let an in-flight heartbeat land
      const frozen = stream.raw().length;
      sim.emit('lost_event', { eventType: 'lost_event' });
      await new Promise((r) => setTimeout(r, 80));
      expect(stream.raw().length).to.equal(frozen);
      let lateAnswered = false;
      const late = openEventStream(sim.url).then((s) => {
        lateAnswered = true;
        return s;
      });
      await new Promise((r) => setTimeout(r, 30));
      expect(lateAnswered, 'a new stream gets no headers while stalled').to.equal(false);
      sim.faults.stallStream = false;
      sim.emit('after_stall', { eventType: 'after_stall' });
      // The held stream attaches when the stall ends; its event_stream_attached reaches every stream.
      await stream.waitForEvents(3);
      expect(stream.events.map((e) => e.event)).to.deep.equal(['event_stream_attached', 'event_stream_attached', 'after_stall']);
      const lateStream = await late;
      await lateStream.waitForEvents(1);
      lateStream.close();
    });

    it('drops every stream on demand and accepts new ones', async () => {
      const sim = await h.sim();
      const stream = await h.stream(sim);
      await stream.waitForEvents(1);
      sim.faults.dropStream();
      await stream.waitForEnd();
      const again = await h.stream(sim);
      await again.waitForEvents(1);
      expect(again.events[0]!.event).to.equal('event_stream_attached');
    });
  });

  describe('lifecycle', () => {
    it('runs several instances at once, shares state for failover, and restarts on the same port', async () => {
      const a = await h.sim();
      const b = await h.sim({ shareStateWith: a });
      expect(a.url).to.not.equal(b.url);
      const streamB = await h.stream(b);
      await streamB.waitForEvents(1);
      a.deployApp({ id: '/ha', instances: 1 });
      expect((await getJson(`${b.url}/v2/apps`)).body.apps.map((x: JsonObject) => x['id'])).to.deep.equal(['/ha']);
      await streamB.waitForEvents(4);
      const url = a.url;
      await a.stop();
      await a.stop(); // idempotent
      expect((await getJson(`${b.url}/v2/apps`)).status).to.equal(200);
      await fetch(`${url}/ping`).then(
        () => expect.fail('stopped simulator still answers'),
        () => undefined,
      );
      expect(await a.start()).to.equal(url);
      expect((await getJson(`${url}/v2/apps`)).body.apps).to.have.length(1);
    });

    it('closes open event streams on stop', async () => {
      const sim = await h.sim();
      const stream = await h.stream(sim);
      await stream.waitForEvents(1);
      await sim.stop();
      await stream.waitForEnd();
    });
  });
});
