/**
 * Snapshot deltas (common/core/snapshot-delta.ts): what the api puts on a `marathon` hint so a worker holding
 * the previous snapshot needs no ZooKeeper read. Pure functions; the round trip is checked on random
 * changes, and the worker's use of a delta on real ZooKeeper is in test/integration/snapshot-store.test.ts.
 */
import { expect } from 'chai';
import { applyDelta, appsArrayParts, diffApps, parseAppsText, serialiseApps, DELTA_MAX_APPS } from '../../common/core/snapshot-delta.js';
import { marathonApp } from '../worker-fixtures.js';

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

  it('gives no delta when the new order alone would make the hint big (it lists every app)', () => {
    const prev = apps(3000, '/a-rather-long-group-name/and-a-long-app-name');
    const next = [prev[2999], ...prev.slice(0, 2999)]; // one app moved first: only an order can say it
    expect(diffApps(serialiseApps(prev), serialiseApps(next), next)).to.equal(null);
    const small = apps(10);
    const moved = [small[9], ...small.slice(0, 9)];
    expect(diffApps(serialiseApps(small), serialiseApps(moved), moved)!.order).to.have.length(10);
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

  describe("parsing Marathon's answer app by app", () => {
    /** Strings that read as structure to a careless scanner. */
    const tricky = ['a]b', 'x,y', '{"apps":[1]}', 'q"uote', 'back\\', 'back\\\\', '\\"', '\u00e9\u2028', '', ' ', ':', '\\u0022'];

    function randomValue(random: () => number, depth: number): unknown {
      const r = random();
      if (depth > 3 || r < 0.3) return tricky[Math.floor(random() * tricky.length)];
      if (r < 0.4) return Math.floor(random() * 1e6) / 100;
      if (r < 0.45) return null;
      if (r < 0.5) return random() < 0.5;
      if (r < 0.75) return Array.from({ length: Math.floor(random() * 4) }, () => randomValue(random, depth + 1));
      const o: Record<string, unknown> = {};
      for (let k = 0; k < 1 + Math.floor(random() * 4); k++) o[`${tricky[Math.floor(random() * tricky.length)]}${k}`] = randomValue(random, depth + 1);
      return o;
    }

    it('cuts exactly the apps JSON.parse finds, whatever the strings, spacing and other keys', () => {
      const random = rng(7);
      for (let round = 0; round < 300; round++) {
        const list = Array.from({ length: Math.floor(random() * 6) }, (_, i) =>
          random() < 0.9 ? { id: `/a${i}`, v: randomValue(random, 0), apps: [randomValue(random, 1)] } : randomValue(random, 0),
        );
        const body: Record<string, unknown> = {};
        if (random() < 0.5) body['before'] = { apps: [1, 2], x: randomValue(random, 1) };
        body['apps'] = list;
        if (random() < 0.5) body['after'] = [randomValue(random, 1), { apps: 'no' }];
        const text = JSON.stringify(body, null, [0, 1, 2, '\t'][round % 4] as number | string);
        const r = parseAppsText(random() < 0.5 ? text : `\r\n ${text}\n`)!;
        expect(r, text).to.not.equal(null);
        expect(r.apps, text).to.deep.equal(JSON.parse(text).apps);
        expect(r.texts.map((t) => JSON.parse(t)), text).to.deep.equal(list.map((a) => JSON.parse(JSON.stringify(a))));
      }
    });

    it('keeps the last "apps" key, as JSON.parse does', () => {
      expect(parseAppsText('{"apps":[1],"x":{},"apps":[2,3]}')!.apps).to.deep.equal([2, 3]);
      expect(parseAppsText('{"apps":[1],"apps":{"a":[4]}}')).to.equal(null);
      expect(parseAppsText('{"apps":[]}')!.apps).to.deep.equal([]);
      expect(parseAppsText('{"apps":[ ]}')!.apps).to.deep.equal([]);
    });

    it('declines what it cannot cut, so the caller parses the whole text and reports its error', () => {
      const text = JSON.stringify({ apps: [{ id: '/a', cmd: 'sleep "1]"' }, { id: '/b' }] });
      // Every truncation (a fault Marathon's proxies produce) is declined or fails to parse.
      for (let k = 1; k < text.length; k++) {
        let r: unknown;
        try {
          r = parseAppsText(text.slice(0, k));
        } catch (err) {
          expect(err).to.be.instanceOf(SyntaxError);
          continue;
        }
        expect(r, text.slice(0, k)).to.equal(null);
      }
      expect(parseAppsText(`${text} x`)).to.equal(null);
      expect(parseAppsText(`${text}}`)).to.equal(null);
      expect(parseAppsText(`[${text}]`)).to.equal(null);
      expect(parseAppsText('{"\\u0061pps":[1]}')).to.equal(null);
      expect(parseAppsText('{"other":[1]}')).to.equal(null);
      expect(() => parseAppsText('{"apps":[{"id":"/a"} x]}')).to.throw(SyntaxError);
      expect(() => parseAppsText('{"apps":[1,]}')).to.throw(SyntaxError);
      expect(() => parseAppsText('{"apps":[\u00a0{"id":"/a"}]}')).to.throw(SyntaxError);
      expect(appsArrayParts('{"apps":[ {"id":"/a"} ,\n2 ]}')).to.deep.equal(['{"id":"/a"}', '2']);
    });

    it('reuses the previous objects of unchanged apps and parses only the changed ones', () => {
      const before = apps(4);
      const first = parseAppsText(JSON.stringify({ apps: before }))!;
      const after = [before[0], { ...before[1], instances: 9 }, before[3]];
      const second = parseAppsText(JSON.stringify({ apps: after }), first)!;
      expect(second.apps).to.deep.equal(after);
      expect(second.apps[0]).to.equal(first.apps[0]);
      expect(second.apps[2]).to.equal(first.apps[3]);
      expect(second.apps[1]).to.not.equal(first.apps[1]);
      // The texts serialise into the snapshot as they are.
      const s = serialiseApps(second.apps, second.texts);
      expect(s.parts).to.deep.equal(second.texts);
      expect(JSON.parse(s.json)).to.deep.equal(after);
      expect(s.ids).to.deep.equal(['/app-0', '/app-1', '/app-3']);
    });
  });
});
