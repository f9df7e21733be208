/**
 * The intake's fetch pacing alone, with in-memory stand-ins for Marathon, ZooKeeper and ZeroMQ whose
 * answers the test releases by hand: when a fetch starts, what rides on it, and the guarantee that
 * the last fetch is sent after the last routing event. (test/integration/api-intake.test.ts runs the same intake
 * against the simulator, real ZooKeeper and real ZeroMQ.)
 */
import { expect } from 'chai';
import { MarathonIntake } from '../../api/intake.js';
import type { AppsSource, HintSink, SnapshotReader, SnapshotWriter } from '../../api/intake-contracts.js';
import { loadConfig } from '../../common/config-load.js';
import { silentLogger } from '../../common/log.js';
import { nullMetrics } from '../../common/adapters/statsd/metrics.js';
import type { MarathonSnapshot } from '../../common/adapters/zookeeper/snapshot-format.js';
import type { Clock } from '../../common/pacing.js';
import { FakeClock } from '../support/fake-clock.js';
import { waitFor } from '../../harness/process.js';

/** A door calls pass through while open and wait at while closed. */
class Door {
  private waiting: Array<() => void> = [];
  closed = false;
  async pass(): Promise<void> {
    if (this.closed) await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  open(): void {
    this.closed = false;
    for (const w of this.waiting.splice(0)) w();
  }
}

/** Everything the intake did and saw, in order: `event` for a routing event, `fetch` for a request sent to Marathon. */
type Step = 'event' | 'fetch' | 'hint';

function harness(over: Record<string, number> = {}, clock?: Clock) {
  const steps: Step[] = [];
  const versionRead = new Door();
  const marathonAnswer = new Door();
  let inFlight = 0;
  let maxInFlight = 0;
  let stored = -1;
  let snap: MarathonSnapshot | null = null;
  let failing = false;

  const client: AppsSource = {
    endpoints: ['http://marathon.test'],
    async fetchApps() {
      steps.push('fetch');
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        await marathonAnswer.pass();
        if (failing) throw new Error('Marathon answered 500');
        // Different content each time, so every fetch stores a snapshot and publishes a hint.
        return { apps: [{ id: '/web', fetch: steps.filter((s) => s === 'fetch').length }], endpoint: 'marathon.test', ms: 1 };
      } finally {
        inFlight--;
      }
    },
    // Callback subscriptions and the event stream are not part of pacing: any use fails loudly.
    async subscriptions() {
      throw new Error('no subscriptions in the pacing harness');
    },
    async subscribe() {
      throw new Error('no subscriptions in the pacing harness');
    },
    async unsubscribe() {
      throw new Error('no subscriptions in the pacing harness');
    },
    async openEventStream() {
      throw new Error('no event stream in the pacing harness');
    },
  };
  const control: SnapshotWriter = {
    available: true,
    async snapshotVersion() {
      await versionRead.pass();
      return stored;
    },
    async writeSnapshot(_apps: unknown[], _at: number, opts: { expectVersion?: number }) {
      if (opts.expectVersion !== stored) throw new Error('unexpected conflict in the pacing harness');
      stored++;
      return { version: stored, changed: true, hash: `h${stored}` };
    },
    async pruneChunks() {},
  };
  const publisher: HintSink = {
    snapshotVersion: -1,
    async publish() {
      steps.push('hint');
    },
  };
  const snapshots: SnapshotReader = {
    get version() {
      return snap ? snap.version : -1;
    },
    current: () => snap,
    async refresh() {},
    setLocal(s: MarathonSnapshot) {
      snap = s;
    },
  };
  const cfg = loadConfig({
    env: {},
    overrides: { 'Marathon.ResyncIntervalMs': 0, 'Marathon.FetchDebounceMs': 0, 'Marathon.MinFetchIntervalMs': 0, ...over },
  });
  const intake = new MarathonIntake({
    cfg,
    client,
    control,
    publisher,
    snapshots,
    metrics: nullMetrics,
    log: silentLogger(),
    options: { retryMinMs: 50, retryMaxMs: 100, clock },
  });
  return {
    intake,
    steps,
    versionRead,
    marathonAnswer,
    event(type = 'status_update_event') {
      steps.push('event');
      intake.onEvent(type);
    },
    /** While true, every fetch fails as a Marathon error would. */
    failing(on: boolean) {
      failing = on;
    },
    fetches: () => steps.filter((s) => s === 'fetch').length,
    maxInFlight: () => maxInFlight,
    /** True when a fetch was sent after the last routing event. */
    lastFetchAfterLastEvent: () => steps.lastIndexOf('fetch') > steps.lastIndexOf('event'),
  };
}

