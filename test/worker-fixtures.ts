/**
 * Builders and helpers for the worker tests: Marathon apps, a worker config on free ports in a temp
 * dir, and a stand-in for the api tier (writes the snapshot and rules to ZooKeeper and publishes hints
 * from a registered publisher), so the worker is tested without the api.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TEMPLATE_PATH, type Config } from '../common/config.js';
import { loadConfig } from '../common/config-load.js';
import { createLogger, type Logger } from '../common/log.js';
import { HintPublisher, type PublisherCurve } from '../common/adapters/zeromq/bus.js';
import { RuleStore } from '../common/adapters/zookeeper/rules.js';
import { ControlStore, type StoredContent } from '../common/adapters/zookeeper/snapshot.js';
import { Zk } from '../common/adapters/zookeeper/zk.js';
import { freePort } from '../harness/ports.js';
import { tempDir } from '../harness/tmp.js';
import { sharedZooKeeper, uniquePath } from '../harness/zookeeper.js';

export function testLogger(role = 'test'): Logger {
  return createLogger({ level: process.env.WORKER_TEST_LOG ?? 'silent', role });
}

export interface TaskSpec {
  host?: string;
  port: number;
  id?: string;
}

/** A Marathon 1.x app as /v2/apps?embed=apps.tasks returns it, running `tasks`. */
export function marathonApp(id: string, tasks: TaskSpec[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const slug = id.replace(/^\//, '').replace(/\//g, '_');
  return {
    id,
    instances: tasks.length,
    portDefinitions: [{ port: 10000, protocol: 'tcp' }],
    healthChecks: [],
    labels: {},
    env: {},
    version: '2024-01-01T00:00:00.000Z',
    tasks: tasks.map((t, i) => ({
      id: t.id ?? `${slug}.task-${i}`,
      appId: id,
      host: t.host ?? '127.0.0.1',
      ports: [t.port],
      servicePorts: [10000],
      state: 'TASK_RUNNING',
      startedAt: '2024-01-01T00:00:00.000Z',
      stagedAt: '2024-01-01T00:00:00.000Z',
      version: '2024-01-01T00:00:00.000Z',
    })),
    ...extra,
  };
}

export interface TestSetup {
  dir: string;
  outputPath: string;
  httpPort: number;
  zkHost: string;
  rulesPath: string;
  controlPath: string;
}

/** Fresh ZooKeeper paths, temp dir and HTTP port for one test. */
export async function testSetup(): Promise<TestSetup> {
  const zk = await sharedZooKeeper();
  const dir = tempDir('bamboo-worker-');
  return {
    dir,
    outputPath: join(dir, 'haproxy.cfg'),
    httpPort: await freePort(),
    zkHost: zk.connectionString,
    rulesPath: uniquePath('/bamboo-rules'),
    controlPath: uniquePath('/bamboo-ctl'),
  };
}

/** A worker config for the setup; `overrides` are dotted keys (highest precedence). */
export function workerConfig(s: TestSetup, overrides: Record<string, string | number | boolean> = {}): Readonly<Config> {
  return loadConfig({
    env: {},
    overrides: {
      'Bamboo.Zookeeper.Host': s.zkHost,
      'Bamboo.Zookeeper.Path': s.rulesPath,
      'Bamboo.Zookeeper.ControlPath': s.controlPath,
      'Bamboo.Zookeeper.SessionTimeoutMs': 4000,
      'HAProxy.OutputPath': s.outputPath,
      'HAProxy.HttpBind': `127.0.0.1:${s.httpPort}`,
      'HAProxy.BindOptions': 'noreuseport',
      'HAProxy.CommandTimeoutMs': 10000,
      'Worker.Name': `test-worker-${s.controlPath.slice(-6)}`,
      'Worker.DebounceMs': 10,
      'Worker.MinUpdateIntervalMs': 20,
      'Worker.MinReloadIntervalMs': 50,
      'Worker.ResyncIntervalMs': 0,
      'Log.Level': 'silent',
      ...overrides,
    },
  });
}

/** Plays the api tier: writes snapshots and rules, publishes hints from a registered publisher. */
export class FakeApi {
  readonly zk: Zk;
  readonly control: ControlStore;
  readonly rules: RuleStore;
  publisher: HintPublisher | null = null;
  /** Put a delta on each `marathon` hint, as the intake does (its digest stored in the pointer). */
  sayDeltas = false;
  private lastStored: StoredContent | null = null;
  private publisherPath = '';

  constructor(s: TestSetup, log: Logger = testLogger('fake-api')) {
    this.zk = new Zk({ connectionString: s.zkHost, sessionTimeoutMs: 4000, log });
    this.control = new ControlStore(this.zk, s.controlPath);
    this.rules = new RuleStore(this.zk, s.rulesPath);
  }

  async start(opts: { publish?: boolean; curve?: PublisherCurve } = {}): Promise<this> {
    if (!(await this.zk.start(10000))) throw new Error('ZooKeeper not reachable');
    await this.rules.ensureBase();
    if (opts.publish !== false) await this.startPublisher(undefined, opts.curve);
    return this;
  }

  /** Binds a PUB socket (a CURVE server with `curve`) and registers it, as an api copy does. */
  async startPublisher(id = `api-${Math.random().toString(16).slice(2, 8)}`, curve?: PublisherCurve): Promise<HintPublisher> {
    const pub = new HintPublisher(id, testLogger('pub'), 200, curve);
    const address = await pub.start('tcp://127.0.0.1:*');
    this.publisher = pub;
    this.publisherPath = this.control.paths.publisher(id);
    const record = { id, zmq: address, http: 'http://127.0.0.1:0', host: hostname(), startedAt: Date.now(), ...(curve ? { curve: curve.publicKey } : {}) };
    await this.zk.ephemeral(this.publisherPath, () => Buffer.from(JSON.stringify(record)));
    return pub;
  }

  async setApps(apps: unknown[]): Promise<number> {
    const fetchedAt = Date.now();
    const r = await this.control.writeSnapshot(apps, fetchedAt, { deltaFrom: this.sayDeltas ? this.lastStored : null });
    this.lastStored = { version: r.version, hash: r.hash, ids: r.serialised.ids, parts: r.serialised.parts };
    if (this.publisher) {
      this.publisher.snapshotVersion = r.version;
      await this.publisher.publish('marathon', r.delta ? { delta: { ...r.delta, version: r.version, hash: r.hash, fetchedAt } } : {});
    }
    return r.version;
  }

  async setRule(appId: string, acl: string, hint = true, config: Record<string, string> = {}): Promise<void> {
    await this.rules.put({ Id: appId, Acl: acl, Config: config });
    if (hint && this.publisher) await this.publisher.publish('rules', { appId });
  }

  /**
   * Stores a record whose `Acl` is harmless and whose `Config.Rule` is what `configRuleTemplate`
   * routes by: how a rule that `validateAcl` refuses (env(), -f) still reaches HAProxy.
   */
  async setConfigRule(appId: string, rule: string): Promise<void> {
    await this.setRule(appId, 'path_beg /unused', true, { Rule: rule });
  }

  async deleteRule(appId: string): Promise<void> {
    await this.rules.delete(appId);
    if (this.publisher) await this.publisher.publish('rules', { appId });
  }

  async close(): Promise<void> {
    await this.publisher?.close();
    if (this.publisherPath) await this.zk.dropEphemeral(this.publisherPath).catch(() => undefined);
    await this.zk.close();
  }
}

/**
 * A custom template that takes each app's rule from its record's `Config.Rule` (Bamboo-era templates
 * used Config keys freely). `validateAcl` refuses env(), -f and the like in `Acl`, at the api and in the
 * worker's template data; a Config value a custom template pastes is checked for printable text only,
 * so this is how such a rule still reaches HAProxy, and the worker's deeper defences must hold anyway.
 */
export function configRuleTemplate(s: TestSetup): string {
  const text = readFileSync(DEFAULT_TEMPLATE_PATH, 'utf8');
  const from = '{%- assign acl = Services | get_service: app.Id | get: "Acl" %}';
  if (!text.includes(from)) throw new Error('the default template no longer assigns the rule as configRuleTemplate expects');
  const path = join(s.dir, 'config-rule.cfg.liquid');
  writeFileSync(path, text.replace(from, '{%- assign acl = Services | get_service: app.Id | get: "Config" | get: "Rule" %}'));
  return path;
}
