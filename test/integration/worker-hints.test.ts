/**
 * Hints are hints (issue 15, F6), from an attacker's point of view: someone who can register a
 * publisher in ZooKeeper (no digest) or otherwise reach a worker's subscription sends forged hints.
 * The worker must never route anything ZooKeeper does not hold, and forged hints must not make it
 * reload or read at will. Real ZooKeeper, ZeroMQ and `haproxy -c`.
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Publisher } from 'zeromq';
import { encodeHint, HintPublisher, HintSubscriber, newCurveKeys, type Hint, type HintEvent } from '../../common/adapters/zeromq/bus.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { runWorker, type WorkerHandle } from '../../worker/main.js';
import { freePort } from '../../harness/ports.js';
import { sleep, waitFor } from '../../harness/process.js';
import { FakeApi, marathonApp, testLogger, testSetup, workerConfig, type TestSetup } from '../worker-fixtures.js';

const log = testLogger('worker');

/** A publisher an attacker registered: an ephemeral znode naming a real ZeroMQ PUB socket. */
export interface RoguePublisher {
  address: string;
  sent: number;
  send(h: Partial<Hint> & Pick<Hint, 'kind'>): Promise<void>;
  close(): Promise<void>;
}

export async function roguePublisher(
  s: TestSetup,
  opts: { id?: string; digest?: string; socket?: ConstructorParameters<typeof Publisher>[0]; record?: Record<string, unknown> } = {},
): Promise<RoguePublisher> {
  const id = opts.id ?? 'evil';
  const sock = new Publisher({ linger: 0, ...opts.socket });
  const port = await freePort();
  await sock.bind(`tcp://127.0.0.1:${port}`);
  const address = `tcp://127.0.0.1:${port}`;
  const zk = new Zk({ connectionString: s.zkHost, digest: opts.digest, log: testLogger('rogue') });
  await zk.start(10000);
  const path = `${s.controlPath}/publishers/${id}`;
  await zk.create(path, Buffer.from(JSON.stringify({ id, zmq: address, http: 'http://127.0.0.1:1', host: hostname(), startedAt: Date.now(), ...opts.record })), 'ephemeral');
  let seq = 0;
  const rogue: RoguePublisher = {
    address,
    sent: 0,
    async send(h) {
      const hint: Hint = { v: 1, publisher: id, seq: ++seq, snapshotVersion: -1, at: Date.now(), ...h };
      await sock.send(encodeHint(hint));
      rogue.sent++;
    },
    async close() {
      sock.close();
      await zk.remove(path).catch(() => undefined);
      await zk.close();
    },
  };
  return rogue;
}