describe('Marathon intake: fetch pacing (in-memory stand-ins)', function () {
  this.timeout(10000);
  const intakes: MarathonIntake[] = [];
  afterEach(async () => {
    await Promise.all(intakes.splice(0).map((i) => i.close()));
  });
  function track<T extends { intake: MarathonIntake }>(h: T): T {
    intakes.push(h.intake);
    return h;
  }

  it('starts a fetch at once for a routing event after a quiet spell, whatever the debounce', async () => {
    // With the debounce at its maximum, a fetch that waited for it would not end within the test timeout.
    const h = track(harness({ 'Marathon.FetchDebounceMs': 60000, 'Marathon.MinFetchIntervalMs': 60000 }));
    h.event();
    expect(h.intake.status().inFlight).to.equal(true);
    await h.intake.idle();
    expect(h.steps).to.deep.equal(['event', 'fetch', 'hint']);
  });

  it('does not fetch for events that cannot change routing', async () => {
    const h = track(harness());
    h.intake.onEvent('event_stream_detached');
    h.intake.onEvent('framework_message_event');
    await h.intake.idle();
    expect(h.fetches()).to.equal(0);
    expect(h.intake.status().eventsTotal).to.equal(2);
  });

  it('turns events during a fetch into exactly one more fetch, sent after the last of them', async () => {
    const h = track(harness());
    h.marathonAnswer.closed = true;
    h.event();
    await waitFor(() => h.fetches() === 1, 'first fetch sent', 5000, 1);
    for (let i = 0; i < 100; i++) h.event();
    h.marathonAnswer.open();
    await h.intake.idle();
    expect(h.fetches()).to.equal(2);
    expect(h.maxInFlight()).to.equal(1);
    expect(h.lastFetchAfterLastEvent()).to.equal(true);
    expect(h.steps.at(-1)).to.equal('hint');
  });

  it('lets events that arrive before the request is sent ride on that fetch', async () => {
    const h = track(harness());
    h.versionRead.closed = true;
    h.event();
    for (let i = 0; i < 50; i++) h.event();
    expect(h.fetches()).to.equal(0);
    h.versionRead.open();
    await h.intake.idle();
    expect(h.steps.filter((s) => s !== 'event')).to.deep.equal(['fetch', 'hint']);
    expect(h.lastFetchAfterLastEvent()).to.equal(true);
  });

  it('holds a request made soon after a fetch started until the minimum interval passed, then fetches once', async () => {
    const clock = new FakeClock();
    const h = track(harness({ 'Marathon.MinFetchIntervalMs': 1500 }, clock));
    h.event();
    await h.intake.idle();
    await clock.advance(100);
    for (let i = 0; i < 20; i++) h.event();
    // Not fetched at once: the first fetch started less than 1.5 s ago.
    expect(h.intake.status()).to.include({ inFlight: false, pending: true });
    await clock.advance(1399);
    expect(h.fetches()).to.equal(1);
    await clock.advance(1);
    await h.intake.idle();
    expect(h.fetches()).to.equal(2);
    expect(h.lastFetchAfterLastEvent()).to.equal(true);
  });

  it('keeps fetching on time when the wall clock steps back an hour (pacing is monotonic)', async () => {
    const clock = new FakeClock();
    const realNow = Date.now;
    const h = track(harness({ 'Marathon.MinFetchIntervalMs': 250, 'Marathon.FetchDebounceMs': 20 }, clock));
    try {
      h.event();
      await h.intake.idle();
      Date.now = () => realNow() - 3_600_000;
      h.event();
      await clock.advance(250);
      await h.intake.idle();
      expect(h.fetches()).to.equal(2);
    } finally {
      Date.now = realNow;
    }
  });

  it('keeps one fetch in flight and ends with a fetch after the last event, through a long uneven burst', async () => {
    const h = track(harness({ 'Marathon.MinFetchIntervalMs': 5, 'Marathon.FetchDebounceMs': 2 }));
    // Marathon answers after a varying number of events; events come in clumps, with pauses.
    for (let clump = 0; clump < 30; clump++) {
      h.marathonAnswer.closed = clump % 3 === 0;
      for (let i = 0; i < (clump * 7) % 11; i++) h.event();
      await new Promise((r) => setTimeout(r, clump % 4));
      h.marathonAnswer.open();
    }
    h.event();
    await h.intake.idle();
    expect(h.maxInFlight()).to.equal(1);
    expect(h.lastFetchAfterLastEvent()).to.equal(true);
    expect(h.steps.at(-1)).to.equal('hint');
  });

  it('drops a pending retry once a later fetch succeeds', async () => {
    const clock = new FakeClock();
    const h = track(harness({}, clock)); // retries after 50 ms, doubling to 100 ms
    h.event();
    await h.intake.idle();
    h.failing(true);
    h.event();
    await h.intake.idle();
    expect(h.intake.status().failures, 'a failed fetch').to.equal(1);
    expect(clock.armed, 'the retry armed').to.equal(1);
    h.failing(false);
    h.event();
    await h.intake.idle();
    const healed = h.fetches();
    expect(h.steps.at(-1), 'the healing fetch stored and hinted').to.equal('hint');
    // Far past any retry delay: a retry left armed would have fetched again by now.
    await clock.advance(60_000);
    await h.intake.idle();
    expect(h.fetches() - healed, 'fetches after the healing one').to.equal(0);
    expect(clock.armed).to.equal(0);
  });
});

