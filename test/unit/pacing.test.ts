/**
 * The pacing rules (common/pacing.ts), each stated once, on a fake clock: no real sleeps.
 */
import { expect } from 'chai';
import { Backoff, LatestWins, monotonicClock, RateWindow, Sleeper, type LatestWinsOptions } from '../../common/pacing.js';
import { FakeClock } from '../support/fake-clock.js';

/** A pacer whose runs the test ends by hand (`finish()`), recording when each started and what it covered. */
function pacer(over: Partial<LatestWinsOptions> = {}) {
  const clock = new FakeClock();
  const runs: Array<{ at: number; reasons: string[] }> = [];
  let release: (() => void) | null = null;
  let take: (() => string[]) | null = null;
  const p = new LatestWins({
    debounceMs: 0,
    minIntervalMs: 0,
    idleWhen: 'ended',
    debounceAfter: 'request',
    clock,
    run: (reasons, t) => {
      runs.push({ at: clock.now(), reasons });
      take = t;
      return new Promise<void>((r) => (release = r));
    },
    ...over,
  });
  const t0 = clock.now();
  return {
    p,
    clock,
    runs,
    /** Start times of the runs, relative to the start of the test. */
    starts: () => runs.map((r) => r.at - t0),
    async finish(): Promise<void> {
      const r = release;
      release = null;
      r?.();
      await clock.settle();
    },
    take: () => take!(),
  };
}

describe('pacing: latest wins, single flight, debounce, minimum interval (fake clock)', () => {
  it('starts a request that finds the pacer idle at once, whatever the debounce', async () => {
    const h = pacer({ debounceMs: 60_000, minIntervalMs: 60_000 });
    h.p.request('a');
    await h.clock.settle();
    expect(h.starts()).to.deep.equal([0]);
    expect(h.runs[0].reasons).to.deep.equal(['a']);
  });

  it('turns any number of requests during a run into exactly one more run that covers them all', async () => {
    const h = pacer();
    h.p.request('first');
    await h.clock.settle();
    for (let i = 0; i < 100; i++) h.p.request(`r${i % 3}`);
    expect(h.runs).to.have.length(1);
    await h.finish();
    expect(h.runs).to.have.length(2);
    expect(h.runs[1].reasons).to.deep.equal(['r0', 'r1', 'r2']);
    await h.finish();
    expect(h.p.busy).to.equal(false);
  });

  it('waits the debounce after the first request made during a run (debounceAfter: request)', async () => {
    const h = pacer({ debounceMs: 200 });
    h.p.request('first');
    await h.clock.advance(50);
    h.p.request('during');
    await h.clock.advance(500);
    await h.finish();
    // The run ended at 550, after the debounce (50 + 200) was over: the follow-up starts at once.
    expect(h.starts()).to.deep.equal([0, 550]);
  });

  it('waits the debounce after the end of the run a request arrived during (debounceAfter: end)', async () => {
    const h = pacer({ debounceMs: 200, debounceAfter: 'end' });
    h.p.request('first');
    await h.clock.advance(50);
    h.p.request('during');
    await h.clock.advance(500);
    await h.finish();
    await h.clock.advance(199);
    expect(h.runs).to.have.length(1);
    await h.clock.advance(1);
    expect(h.starts()).to.deep.equal([0, 750]);
  });

  it('keeps the minimum interval between the starts of two runs', async () => {
    const h = pacer({ minIntervalMs: 1000 });
    h.p.request('a');
    await h.clock.advance(10);
    await h.finish();
    h.p.request('b');
    await h.clock.advance(989);
    expect(h.runs).to.have.length(1);
    await h.clock.advance(1);
    expect(h.starts()).to.deep.equal([0, 1000]);
  });

  it('counts a request soon after a run ended as part of the burst (idleWhen: ended)', async () => {
    const h = pacer({ debounceMs: 300 });
    h.p.request('a');
    await h.clock.advance(10);
    await h.finish();
    await h.clock.advance(100);
    h.p.request('b');
    await h.clock.advance(299);
    expect(h.runs).to.have.length(1);
    await h.clock.advance(1);
    expect(h.starts()).to.deep.equal([0, 410]);
    await h.finish();
    // Quiet for the debounce: the next request is a leading edge again.
    await h.clock.advance(300);
    h.p.request('c');
    await h.clock.settle();
    expect(h.starts()).to.deep.equal([0, 410, 710]);
  });

  it('counts a request within the minimum interval of the last start as part of the burst (idleWhen: started)', async () => {
    const h = pacer({ debounceMs: 20, minIntervalMs: 250, idleWhen: 'started', debounceAfter: 'end' });
    h.p.request('a');
    await h.clock.advance(10);
    await h.finish();
    await h.clock.advance(100);
    h.p.request('b');
    // Due at the later of request + debounce (130) and last start + minimum interval (250).
    expect(h.p.dueAt! - h.runs[0].at).to.equal(250);
    await h.clock.advance(140);
    expect(h.starts()).to.deep.equal([0, 250]);
    await h.finish();
    await h.clock.advance(250);
    h.p.request('c');
    await h.clock.settle();
    expect(h.starts()).to.deep.equal([0, 250, 500]);
  });

  it('lets requests made before take() ride on the run, and runs again for any made after', async () => {
    const h = pacer();
    h.p.request('a');
    await h.clock.settle();
    h.p.request('before');
    expect(h.take()).to.deep.equal(['before']);
    expect(h.p.hasPending).to.equal(false);
    await h.finish();
    expect(h.runs).to.have.length(1);
    expect(h.p.busy).to.equal(false);

    h.p.request('b');
    await h.clock.settle();
    h.take();
    h.p.request('after');
    await h.finish();
    expect(h.runs.map((r) => r.reasons)).to.deep.equal([['a'], ['b'], ['after']]);
  });

  it('goes on after a run fails, and reports the error', async () => {
    const clock = new FakeClock();
    const errors: string[] = [];
    let runs = 0;
    const p = new LatestWins({
      debounceMs: 0, minIntervalMs: 0, idleWhen: 'ended', debounceAfter: 'request', clock,
      run: async () => {
        runs++;
        throw new Error('boom');
      },
      onError: (e) => errors.push(e.message),
    });
    p.request('a');
    await p.whenIdle();
    p.request('b');
    await p.whenIdle();
    expect(runs).to.equal(2);
    expect(errors).to.deep.equal(['boom', 'boom']);
  });

  it('drops pending requests on close and waits for the run in flight', async () => {
    const h = pacer({ minIntervalMs: 1000 });
    h.p.request('a');
    await h.clock.settle();
    h.p.request('b');
    let closed = false;
    const done = h.p.close().then(() => (closed = true));
    await h.clock.settle();
    expect(closed).to.equal(false);
    await h.finish();
    await done;
    await h.clock.advance(5000);
    expect(h.runs).to.have.length(1);
    h.p.request('c');
    await h.clock.advance(5000);
    expect(h.runs).to.have.length(1);
  });

  it('is not fooled by a wall-clock step: pacing never reads Date.now()', async () => {
    // The real clock, with Date.now() stepped back an hour between two runs 30 ms apart.
    const realNow = Date.now;
    let runs = 0;
    const p = new LatestWins({ debounceMs: 0, minIntervalMs: 30, idleWhen: 'ended', debounceAfter: 'request', clock: monotonicClock, run: async () => void runs++ });
    try {
      p.request('a');
      await p.whenIdle();
      Date.now = () => realNow() - 3_600_000;
      p.request('b');
      const t = performance.now();
      await p.whenIdle();
      expect(runs).to.equal(2);
      expect(performance.now() - t).to.be.lessThan(5000);
    } finally {
      Date.now = realNow;
      await p.close();
    }
  });
});