describe('hints are hints: forged ZeroMQ hints (real ZooKeeper, ZeroMQ, haproxy -c)', function () {
  this.timeout(90000);
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function fakeApi(s: TestSetup, opts: Parameters<FakeApi['start']>[0] = {}): Promise<FakeApi> {
    const api = await new FakeApi(s).start(opts);
    api.sayDeltas = true;
    cleanups.push(() => api.close());
    return api;
  }

  async function worker(s: TestSetup, overrides: Record<string, string | number | boolean> = {}): Promise<WorkerHandle> {
    const w = await runWorker(workerConfig(s, { 'HAProxy.ReloadCommand': 'true', 'Worker.MinUpdateIntervalMs': 100, ...overrides }), log, {
      bind: '127.0.0.1:0',
      retryInitialMs: 200,
    });
    cleanups.push(() => w.close());
    return w;
  }

  async function rogue(s: TestSetup, opts: Parameters<typeof roguePublisher>[1] = {}): Promise<RoguePublisher> {
    const r = await roguePublisher(s, opts);
    cleanups.push(() => r.close());
    return r;
  }

  const cfgText = (s: TestSetup) => (existsSync(s.outputPath) ? readFileSync(s.outputPath, 'utf8') : '');

  it('never renders a task a forged delta points at, reloads for none of them, and keeps applying the real state', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const [realPort, attackerPort, movedPort, finalPort] = [31001, 31666, 31002, 31003];
    const webAt = (port: number) => marathonApp('/demo/web', [{ port }]);
    await api.setApps([webAt(realPort), marathonApp('/demo/other', [{ port: 31010 }])]);
    const w = await worker(s);
    await waitFor(() => cfgText(s).includes(`:${realPort}`) && !w.reconciler.busy, 'the start-up config');

    // Every config the worker writes from now on is checked, not only the last.
    const written: string[] = [];
    w.reconciler.on('outcome', () => written.push(cfgText(s)));

    // Registered under its own name, claiming the real api's id: the worker must keep both connections.
    const evil = await rogue(s, { record: { id: api.publisher!.publisherId } });
    await waitFor(() => w.subscriber.connectedEndpoints.includes(evil.address), 'the worker to connect to the registered rogue publisher');
    expect(w.subscriber.connectedEndpoints, 'the real api stays connected').to.include(api.publisher!.boundAddress);
    const pointer = (await api.control.snapshotPointer())!;
    const forgedApp = webAt(attackerPort);
    const forge = (base: number, baseHash: string, version: number, hash: string) => ({
      kind: 'marathon' as const,
      snapshotVersion: version,
      delta: { base, baseHash, version, hash, fetchedAt: Date.now(), upsert: [forgedApp], remove: [] },
    });

    // The stream the review used: base = the real version, and chained on the last forged version;
    // plus the real version's own number and hash, and a huge version.
    const before = { reloads: w.reconciler.counts.reloaded + w.reconciler.counts.runtime, reconciles: w.reconciler.status().reconciles, ...w.status().snapshots };
    const received0 = w.subscriber.received;
    const t0 = performance.now();
    let last = pointer.version;
    for (let i = 0; i < 60; i++) {
      const variants = [
        forge(pointer.version, pointer.hash, pointer.version + 1, 'f'.repeat(64)),
        forge(last, 'x', last + 1, 'y'),
        forge(pointer.version - 1, pointer.hash, pointer.version, pointer.hash),
        forge(pointer.version, pointer.hash, 9e15, 'z'),
      ];
      last++;
      await evil.send(variants[i % variants.length]);
      await sleep(50);
    }
    await waitFor(() => w.subscriber.received - received0 >= 40, 'the forged hints to arrive');
    await waitFor(() => !w.reconciler.busy, 'the worker to go idle');
    const seconds = (performance.now() - t0) / 1000;
    const after = w.status().snapshots;
    expect(written.join('\n')).to.not.contain(`:${attackerPort}`);
    expect(cfgText(s)).to.contain(`:${realPort}`).and.not.contain(`:${attackerPort}`);
    expect(w.reconciler.counts.reloaded + w.reconciler.counts.runtime - before.reloads, 'reloads caused by forged hints').to.equal(0);
    expect(after.deltas - before.deltas, 'forged deltas applied').to.equal(0);
    expect(after.reads - before.reads, 'full snapshot reads caused by forged hints').to.equal(0);
    // Each reconcile costs one pointer read and one rules-parent read; the reconciler paces them
    // (Worker.MinUpdateIntervalMs = 100 ms here), whatever the hint rate.
    const reconciles = w.reconciler.status().reconciles - before.reconciles;
    expect(reconciles, `reconciles in ${seconds.toFixed(1)} s`).to.be.at.most(Math.ceil(seconds * 10) + 3);

    // The real state keeps applying, amid forged hints and after them (by delta, confirmed).
    const sending = (async () => {
      for (let i = 0; i < 20; i++) {
        await evil.send(forge(pointer.version + 1 + i, pointer.hash, pointer.version + 2 + i, 'f'.repeat(64)));
        await sleep(50);
      }
    })();
    await api.setApps([webAt(movedPort), marathonApp('/demo/other', [{ port: 31010 }])]);
    await waitFor(() => cfgText(s).includes(`:${movedPort}`), 'the real change amid forged hints');
    await sending;
    // Once the forged stream's re-reads are over, the real api's hints are applied from their deltas
    // again (a read that happens to fall between a write and its hint reads the snapshot instead).
    const deltasBefore = w.status().snapshots.deltas;
    for (let i = 0; i < 5 && w.status().snapshots.deltas === deltasBefore; i++) {
      await api.setApps([webAt(finalPort + i), marathonApp('/demo/other', [{ port: 31010 }])]);
      await waitFor(() => cfgText(s).includes(`:${finalPort + i}`), 'the next real change');
      await waitFor(() => !w.reconciler.busy, 'the worker to go idle');
    }
    expect(w.status().snapshots.deltas, "the real api's deltas applied once confirmed").to.be.greaterThan(deltasBefore);
    expect(written.join('\n')).to.not.contain(`:${attackerPort}`);
    expect(w.status().snapshots.ignored, 'forged deltas counted').to.be.greaterThan(0);
  });

  describe('with ZeroMQ CURVE', () => {
    it('takes hints only from publishers proving a trusted key: not from a plain one, an impostor naming the key, or an untrusted key', async () => {
      const apiKeys = newCurveKeys();
      const s = await testSetup();
      const api = await fakeApi(s, { curve: apiKeys });
      await api.setApps([marathonApp('/curve/web', [{ port: 32001 }])]);
      const w = await worker(s, { 'ZeroMQ.CurveServerKeys': apiKeys.publicKey });
      await waitFor(() => cfgText(s).includes(':32001'), 'the start-up config');

      const other = newCurveKeys();
      // A plain publisher registered without a key (the worker tries the one key it trusts: no handshake).
      const plain = await rogue(s, { id: 'evil-plain' });
      // A CURVE publisher with its own keys that registers the api's public key: it cannot prove it.
      const impostor = await rogue(s, { id: 'evil-impostor', socket: { curveServer: true, curvePublicKey: other.publicKey, curveSecretKey: other.secretKey }, record: { curve: apiKeys.publicKey } });
      // A CURVE publisher registering its own key: not trusted, not even connected to.
      const untrusted = await rogue(s, { id: 'evil-untrusted', socket: { curveServer: true, curvePublicKey: other.publicKey, curveSecretKey: other.secretKey }, record: { curve: other.publicKey } });
      await waitFor(() => w.discovery.known.size === 4, 'the worker to see every registration');
      expect([...w.discovery.untrusted]).to.deep.equal(['evil-untrusted']);
      expect(w.subscriber.connectedEndpoints).to.include(plain.address).and.include(impostor.address).and.not.include(untrusted.address);
      expect(w.status().publishers, '/status lists the publishers it connects to').to.not.include(untrusted.address);

      // All three send a stream of hints while the real api keeps publishing (heartbeats every 200 ms
      // and a change): the real one arrives and applies, none of theirs is received.
      let sending = true;
      const stream = (async () => {
        while (sending) {
          for (const r of [plain, impostor, untrusted]) await r.send({ kind: 'rules', appId: '/curve/web', snapshotVersion: 1e9 });
          await sleep(50);
        }
      })();
      const fromApi = () => w.subscriber.receivedFrom.get(api.publisher!.publisherId) ?? 0;
      const start = fromApi();
      await api.setApps([marathonApp('/curve/web', [{ port: 32002 }])]);
      await waitFor(() => cfgText(s).includes(':32002'), "the real api's hint over CURVE");
      await waitFor(() => fromApi() >= start + 10 && plain.sent >= 20, 'a while of traffic from both sides');
      sending = false;
      await stream;
      for (const id of ['evil-plain', 'evil-impostor', 'evil-untrusted']) expect(w.subscriber.receivedFrom.get(id) ?? 0, id).to.equal(0);
    });

    it('lets only the listed worker keys subscribe when the api restricts its clients (ZAP)', async () => {
      const apiKeys = newCurveKeys();
      const allowed = newCurveKeys();
      const stranger = newCurveKeys();
      const pub = new HintPublisher('api-zap', log, 100, { ...apiKeys, clientKeys: [allowed.publicKey] });
      const address = await pub.start('tcp://127.0.0.1:*');
      cleanups.push(() => pub.close());
      const subscriber = (keys: typeof allowed) => {
        const seen: HintEvent[] = [];
        const sub = new HintSubscriber(log, (e) => seen.push(e), keys);
        sub.start();
        sub.setEndpoints([{ address, serverKey: apiKeys.publicKey }]);
        cleanups.push(async () => sub.close());
        return seen;
      };
      const good = subscriber(allowed);
      const bad = subscriber(stranger);
      const plain: HintEvent[] = [];
      const plainSub = new HintSubscriber(log, (e) => plain.push(e));
      plainSub.start();
      plainSub.setEndpoints([address]);
      cleanups.push(async () => plainSub.close());
      // Heartbeats every 100 ms: ten of them reach the listed worker, none the others.
      await waitFor(() => good.length >= 10, 'hints at the listed worker');
      expect(bad, 'a CURVE client with another key').to.have.length(0);
      expect(plain, 'a plain client').to.have.length(0);
    });
  });
});