// Which fetch a request makes (the named apps or the whole list), with stand-ins that store what they
// are given, so the per-app path (which needs the content this copy stored) is open.
describe('Marathon intake: per-app or whole-list fetches (in-memory stand-ins)', function () {
  this.timeout(10000);
  const intakes: MarathonIntake[] = [];
  afterEach(async () => {
    await Promise.all(intakes.splice(0).map((i) => i.close()));
  });

  function perApp(over: Record<string, number> = {}) {
    const list = ['/a', '/b', '/c'].map((id) => ({ id, tasks: 1 }));
    const calls = { list: 0, apps: [] as string[] };
    const answer = new Door();
    let stored = -1;
    const client: AppsSource = {
      endpoints: ['http://marathon.test'],
      async fetchApps() {
        calls.list++;
        await answer.pass();
        return { apps: list.map((a) => ({ ...a })), texts: list.map((a) => JSON.stringify(a)), endpoint: 'marathon.test', ms: 1 };
      },
      async fetchApp(id: string) {
        calls.apps.push(id);
        await answer.pass();
        const app = list.find((a) => a.id === id);
        return app ? { found: true as const, app: { ...app }, text: JSON.stringify(app), endpoint: 'marathon.test' } : { found: false as const, endpoint: 'marathon.test' };
      },
      async subscriptions() { throw new Error('unused'); },
      async subscribe() { throw new Error('unused'); },
      async unsubscribe() { throw new Error('unused'); },
      async openEventStream() { throw new Error('unused'); },
    };
    const control: SnapshotWriter = {
      available: true,
      async snapshotVersion() { return stored; },
      async writeSnapshot(apps: unknown[], _at: number, opts: { expectVersion?: number; texts?: readonly string[] }) {
        if (opts.expectVersion !== stored) throw new Error('unexpected conflict');
        stored++;
        const parts = opts.texts ? [...opts.texts] : apps.map((a) => JSON.stringify(a));
        return { version: stored, changed: true, hash: `h${stored}`, serialised: { ids: apps.map((a) => (a as { id: string }).id), parts } };
      },
      async pruneChunks() {},
    };
    let snap: MarathonSnapshot | null = null;
    const snapshots: SnapshotReader = {
      get version() { return snap ? snap.version : -1; },
      current: () => snap,
      async refresh() {},
      setLocal(s: MarathonSnapshot) { snap = s; },
    };
    const cfg = loadConfig({ env: {}, overrides: { 'Marathon.ResyncIntervalMs': 0, 'Marathon.FetchDebounceMs': 0, 'Marathon.MinFetchIntervalMs': 0, ...over } });
    const intake = new MarathonIntake({ cfg, client, control, publisher: { snapshotVersion: -1, async publish() {} }, snapshots, metrics: nullMetrics, log: silentLogger(), options: { retryMinMs: 50, retryMaxMs: 100 } });
    intakes.push(intake);
    return { intake, calls, answer, list, snap: () => snap };
  }

  it('fetches the whole list first, then only the apps events name, merged into what it stored', async () => {
    const h = perApp();
    h.intake.requestFetch('startup');
    await h.intake.idle();
    expect(h.calls).to.deep.equal({ list: 1, apps: [] });
    h.list[1].tasks = 2;
    h.intake.onEvent('status_update_event', ['/b']);
    await h.intake.idle();
    expect(h.calls).to.deep.equal({ list: 1, apps: ['/b'] });
    expect(h.snap()!.apps).to.deep.equal(h.list);
    // An event naming no app reads the whole list again.
    h.intake.onEvent('event_stream_attached');
    await h.intake.idle();
    expect(h.calls.list).to.equal(2);
  });

  it('keeps no names once a burst names more apps than Marathon.PerAppFetchMax: one whole-list fetch, whatever the number', async () => {
    const h = perApp({ 'Marathon.PerAppFetchMax': 3 });
    h.intake.requestFetch('startup');
    await h.intake.idle();
    h.answer.closed = true;
    h.intake.onEvent('status_update_event', ['/a']);
    await waitFor(() => h.calls.apps.length === 1, 'the first event fetched alone', 5000, 1);
    // Apps come and go by the thousand while that fetch is out.
    for (let i = 0; i < 10000; i++) h.intake.onEvent('status_update_event', [`/gone-${i}`]);
    h.answer.open();
    await h.intake.idle();
    expect(h.calls.apps, 'no fetch of any of those apps').to.deep.equal(['/a']);
    expect(h.calls.list).to.equal(2);
  });

  it('takes a 404 for an app it stored as a reason to read the whole list, never as a removal', async () => {
    const h = perApp();
    h.intake.requestFetch('startup');
    await h.intake.idle();
    const gone = h.list.splice(2, 1);
    h.intake.onEvent('app_terminated_event', [gone[0].id]);
    await h.intake.idle();
    expect(h.calls.apps).to.deep.equal(['/c']);
    expect(h.calls.list, 'confirmed by the whole list').to.equal(2);
    expect(h.snap()!.apps).to.deep.equal(h.list);
  });
});
