/**
 * The Marathon snapshot in real ZooKeeper (common/adapters/zookeeper/snapshot.ts ControlStore): what the intake relies on
 * when it stores a snapshot, publishes its hint and only then removes old chunks.
 * (test/integration/adapters.test.ts covers snapshots larger than one node.)
 */
import { expect } from 'chai';
import { createLogger, silentLogger } from '../../common/log.js';
import type { SnapshotDelta } from '../../common/core/snapshot-delta.js';
import { RuleStore } from '../../common/adapters/zookeeper/rules.js';
import { ControlStore } from '../../common/adapters/zookeeper/snapshot.js';
import { SnapshotLoader } from '../../common/adapters/zookeeper/snapshot-read.js';
import { ZkDesiredState } from '../../worker/desired.js';
import { marathonApp } from '../worker-fixtures.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { sharedZooKeeper, uniquePath } from '../../harness/zookeeper.js';

const apps = (n: number) => Array.from({ length: n }, (_, i) => marathonApp(`/app-${i}`, [{ port: 31000 + i }]));

const log = process.env.TEST_LOG ? createLogger({ level: 'debug' }) : silentLogger();

describe('Marathon snapshot store (real ZooKeeper)', function () {
  this.timeout(30000);
  let zk: Zk;
  before(async () => {
    zk = new Zk({ connectionString: (await sharedZooKeeper()).connectionString, sessionTimeoutMs: 4000, log });
    expect(await zk.start(10000)).to.equal(true);
  });
  after(async () => {
    await zk.close();
  });

  const snapshotsStored = async (store: ControlStore) => new Set((await zk.children(store.chunksPath)).map((n) => n.replace(/-\d+$/, ''))).size;

  it('stores the first snapshot under a control path that does not exist yet', async () => {
    const store = new ControlStore(zk, `${uniquePath('/ctl')}/deeper/still`);
    const w = await store.writeSnapshot([{ id: '/a' }], 1, { expectVersion: -1 });
    expect(w).to.deep.include({ changed: true, version: 0 });
    expect((await store.readSnapshot())!.apps).to.deep.equal([{ id: '/a' }]);
  });

  it('leaves old chunks to the caller when asked, and then keeps the current and one previous snapshot', async () => {
    const store = new ControlStore(zk, uniquePath('/ctl'));
    let version = -1;
    let hash = '';
    for (let i = 0; i < 4; i++) {
      ({ version, hash } = await store.writeSnapshot([{ id: `/app-${i}` }], i, { expectVersion: version, prune: false }));
    }
    expect(await snapshotsStored(store)).to.equal(4);
    expect((await store.readSnapshot())!.apps).to.deep.equal([{ id: '/app-3' }]);
    await store.pruneChunks(hash);
    expect(await snapshotsStored(store)).to.equal(2);
    expect((await store.readSnapshot())!).to.deep.include({ version, hash, apps: [{ id: '/app-3' }] });
  });

  it('prunes on its own by default', async () => {
    const store = new ControlStore(zk, uniquePath('/ctl'));
    for (let i = 0; i < 4; i++) await store.writeSnapshot([{ id: `/app-${i}` }], i);
    expect(await snapshotsStored(store)).to.equal(2);
  });

  it('gives a reader that read before the unchanged apps as the same objects, parsing only the changed ones', async () => {
    const store = new ControlStore(zk, uniquePath('/ctl'));
    const source = new ZkDesiredState(zk, store, new RuleStore(zk, uniquePath('/rules')));
    // Stored from Marathon's own texts (as the api does; spaced, to tell them from re-serialised ones).
    const asMarathon = (list: unknown[]) => list.map((a) => JSON.stringify(a, null, 1));
    const w0 = await store.writeSnapshot(apps(50), 1, { expectVersion: -1, texts: asMarathon(apps(50)) });
    const first = await source.read();
    // One app changed and one gone, and no hint.
    const next = apps(50).slice(1);
    next[6] = marathonApp('/app-7', [{ port: 1 }]);
    const texts = asMarathon(next);
    await store.writeSnapshot(next, 2, { expectVersion: w0.version, texts });
    const second = await source.read();
    expect(source.snapshotReads).to.equal(2);
    expect(second.apps).to.deep.equal(next);
    expect(second.apps[0]).to.equal(first.apps[1]);
    expect(second.apps[48]).to.equal(first.apps[49]);
    expect(second.apps[6]).to.not.equal(first.apps[7]);
    // A reader with nothing before parses everything, to the same apps.
    const fresh = (await store.readSnapshot())!;
    expect(fresh.apps).to.deep.equal(next);
    expect(fresh.texts).to.deep.equal(texts);
  });

  /** Stores `next` after `prev` (stored by this writer) as the intake does; returns the write and the hint's delta. */
  const storeWithDelta = async (store: ControlStore, prev: Awaited<ReturnType<ControlStore['writeSnapshot']>>, next: unknown[], fetchedAt: number) => {
    const deltaFrom = { version: prev.version, hash: prev.hash, ids: prev.serialised.ids, parts: prev.serialised.parts };
    const w = await store.writeSnapshot(next, fetchedAt, { expectVersion: prev.version, deltaFrom });
    expect(w.delta, 'the writer said a delta').to.not.equal(undefined);
    // What travels: the hint is JSON.
    const delta = JSON.parse(JSON.stringify({ ...w.delta!, version: w.version, hash: w.hash, fetchedAt })) as SnapshotDelta;
    return { w, delta };
  };

  it("lets a worker take a hint's delta instead of reading the snapshot, once ZooKeeper confirms it", async () => {
    const store = new ControlStore(zk, uniquePath('/ctl'));
    const source = new ZkDesiredState(zk, store, new RuleStore(zk, uniquePath('/rules')));
    const v0apps = apps(50);
    const w0 = await store.writeSnapshot(v0apps, 1, { expectVersion: -1 });
    const first = await source.read();
    expect(source.snapshotReads).to.equal(1);

    // The api's side: the next snapshot, and the delta its hint carries.
    const v1apps = first.apps.slice();
    v1apps[7] = marathonApp('/app-7', [{ port: 1 }]);
    v1apps.push(marathonApp('/app-new', [{ port: 2 }]));
    const { w: w1, delta } = await storeWithDelta(store, w0, v1apps, 2);
    expect(delta.upsert).to.have.length(2);

    expect(source.offerDelta(delta)).to.equal(true);
    const second = await source.read();
    expect(source.snapshotReads, 'no snapshot read').to.equal(1);
    expect(source.deltasApplied).to.equal(1);
    expect(second.snapshotVersion).to.equal(w1.version);
    expect(second.apps).to.deep.equal((await store.readSnapshot())!.apps);
    expect(second.apps[0]).to.equal(first.apps[0]); // the same object: the memo sees it unchanged
    expect(source.offerDelta(delta), 'already applied').to.equal(false);

    // A snapshot written without a hint (or a lost one) is read from ZooKeeper as before.
    const w2 = await store.writeSnapshot(v1apps.slice(1), 3, { expectVersion: w1.version });
    expect((await source.read()).snapshotVersion).to.equal(w2.version);
    expect(source.snapshotReads).to.equal(2);
  });

  it('keeps a delta that outran its ZooKeeper write until the pointer shows it (a lagging follower), then applies it', async () => {
    const store = new ControlStore(zk, uniquePath('/ctl'));
    const source = new ZkDesiredState(zk, store, new RuleStore(zk, uniquePath('/rules')));
    const w0 = await store.writeSnapshot(apps(20), 1, { expectVersion: -1 });
    await source.read();
    // The same writes elsewhere give the very delta the api will store next (diffs are deterministic):
    // the hint that reaches the worker before its ZooKeeper server has the write.
    const elsewhere = new ControlStore(zk, uniquePath('/ctl'));
    const { delta } = await storeWithDelta(elsewhere, await elsewhere.writeSnapshot(apps(20), 1, { expectVersion: -1 }), apps(21), 2);
    expect(source.offerDelta(delta)).to.equal(true);
    expect((await source.read()).snapshotVersion, 'not applied ahead of ZooKeeper').to.equal(w0.version);
    expect(source.deltasApplied + source.deltasIgnored, 'still pending').to.equal(0);
    // The server catches up: the pending delta is confirmed and applied, without reading the snapshot.
    const { w: w1 } = await storeWithDelta(store, w0, apps(21), 2);
    const d = await source.read();
    expect(d.snapshotVersion).to.equal(w1.version);
    expect(d.apps).to.deep.equal(apps(21));
    expect(source.deltasApplied).to.equal(1);
    expect(source.snapshotReads).to.equal(1);
  });

  describe('segments: a change writes and reads in proportion to what changed', () => {
    /** The segment nodes and their bytes under the store's chunks path. */
    const nodes = async (store: ControlStore) => {
      const names = await zk.children(store.chunksPath);
      const out = new Map<string, number>();
      for (const n of names) out.set(n, (await zk.get(`${store.chunksPath}/${n}`))!.data.length);
      return out;
    };
    /** A Zk whose get calls on the chunks path are counted (what a reader read). */
    const counting = (store: ControlStore) => {
      const seen = { gets: 0 };
      const proxy = new Proxy(zk, {
        get(target, key) {
          const v = Reflect.get(target, key, target) as unknown;
          if (key === 'get') {
            return (path: string, w?: () => void) => {
              if (path.startsWith(`${store.chunksPath}/`)) seen.gets++;
              return target.get(path, w);
            };
          }
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      return { zk: proxy, seen };
    };

    it('writes only the segment holding the one app of 1,000 that changed, and a reader reads only that one', async () => {
      const path = uniquePath('/ctl');
      const store = new ControlStore(zk, path);
      const v0 = apps(1000);
      const w0 = await store.writeSnapshot(v0, 1, { expectVersion: -1 });
      const before = await nodes(store);
      expect(before.size, 'many segments').to.be.greaterThan(5);
      const reader = counting(store);
      const worker = new ZkDesiredState(reader.zk, new ControlStore(reader.zk, path), new RuleStore(zk, uniquePath('/rules')));
      expect((await worker.read()).apps).to.deep.equal(v0);
      const fullRead = reader.seen.gets;
      expect(fullRead).to.equal(before.size);

      const v1 = v0.slice();
      v1[500] = marathonApp('/app-500', [{ port: 31500 }, { port: 32500 }]);
      const w1 = await store.writeSnapshot(v1, 2, { expectVersion: w0.version });
      expect(w1.changed).to.equal(true);
      const after = await nodes(store);
      const created = [...after.keys()].filter((n) => !before.has(n));
      expect(created, 'one new segment node').to.have.length(1);
      const total = [...before.values()].reduce((a, b) => a + b, 0);
      expect(after.get(created[0])!, 'a small part of the whole').to.be.lessThan(total / 5);

      // A full read (no hint) fetches that segment alone, and gives exactly what is stored.
      const read = await worker.read();
      expect(reader.seen.gets - fullRead, 'segments read again').to.equal(1);
      expect(read.apps).to.deep.equal(v1);
      expect(read.apps[499]).to.equal((await worker.read()).apps[499]);
      // An unchanged app of the changed segment keeps its object (parsed from the segment it left).
      const fresh = (await new ControlStore(zk, path).readSnapshot())!;
      expect(fresh).to.deep.include({ version: w1.version, hash: w1.hash });
      expect(fresh.apps).to.deep.equal(v1);
    });

    it('gives equal contents the same hash whoever cut them, and a different one for any change', async () => {
      const a = new ControlStore(zk, uniquePath('/ctl'));
      const b = new ControlStore(zk, uniquePath('/ctl'));
      const wa = await a.writeSnapshot(apps(300), 1);
      await b.writeSnapshot(apps(10), 1);
      const wb = await b.writeSnapshot(apps(300), 2);
      expect(wb.hash).to.equal(wa.hash);
      expect(ControlStore.hashApps(apps(300)).hash).to.equal(wa.hash);
      const other = apps(300);
      other[299] = marathonApp('/app-299', [{ port: 1 }]);
      expect(ControlStore.hashApps(other).hash).to.not.equal(wa.hash);
      expect(ControlStore.hashApps([...apps(300)].reverse()).hash, 'order counts').to.not.equal(wa.hash);
    });

    it('keeps memos and stored segments as large as one snapshot while apps come and go', async () => {
      const path = uniquePath('/ctl');
      const store = new ControlStore(zk, path);
      const loader = new SnapshotLoader(new ControlStore(zk, path));
      let version = -1;
      let replaced = 0;
      for (let round = 0; round < 12; round++) {
        // 200 apps, a quarter of them new every round.
        const list = Array.from({ length: 200 }, (_, i) => marathonApp(`/app-${round * 50 + i}`, [{ port: 31000 + i }]));
        ({ version } = await store.writeSnapshot(list, round, { expectVersion: version }));
        const snap = (await loader.read())!;
        expect(snap.apps).to.deep.equal(list);
        const pointer = JSON.parse((await zk.get(store.snapshotPath))!.data.toString()) as { segments: string[] };
        expect(loader.heldSegments, `round ${round}: segments held by the reader`).to.equal(new Set(pointer.segments).size);
        // What ZooKeeper keeps: the current snapshot's segments and those of the one it replaced.
        expect((await zk.children(store.chunksPath)).length, `round ${round}: segment nodes`).to.be.at.most(pointer.segments.length + replaced);
        replaced = pointer.segments.length;
      }
    });

    it("never prunes a segment created after the pointer it read (another copy's write in progress)", async () => {
      const store = new ControlStore(zk, uniquePath('/ctl'));
      const w0 = await store.writeSnapshot(apps(5), 1, { expectVersion: -1 });
      const pending = `${store.chunksPath}/s-${'e'.repeat(32)}-0`;
      await zk.create(pending, Buffer.from('x'));
      await store.pruneChunks(w0.hash);
      expect(await zk.exists(pending), 'younger than the pointer: kept').to.not.equal(null);
      // Once a later pointer is stored without it, it is an orphan: removed.
      await store.writeSnapshot(apps(6), 2);
      expect(await zk.exists(pending)).to.equal(null);
    });
  });

  describe('forged hints (an attacker who can publish to the worker)', () => {
    let store: ControlStore;
    let source: ZkDesiredState;
    let w0: Awaited<ReturnType<ControlStore['writeSnapshot']>>;
    const attackerApp = marathonApp('/app-3', [{ host: '203.0.113.66', port: 6666 }]);
    const routed = (list: readonly unknown[]) => JSON.stringify(list).includes('203.0.113.66');

    beforeEach(async () => {
      store = new ControlStore(zk, uniquePath('/ctl'));
      source = new ZkDesiredState(zk, store, new RuleStore(zk, uniquePath('/rules')));
      w0 = await store.writeSnapshot(apps(10), 1, { expectVersion: -1 });
      await source.read();
    });

    it('never applies a delta announcing a version ZooKeeper does not hold, however often it is sent', async () => {
      for (let i = 1; i <= 20; i++) {
        const forged = { base: w0.version, baseHash: w0.hash, version: w0.version + i, hash: 'f'.repeat(64), fetchedAt: 1, upsert: [attackerApp], remove: [] };
        source.offerDelta(forged);
        const d = await source.read();
        expect(routed(d.apps), `hint ${i}`).to.equal(false);
        expect(d.snapshotVersion).to.equal(w0.version);
      }
      expect(source.deltasApplied).to.equal(0);
      expect(source.snapshotReads, 'no full read either').to.equal(1);
    });

    it('rejects a delta naming the real new version and hash (sniffed from the real hint) with other apps', async () => {
      const { w: w1, delta } = await storeWithDelta(store, w0, apps(11), 2);
      // Same version, hash and base as the real one; the attacker's task instead.
      source.offerDelta({ ...delta, upsert: [...delta.upsert, attackerApp] });
      const d = await source.read();
      expect(routed(d.apps)).to.equal(false);
      expect(d.snapshotVersion).to.equal(w1.version);
      expect(d.apps).to.deep.equal(apps(11));
      expect(source.deltasIgnored).to.equal(1);
      expect(source.snapshotReads, 'read from ZooKeeper instead').to.equal(2);
      // The same with the delta's own digest field rewritten, or an order that drops an app.
      const { w: w2, delta: d2 } = await storeWithDelta(store, w1, apps(12), 3);
      source.offerDelta({ ...d2, remove: ['/app-0'] });
      const after = await source.read();
      expect(after.snapshotVersion).to.equal(w2.version);
      expect(after.apps).to.deep.equal(apps(12));
    });

    it('rejects a real delta replayed onto content it was not made from', async () => {
      const { delta } = await storeWithDelta(store, w0, apps(11), 2);
      // ZooKeeper moves on without the worker reading; then the old hint is replayed with new numbers.
      const w2 = await store.writeSnapshot([attackerApp], 3);
      const stale = { ...delta, base: w2.version, version: w2.version + 1 };
      source.offerDelta(stale);
      const d = await source.read();
      expect(d.snapshotVersion).to.equal(w2.version);
      expect(d.apps).to.deep.equal([attackerApp]); // what ZooKeeper holds, nothing else
      const w3 = await store.writeSnapshot(apps(3), 4);
      expect(w3.version).to.equal(stale.version);
      const e = await source.read();
      expect(e.apps).to.deep.equal(apps(3));
      expect(source.deltasApplied).to.equal(0);
    });
  });
});
