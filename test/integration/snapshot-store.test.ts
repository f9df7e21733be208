/**
 * The Marathon snapshot in real ZooKeeper (common/adapters/zookeeper/snapshot.ts ControlStore): what the intake relies on
 * when it stores a snapshot, publishes its hint and only then removes old chunks.
 * (test/integration/adapters.test.ts covers snapshots larger than one node.)
 */
import { expect } from 'chai';
import { createLogger, silentLogger } from '../../common/log.js';
import { ControlStore } from '../../common/adapters/zookeeper/snapshot.js';
import type { SnapshotDelta } from '../../common/core/snapshot-delta.js';
import { RuleStore } from '../../common/adapters/zookeeper/rules.js';
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
