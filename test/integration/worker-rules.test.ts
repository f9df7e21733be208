import { expect } from 'chai';
import { RuleStore } from '../../common/adapters/zookeeper/rules.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { RuleMirror } from '../../common/adapters/zookeeper/rules-mirror.js';
import { waitFor } from '../../harness/process.js';
import { sharedZooKeeper, uniquePath } from '../../harness/zookeeper.js';
import { testLogger } from '../worker-fixtures.js';

describe('rule mirror of the api and the worker (list and watch, real ZooKeeper)', function () {
  this.timeout(30000);
  const log = testLogger('rules');
  const open: Zk[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((z) => z.close()));
  });

  async function connect(): Promise<Zk> {
    const zk = new Zk({ connectionString: (await sharedZooKeeper()).connectionString, sessionTimeoutMs: 4000, log });
    expect(await zk.start(10000)).to.equal(true);
    open.push(zk);
    return zk;
  }

  const acls = (m: Map<string, { record: { Acl: string } }>) => Object.fromEntries([...m].map(([id, r]) => [id, r.record.Acl]));

  /** `n` rules `/app<i>` written by one session; a second session to read them. */
  async function seeded(n: number): Promise<{ path: string; writer: RuleStore; reader: Zk }> {
    const path = uniquePath('/rules');
    const writer = new RuleStore(await connect(), path);
    await writer.ensureBase();
    for (let i = 0; i < n; i++) await writer.put({ Id: `/app${i}`, Acl: `path_beg /v0-${i}`, Config: {} });
    return { path, writer, reader: await connect() };
  }

  it('re-reads only the rules that changed, and always returns all of them', async () => {
    const { path, writer, reader } = await seeded(20);
    let changes = 0;
    const cache = new RuleMirror(reader, new RuleStore(reader, path), 60000, log, () => changes++);

    const all = await cache.read();
    expect(all.size).to.equal(20);
    expect([...all.keys()].slice(0, 3)).to.deep.equal(['/app0', '/app1', '/app10']);
    expect(cache.listings).to.equal(1);
    expect(cache.ruleReads).to.equal(20);
    expect(await cache.read()).to.equal(all);
    expect(cache.ruleReads).to.equal(20);

    await writer.put({ Id: '/app3', Acl: 'path_beg /changed', Config: {} });
    const after = await cache.read();
    expect(acls(after)['/app3']).to.equal('path_beg /changed');
    expect(after.size).to.equal(20);
    expect(cache.ruleReads).to.equal(21);
    expect(cache.listings).to.equal(1);
    expect(changes).to.be.at.least(1);

    await writer.put({ Id: '/new', Acl: 'path_beg /new', Config: {} });
    await writer.delete('/app0');
    const third = await cache.read();
    expect(third.has('/new')).to.equal(true);
    expect(third.has('/app0')).to.equal(false);
    expect(third.size).to.equal(20);
    expect(cache.listings).to.equal(1);
    expect(acls(third)).to.deep.equal(acls(await new RuleStore(reader, path).list()));
  });

  it('never answers a read with records older than a write that completed before the read was called, however reads overlap', async () => {
    const { path, writer, reader } = await seeded(5);
    // The api's use: many requests read at once, and another api copy writes in between.
    const cache = new RuleMirror(reader, new RuleStore(reader, path), 60000, log);
    await cache.read();
    for (let round = 1; round <= 5; round++) {
      await writer.put({ Id: '/app2', Acl: `path_beg /round-${round}`, Config: {} });
      const overlapping = await Promise.all(Array.from({ length: 4 }, () => cache.read()));
      for (const seen of overlapping) {
        expect(acls(seen)['/app2'], `round ${round}`).to.equal(`path_beg /round-${round}`);
        expect(seen.size).to.equal(5);
      }
    }
    // A local write then a read: the read shows it (read-your-writes).
    const own = new RuleStore(reader, path);
    await own.put({ Id: '/mine', Acl: 'path_beg /mine', Config: {} });
    cache.invalidate();
    const [a, b] = await Promise.all([cache.read(), cache.read()]);
    expect(acls(a)['/mine']).to.equal('path_beg /mine');
    expect(acls(b)['/mine']).to.equal('path_beg /mine');
  });

  it('notices a rule edited by hand without touching the parent, through its watch', async () => {
    const path = uniquePath('/rules');
    const writerZk = await connect();
    const writer = new RuleStore(writerZk, path);
    await writer.ensureBase();
    await writer.put({ Id: '/hand', Acl: 'path_beg /before', Config: {} });
    const reader = await connect();
    let changes = 0;
    const cache = new RuleMirror(reader, new RuleStore(reader, path), 60000, log, () => changes++);
    await cache.read();
    await writerZk.set(writer.nodePath('/hand'), Buffer.from('path_beg /by-hand'));
    await waitFor(() => changes > 0, 'the watch to fire');
    expect(acls(await cache.read())['/hand']).to.equal('path_beg /by-hand');
  });

  it('sees a record created or deleted without touching the parent (as Bamboo and zkCli write), through a children watch', async () => {
    const path = uniquePath('/rules');
    const writerZk = await connect();
    const writer = new RuleStore(writerZk, path);
    await writer.ensureBase();
    await writer.put({ Id: '/old', Acl: 'path_beg /old', Config: {} });
    const reader = await connect();
    let changes = 0;
    // A re-list interval far beyond the test: only the watch can bring the new record in.
    const cache = new RuleMirror(reader, new RuleStore(reader, path), 600000, log, () => changes++);
    expect([...(await cache.read()).keys()]).to.deep.equal(['/old']);
    // Bamboo (Go) creates a V2 record as a plain child create; the parent's data stays as it was.
    await writerZk.create(writer.nodePath('/bamboo-made'), Buffer.from(JSON.stringify({ version: '2', config: { Acl: 'path_beg /b' } })));
    await waitFor(() => changes > 0, 'the children watch to fire on a create');
    expect(acls(await cache.read())).to.deep.equal({ '/bamboo-made': 'path_beg /b', '/old': 'path_beg /old' });
    const before = changes;
    await writerZk.remove(writer.nodePath('/old'));
    await waitFor(() => changes > before, 'the watches to fire on a delete');
    expect(Object.keys(acls(await cache.read()))).to.deep.equal(['/bamboo-made']);
    expect(cache.listings).to.equal(1);
  });

  it('lists everything again after the re-list interval', async () => {
    const path = uniquePath('/rules');
    const writer = new RuleStore(await connect(), path);
    await writer.ensureBase();
    await writer.put({ Id: '/a', Acl: 'path_beg /a', Config: {} });
    const reader = await connect();
    const cache = new RuleMirror(reader, new RuleStore(reader, path), 50, log);
    await cache.read();
    await new Promise((r) => setTimeout(r, 80));
    await cache.read();
    expect(cache.listings).to.equal(2);
    expect((await cache.read()).size).to.equal(1);
  });
});
