import { expect } from 'chai';
import { createLogger, silentLogger } from '../../common/log.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { queryEscape, queryUnescape } from '../../common/adapters/zookeeper/zk-paths.js';
import { ZkBadVersionError, ZkNoNodeError, ZkUnavailableError } from '../../common/adapters/zookeeper/zk-errors.js';
import { RuleStore, RuleConflictError, RuleNotFoundError, parseRecord } from '../../common/adapters/zookeeper/rules.js';
import { ControlStore } from '../../common/adapters/zookeeper/snapshot.js';
import { HintPublisher, HintSubscriber, type HintEvent } from '../../common/adapters/zeromq/bus.js';
import { expireThrough, partition, sharedZooKeeper, uniquePath, startZooKeeper, waitForServing } from '../../harness/zookeeper.js';
import { waitFor, sleep } from '../../harness/process.js';
import { freePort } from '../../harness/ports.js';
import { Writable } from 'node:stream';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

const log = process.env.TEST_LOG ? createLogger({ level: 'debug' }) : silentLogger();

async function connect(connectionString: string, extra: Partial<ConstructorParameters<typeof Zk>[0]> = {}): Promise<Zk> {
  const zk = new Zk({ connectionString, sessionTimeoutMs: 4000, log, ...extra });
  expect(await zk.start(10000)).to.equal(true);
  return zk;
}

