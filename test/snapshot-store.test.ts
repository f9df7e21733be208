/**
 * The Marathon snapshot in real ZooKeeper (common/snapshot.ts ControlStore): what the intake relies on
 * when it stores a snapshot, publishes its hint and only then removes old chunks.
 * (test/adapters.test.ts covers snapshots larger than one node.)
 */
import { expect } from 'chai';
import { createLogger, silentLogger } from '../common/log.js';
import { ControlStore } from '../common/snapshot.js';
import { Zk } from '../common/zk.js';
import { sharedZooKeeper, uniquePath } from './support/zookeeper.js';

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
});
