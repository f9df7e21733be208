/**
 * Snapshot deltas (common/snapshot-delta.ts): what the api puts on a `marathon` hint so a worker holding
 * the previous snapshot needs no ZooKeeper read. Pure functions; the round trip is checked on random
 * changes, and the worker's use of a delta on real ZooKeeper is in test/snapshot-store.test.ts.
 */
import { expect } from 'chai';
import { applyDelta, diffApps, serialiseApps, DELTA_MAX_APPS } from '../common/snapshot-delta.js';
import { marathonApp } from './worker-fixtures.js';

/** A small seeded PRNG, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function apps(n: number, prefix = '/app'): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => marathonApp(`${prefix}-${i}`, [{ port: 31000 + i }, { port: 32000 + i }]));
}

describe('snapshot deltas', () => {
  it('serialises app by app into exactly the JSON of the whole array', () => {
    const list: unknown[] = [...apps(3), { id: 7 }, null, 'x', undefined];
    const s = serialiseApps(list);
    expect(s.json).to.equal(JSON.stringify(list));
    expect(s.ids).to.deep.equal(['/app-0', '/app-1', '/app-2', null, null, null, null]);
  });

  it('turns the previous apps into the next ones on random changes, keeping the unchanged apps as the same objects', () => {
    const random = rng(42);
    let prev: unknown[] = apps(30);
    let added = 0;
    for (let round = 0; round < 300; round++) {
      const next = prev.map((a) => a);
      const changes = 1 + Math.floor(random() * 4);
      for (let c = 0; c < changes; c++) {
        const r = random();
        const i = Math.floor(random() * next.length);
        if (r < 0.4 && next.length > 0) {
          // a task changed: a new object, as a fresh fetch would give
          const app = structuredClone(next[i]) as { tasks: Array<{ ports: number[] }> };
          app.tasks[0].ports = [40000 + round];
          next[i] = app;
        } else if (r < 0.6 && next.length > 1) {
          next.splice(i, 1);
        } else if (r < 0.8) {
          next.splice(i, 0, marathonApp(`/new-${added++}`, [{ port: 33000 + round }]));
        } else if (next.length > 1) {
          const j = Math.floor(random() * next.length);
          [next[i], next[j]] = [next[j], next[i]];
        }
      }
      const d = diffApps(serialiseApps(prev), serialiseApps(next), next);
      expect(d, `round ${round}`).to.not.equal(null);
      const applied = applyDelta(prev, d!);
      expect(applied, `round ${round}`).to.deep.equal(next);
      expect(JSON.stringify(applied)).to.equal(JSON.stringify(next));
      // Unchanged apps are the previous objects, which the template-data memo recognises by identity.
      const before = new Set(prev);
      for (const a of applied!) if (!d!.upsert.includes(a)) expect(before.has(a)).to.equal(true);
      prev = next;
    }
  });

  it('carries only what changed: one app of a thousand, and no order when the order is implied', () => {
    const prev = apps(1000);
    const next = prev.slice();
    next[500] = marathonApp('/app-500', [{ port: 1 }]);
    const d = diffApps(serialiseApps(prev), serialiseApps(next), next)!;
    expect(d.upsert).to.deep.equal([next[500]]);
    expect(d.remove).to.deep.equal([]);
    expect(d).to.not.have.property('order');
    expect(JSON.stringify(d).length).to.be.lessThan(2000);
  });

  it('gives no delta when apps cannot be told apart by id, or when too much changed', () => {
    const prev = apps(3);
    const noId = [...prev, { cmd: 'no id' }];
    expect(diffApps(serialiseApps(prev), serialiseApps(noId), noId)).to.equal(null);
    const dup = [...prev, prev[0]];
    expect(diffApps(serialiseApps(prev), serialiseApps(dup), dup)).to.equal(null);
    const many = apps(DELTA_MAX_APPS + 1, '/other');
    expect(diffApps(serialiseApps(prev), serialiseApps(many), many)).to.equal(null);
    const big = [marathonApp('/app-0', [{ port: 1 }], { env: { BLOB: 'x'.repeat(2000) } })];
    expect(diffApps(serialiseApps(prev), serialiseApps(big), big, { maxBytes: 1000 })).to.equal(null);
  });

  it('refuses a delta that does not fit the apps it is given', () => {
    const prev = apps(3);
    expect(applyDelta(prev, { upsert: [], remove: [], order: ['/app-0', '/app-1', '/nope'] })).to.equal(null);
    expect(applyDelta(prev, { upsert: [], remove: [], order: ['/app-0', '/app-0', '/app-1'] })).to.equal(null);
    expect(applyDelta(prev, { upsert: [{ cmd: 'no id' }], remove: [] })).to.equal(null);
    expect(applyDelta([...prev, { cmd: 'no id' }], { upsert: [], remove: [] })).to.equal(null);
    expect(applyDelta(prev, { upsert: 'x' as never, remove: [] })).to.equal(null);
  });
});