describe('pacing: backoff, rate window, sleeper', () => {
  it('doubles the backoff per consecutive failure up to the cap, and starts over after a success', () => {
    const b = new Backoff(500, 4000);
    expect([b.fail(), b.fail(), b.fail(), b.fail(), b.fail()]).to.deep.equal([500, 1000, 2000, 4000, 4000]);
    expect(b.failures).to.equal(5);
    b.reset();
    expect(b.fail()).to.equal(500);
  });

  it('allows at most max events in any window, and says when the next one may happen', async () => {
    const clock = new FakeClock();
    const w = new RateWindow(3, 60_000, clock);
    const t0 = clock.now();
    for (let i = 0; i < 3; i++) {
      expect(w.nextAt()).to.equal(-Infinity);
      w.note();
      await clock.advance(1000);
    }
    expect(w.nextAt() - t0).to.equal(60_000);
    await clock.advance(60_000 - 3000);
    expect(w.nextAt()).to.equal(-Infinity);
    expect(w.count()).to.equal(2);
    expect(new RateWindow(0, 60_000, clock).nextAt()).to.equal(-Infinity);
  });

  it('sleeps the full time unless woken', async () => {
    const clock = new FakeClock();
    const s = new Sleeper(clock);
    const full = s.sleep(1000);
    await clock.advance(1000);
    expect(await full).to.equal(true);
    const woken = s.sleep(1000);
    await clock.advance(10);
    s.wake();
    expect(await woken).to.equal(false);
    expect(clock.armed).to.equal(0);
  });
});
