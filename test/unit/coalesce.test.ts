import { expect } from 'chai';
import { CoalescedRunner } from '../../common/coalesce.js';

describe('CoalescedRunner', () => {
  function gate(): { wait: Promise<void>; open: () => void } {
    let open!: () => void;
    const wait = new Promise<void>((r) => (open = r));
    return { wait, open };
  }

  it('runs one pass at a time and exactly one more for any number of calls during a pass', async () => {
    const g = gate();
    let passes = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    const r = new CoalescedRunner(async () => {
      passes++;
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      if (passes === 1) await g.wait;
      concurrent--;
    }, () => undefined);
    const first = r.run();
    // During the pass (it starts on the next microtask: calls in the same tick ride on it).
    await new Promise((resolve) => setImmediate(resolve));
    expect(passes).to.equal(1);
    for (let i = 0; i < 10; i++) void r.run();
    g.open();
    await first;
    expect(passes).to.equal(2);
    expect(maxConcurrent).to.equal(1);
    await r.run();
    expect(passes).to.equal(3);
  });

  it('runs again when a pass asks for it, reports errors and keeps going, and stops when told', async () => {
    const errors: string[] = [];
    let stopped = false;
    let passes = 0;
    const r = new CoalescedRunner(
      async () => {
        passes++;
        if (passes === 1) r.again();
        if (passes === 2) throw new Error('boom');
      },
      (err) => errors.push(err.message),
      () => stopped,
    );
    await r.run();
    expect(passes).to.equal(2);
    expect(errors).to.deep.equal(['boom']);
    await r.run();
    expect(passes).to.equal(3);
    stopped = true;
    await r.run();
    expect(passes).to.equal(3);
    await r.settled();
  });
});