describe('ZooKeeper adapter and stores (real ZooKeeper)', function () {
  this.timeout(90000);
  let conn: string;
  const open: Zk[] = [];
  before(async () => {
    conn = (await sharedZooKeeper()).connectionString;
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((z) => z.close()));
  });

  it('escapes app ids exactly like Go url.QueryEscape', () => {
    expect(queryEscape('/ExampleAppGroup/app1')).to.equal('%2FExampleAppGroup%2Fapp1');
    expect(queryEscape('/a b/ü~x')).to.equal('%2Fa+b%2F%C3%BC~x');
    expect(queryUnescape('%2Fa+b%2F%C3%BC~x')).to.equal('/a b/ü~x');
    expect(() => queryUnescape('%zz')).to.throw();
  });

  it('reads Bamboo V1 and V2 records written by the original', async () => {
    const zk = await connect(conn);
    open.push(zk);
    const base = uniquePath('/rules');
    await zk.mkdirp(base);
    await zk.create(`${base}/%2Fv1app`, Buffer.from('hdr(host) -i v1.example.com'));
    await zk.create(`${base}/%2Fgroup%2Fv2app`, Buffer.from('{"version":"2","config":{"Acl":"path_beg -i /v2","Weight":"3"}}'));
    const store = new RuleStore(zk, base);
    const all = await store.list();
    expect([...all.keys()]).to.deep.equal(['/group/v2app', '/v1app']);
    expect(all.get('/v1app')!.record).to.deep.equal({ Id: '/v1app', Acl: 'hdr(host) -i v1.example.com', Config: { Acl: 'hdr(host) -i v1.example.com' } });
    expect(all.get('/v1app')!.format).to.equal(1);
    expect(all.get('/group/v2app')!.record).to.deep.equal({ Id: '/group/v2app', Acl: 'path_beg -i /v2', Config: { Acl: 'path_beg -i /v2', Weight: '3' } });
    expect(parseRecord('/x', Buffer.from('{"version":"3"}')).format).to.equal(1);
  });

  it('writes V2 records under escaped names and detects a stale version', async () => {
    const zk = await connect(conn);
    open.push(zk);
    const store = new RuleStore(zk, uniquePath('/rules'));
    const created = await store.create({ Id: '/ExampleAppGroup/app1', Acl: 'hdr(host) -i a', Config: {} });
    expect(created.version).to.equal(0);
    const raw = await zk.get(`${store.basePath}/%2FExampleAppGroup%2Fapp1`);
    expect(JSON.parse(raw!.data.toString())).to.deep.equal({ version: '2', config: { Acl: 'hdr(host) -i a' } });
    try {
      await store.create({ Id: '/ExampleAppGroup/app1', Acl: 'x', Config: {} });
      expect.fail('create of an existing rule must conflict');
    } catch (err) {
      expect(err).to.be.instanceOf(RuleConflictError);
    }
    const { stored } = await store.put({ Id: '/ExampleAppGroup/app1', Acl: 'hdr(host) -i b', Config: { Extra: '1' } }, 0);
    expect(stored.version).to.equal(1);
    try {
      await store.put({ Id: '/ExampleAppGroup/app1', Acl: 'hdr(host) -i c', Config: {} }, 0);
      expect.fail('stale version must conflict');
    } catch (err) {
      expect(err).to.be.instanceOf(RuleConflictError);
      expect((err as RuleConflictError).current!.record.Acl).to.equal('hdr(host) -i b');
    }
    await store.delete('/ExampleAppGroup/app1', 1);
    try {
      await store.delete('/ExampleAppGroup/app1');
      expect.fail('deleting a missing rule must fail');
    } catch (err) {
      expect(err).to.be.instanceOf(RuleNotFoundError);
    }
  });

  it('creates a new rule without a condition in one ZooKeeper request, and still replaces an existing one', async () => {
    const zk = await connect(conn);
    open.push(zk);
    const calls: string[] = [];
    // The store's ZooKeeper, every request it makes named.
    const counted = new Proxy(zk, {
      get(target, key) {
        const v = Reflect.get(target, key, target) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (['get', 'exists', 'children', 'create', 'set', 'multi', 'remove'].includes(String(key))) calls.push(String(key));
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const store = new RuleStore(counted, uniquePath('/rules'));
    await store.put({ Id: '/warm', Acl: 'path_beg -i /warm', Config: {} });
    calls.length = 0;
    const first = await store.put({ Id: '/web', Acl: 'path_beg -i /web', Config: {} });
    expect(first).to.deep.include({ created: true });
    expect(calls, 'one transaction: the rule and its parent').to.deep.equal(['multi']);
    const second = await store.put({ Id: '/web', Acl: 'path_beg -i /web2', Config: {} });
    expect(second.created).to.equal(false);
    expect(second.stored.version).to.equal(1);
    expect((await store.get('/web'))!.record.Acl).to.equal('path_beg -i /web2');
  });

  it('applies a multi-op write all or nothing, and names the op that failed', async () => {
    const zk = await connect(conn);
    open.push(zk);
    const base = uniquePath('/multi');
    await zk.mkdirp(base);
    const versions = await zk.multi([
      { op: 'create', path: `${base}/a`, data: Buffer.from('1') },
      { op: 'set', path: base, data: Buffer.from('touched') },
    ]);
    expect(versions).to.deep.equal([0, 1]);
    // The second op fails: the first (a create) must not have happened.
    try {
      await zk.multi([
        { op: 'create', path: `${base}/b`, data: Buffer.from('2') },
        { op: 'set', path: `${base}/a`, data: Buffer.from('x'), version: 7 },
      ]);
      expect.fail('a stale version must fail the transaction');
    } catch (err) {
      expect(err).to.be.instanceOf(ZkBadVersionError);
      expect((err as Error).message).to.contain(`${base}/a`);
    }
    expect(await zk.get(`${base}/b`)).to.equal(null);
    expect((await zk.get(`${base}/a`))!.data.toString()).to.equal('1');
    // Version 0 is a real condition (the library would read it as "any"): /multi/a is at version 0,
    // the parent at 1, so a set of the parent conditional on 0 must fail and leave a alone.
    try {
      await zk.multi([{ op: 'remove', path: `${base}/a`, version: 0 }, { op: 'set', path: base, data: Buffer.alloc(0), version: 0 }]);
      expect.fail('version 0 of a node at version 1 must fail');
    } catch (err) {
      expect(err).to.be.instanceOf(ZkBadVersionError);
      expect((err as Error).message, 'the failing op is the parent set').to.equal(`bad version ${base}`);
    }
    expect(await zk.get(`${base}/a`)).to.not.equal(null);
    await zk.multi([{ op: 'set', path: `${base}/a`, data: Buffer.from('3'), version: 0 }]);
    try {
      await zk.multi([{ op: 'remove', path: `${base}/a`, version: 0 }]);
      expect.fail('remove at version 0 of a node at version 1 must fail');
    } catch (err) {
      expect(err).to.be.instanceOf(ZkBadVersionError);
    }
    try {
      await zk.multi([{ op: 'remove', path: `${base}/missing` }, { op: 'set', path: base, data: Buffer.alloc(0) }]);
      expect.fail('removing a missing node must fail');
    } catch (err) {
      expect(err).to.be.instanceOf(ZkNoNodeError);
    }
    expect((await zk.get(base))!.data.toString(), 'the parent was not touched by the failed transaction').to.equal('touched');
  });

  it('writes a rule and touches its parent in one transaction, so parent watchers see every change', async () => {
    const zk = await connect(conn);
    open.push(zk);
    const store = new RuleStore(zk, uniquePath('/rules'));
    await store.create({ Id: '/app', Acl: 'path_beg -i /a', Config: {} });
    const after = (n: number) => zk.get(store.basePath).then((node) => expect(node!.stat.version).to.equal(n));
    await after(1);
    await store.put({ Id: '/app', Acl: 'path_beg -i /b', Config: {} });
    await after(2);
    await store.delete('/app');
    await after(3);
    // A failed conditional write touches nothing.
    await store.create({ Id: '/app', Acl: 'path_beg -i /c', Config: {} });
    await after(4);
    try {
      await store.put({ Id: '/app', Acl: 'x', Config: {} }, 5);
      expect.fail('stale version');
    } catch (err) {
      expect(err).to.be.instanceOf(RuleConflictError);
    }
    await after(4);
    // The base path removed behind our back is created again.
    await zk.remove(`${store.basePath}/${queryEscape('/app')}`);
    await zk.remove(store.basePath);
    expect((await store.create({ Id: '/again', Acl: 'path_beg -i /again', Config: {} })).version).to.equal(0);
    expect([...(await store.list()).keys()]).to.deep.equal(['/again']);
  });

  it('loses no update when two clients write the same rule concurrently without versions', async () => {
    const [a, b] = [await connect(conn), await connect(conn)];
    open.push(a, b);
    const base = uniquePath('/rules');
    const sa = new RuleStore(a, base);
    const sb = new RuleStore(b, base);
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? sa : sb).put({ Id: `/app${i % 3}`, Acl: `path_beg -i /v${i}`, Config: {} })));
    const all = await sa.list();
    expect(all.size).to.equal(3);
    const versions = [...all.values()].reduce((n, r) => n + r.version + 1, 0);
    expect(versions).to.equal(20);
  });

  it('stores a snapshot larger than ZooKeeper\'s node limit and reads it back', async () => {
    const zk = await connect(conn);
    open.push(zk);
    const store = new ControlStore(zk, uniquePath('/ctl'));
    // Random-ish content so gzip cannot shrink it below one chunk.
    const apps = Array.from({ length: 3000 }, (_, i) => ({ id: `/app-${i}`, env: { K: randomBytes(300).toString('hex') } }));
    const w = await store.writeSnapshot(apps, 1);
    expect(w.changed).to.equal(true);
    const again = await store.writeSnapshot(apps, 2);
    expect(again).to.deep.include({ changed: false, version: w.version });
    const r = await store.readSnapshot();
    expect(r!.apps).to.deep.equal(apps);
    expect((await zk.children(store.chunksPath)).length).to.be.greaterThan(1);
    const w2 = await store.writeSnapshot([{ id: '/only' }], 3);
    expect(w2.version).to.be.greaterThan(w.version);
    expect((await store.readSnapshot())!.apps).to.deep.equal([{ id: '/only' }]);
  });

  it('recreates ephemeral registrations after the session expires', async () => {
    // A partition longer than the session timeout: the server expires the session, and the client
    // learns it when it reconnects (see `partition` for why not freeze the server instead).
    const cutOff = await partition(conn);
    const zk = await connect(cutOff.connectionString, { sessionTimeoutMs: 2000 });
    const observer = await connect(conn);
    open.push(zk, observer);
    try {
      const path = `${uniquePath('/ctl')}/workers/w1`;
      let n = 0;
      await zk.ephemeral(path, () => Buffer.from(JSON.stringify({ n: ++n })));
      expect(await zk.exists(path)).to.not.equal(null);
      await expireThrough(cutOff, zk, async () => (await observer.exists(path)) === null);
      // Recreated means written again by the new session: the data callback ran a second time.
      const recreated = async () => {
        const node = await observer.get(path).catch(() => null);
        return node !== null && JSON.parse(node.data.toString()).n > 1;
      };
      await waitFor(recreated, 'ephemeral to be recreated by the new session', 15000);
    } finally {
      await cutOff.close();
    }
  });

  it('fails fast while ZooKeeper is down and recovers by itself when it returns', async () => {
    const own = await startZooKeeper();
    try {
      const zk = await connect(own.connectionString);
      open.push(zk);
      await zk.create('/alive', Buffer.from('1'));
      await own.nodes[0].stop('SIGKILL');
      await waitFor(() => !zk.connected, 'disconnect to be noticed', 15000);
      const t0 = Date.now();
      try {
        await zk.get('/alive');
        expect.fail('must fail while down');
      } catch (err) {
        expect(err).to.be.instanceOf(ZkUnavailableError);
      }
      expect(Date.now() - t0).to.be.lessThan(6000); // bounded by the op timeout, not hanging
      await own.nodes[0].start();
      await waitForServing(own, 60000);
      await waitFor(() => zk.connected, 'reconnect', 60000);
      expect((await zk.get('/alive'))!.data.toString()).to.equal('1');
    } finally {
      await own.stop();
    }
  });

  it('connects in the end when its first attempt reaches a server that accepts and never answers (a ZooKeeper still starting)', async () => {
    // A proxy in front of the real ZooKeeper whose first connection is held open in silence: the
    // library's first attempt then stalls with no timer to end it. The client never connected, so
    // only the reconnection watchdog armed at session start gets it out (twice the session timeout).
    const [host, port] = conn.split(',')[0].split(':');
    const held: Socket[] = [];
    let accepted = 0;
    const proxy = createServer((inbound) => {
      if (accepted++ === 0) {
        held.push(inbound);
        return;
      }
      const outbound = createConnection(Number(port), host);
      inbound.pipe(outbound).pipe(inbound);
      const end = () => {
        inbound.destroy();
        outbound.destroy();
      };
      inbound.on('error', end).on('close', end);
      outbound.on('error', end).on('close', end);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const zk = new Zk({ connectionString: `127.0.0.1:${(proxy.address() as AddressInfo).port}`, sessionTimeoutMs: 2000, log });
      open.push(zk);
      expect(await zk.start(1000)).to.equal(false);
      expect(accepted).to.equal(1);
      await waitFor(() => zk.connected, 'a new session past the silent connection', 15000, 50);
      expect(accepted).to.be.at.least(2);
      const path = uniquePath('/stalled-start');
      await zk.create(path, Buffer.from('1'));
      expect((await zk.get(path))!.data.toString()).to.equal('1');
    } finally {
      for (const s of held) s.destroy();
      proxy.close();
    }
  });

  it('never writes a configured secret into a log line', () => {
    let out = '';
    const dest = new Writable({ write(chunk, _enc, cb) { out += chunk.toString(); cb(); } });
    const l = createLogger({ secrets: ['hunter2'], destination: dest as never });
    l.info({ url: 'http://u:hunter2@x', nested: { password: 'other' } }, 'connecting with hunter2');
    expect(out).to.include('connecting with ***').and.not.to.include('hunter2').and.not.to.include('other');
  });
});

