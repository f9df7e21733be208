/**
 * The Marathon snapshot in real ZooKeeper (common/snapshot.ts ControlStore): what the intake relies on
 * when it stores a snapshot, publishes its hint and only then removes old chunks.
 * (test/adapters.test.ts covers snapshots larger than one node.)
 */
import { expect } from 'chai';
import { createLogger, silentLogger } from '../common/log.js';
import { ControlStore } from '../common/snapshot.js';
import { diffApps } from '../common/snapshot-delta.js';
import { RuleStore } from '../common/rules.js';
import { ZkDesiredState } from '../worker/desired.js';
import { marathonApp } from './worker-fixtures.js';
import { Zk } from '../common/zk.js';
import { sharedZooKeeper, uniquePath } from '../harness/zookeeper.js';

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

  it("lets a worker take a hint's delta instead of reading the snapshot, only from the snapshot it holds", async () => {
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
    const w1 = await store.writeSnapshot(v1apps, 2, { expectVersion: w0.version });
    const d = diffApps(w0.serialised, w1.serialised, v1apps)!;
    const delta = { base: w0.version, version: w1.version, hash: w1.hash, fetchedAt: 2, ...d };
    expect(d.upsert).to.have.length(2);

    // A delta from another snapshot than the one held is refused.
    expect(source.offerDelta({ ...delta, base: w0.version - 1 })).to.equal(false);
    expect(source.offerDelta(delta)).to.equal(true);
    const second = await source.read();
    expect(source.snapshotReads, 'no snapshot read').to.equal(1);
    expect(second.snapshotVersion).to.equal(w1.version);
    expect(second.apps).to.deep.equal((await store.readSnapshot())!.apps);
    expect(second.apps[0]).to.equal(first.apps[0]); // the same object: the memo sees it unchanged
    expect(source.offerDelta(delta), 'already applied').to.equal(false);

    // A snapshot written without a hint (or a lost one) is read from ZooKeeper as before.
    const w2 = await store.writeSnapshot(v1apps.slice(1), 3, { expectVersion: w1.version });
    expect((await source.read()).snapshotVersion).to.equal(w2.version);
    expect(source.snapshotReads).to.equal(2);

    // A delta newer than what this session's ZooKeeper server shows (it lags) is trusted for one read.
    const ahead = { ...delta, base: w2.version, version: w2.version + 1, upsert: [], remove: ['/app-1'] };
    expect(source.offerDelta(ahead)).to.equal(true);
    const third = await source.read();
    expect(third.snapshotVersion).to.equal(w2.version + 1);
    expect(third.apps.map((a) => (a as { id: string }).id)).to.not.include('/app-1');
    expect((await source.read()).snapshotVersion, 'then ZooKeeper again').to.equal(w2.version);
    expect(source.snapshotReads).to.equal(3);
  });
});