describe('ZeroMQ hints', function () {
  this.timeout(20000);

  it('delivers hints to a subscriber and flags a sequence gap as a resync', async () => {
    const port = await freePort();
    const pub = new HintPublisher('api-1', log, 0);
    await pub.start(`tcp://127.0.0.1:${port}`);
    const seen: HintEvent[] = [];
    const sub = new HintSubscriber(log, (e) => seen.push(e));
    sub.start();
    sub.setEndpoints([pub.boundAddress]);
    try {
      // Slow joiner: publish until the subscription is live.
      await waitFor(async () => {
        await pub.publish('heartbeat');
        return seen.length > 0;
      }, 'first hint', 10000, 50);
      const before = seen.length;
      await pub.publish('rules', { appId: '/a' });
      await waitFor(() => seen.length > before, 'rules hint');
      const last = seen[seen.length - 1];
      expect(last.hint).to.include({ kind: 'rules', appId: '/a', publisher: 'api-1' });
      expect(last.gap).to.equal(false);
      // Simulate a lost message: skip a sequence number.
      (pub as unknown as { seq: number }).seq += 1;
      await pub.publish('marathon');
      await waitFor(() => seen[seen.length - 1].hint.kind === 'marathon', 'marathon hint');
      expect(seen[seen.length - 1].gap).to.equal(true);
      expect(seen[0].gap, 'the first hint from a publisher is a resync').to.equal(true);
    } finally {
      sub.close();
      await pub.close();
    }
  });

  it('follows publishers as they come and go', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const a = new HintPublisher('a', log, 0);
    const b = new HintPublisher('b', log, 0);
    await a.start(`tcp://127.0.0.1:${p1}`);
    await b.start(`tcp://127.0.0.1:${p2}`);
    const from = new Set<string>();
    const sub = new HintSubscriber(log, (e) => from.add(e.hint.publisher));
    sub.start();
    try {
      sub.setEndpoints([a.boundAddress, b.boundAddress]);
      await waitFor(async () => {
        await a.publish('heartbeat');
        await b.publish('heartbeat');
        return from.size === 2;
      }, 'both publishers', 10000, 50);
      sub.setEndpoints([b.boundAddress]);
      expect(sub.connectedEndpoints).to.deep.equal([b.boundAddress]);
      await sleep(100);
      from.clear();
      for (let i = 0; i < 5; i++) {
        await a.publish('heartbeat');
        await b.publish('heartbeat');
        await sleep(20);
      }
      expect([...from]).to.deep.equal(['b']);
    } finally {
      sub.close();
      await a.close();
      await b.close();
    }
  });
});
