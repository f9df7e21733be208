import { expect } from 'chai';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { HAProxyProcess, ReloadResult } from '../../common/adapters/haproxy/process.js';
import type { ValidationResult } from '../../common/adapters/haproxy/commands.js';
import { nullMetrics } from '../../common/adapters/statsd/metrics.js';
import { createRenderer } from '../../common/core/render.js';
import type { StoredRecord } from '../../common/adapters/zookeeper/rules.js';
import type { ApplyOutcome, DesiredState } from '../../worker/outcome.js';
import { Reconciler } from '../../worker/reconciler.js';
import { FakeClock } from '../support/fake-clock.js';
import { sleep, waitFor } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';
import { marathonApp, testLogger } from '../worker-fixtures.js';

// The loop and its pacing, with in-memory stand-ins for ZooKeeper, the validator and HAProxy.

const TEMPLATE = '{%- for app in Apps %}{% app app %}backend {{ app.EscapedId }} # {{ Services | get_service: app.Id | map: "Acl" | join: "" }}\n{% endapp %}{% endfor %}';

class FakeSource {
  version = 0;
  acl = 'v0';
  reads = 0;
  fail: Error | null = null;
  async read(): Promise<DesiredState> {
    this.reads++;
    if (this.fail) throw this.fail;
    const rules = new Map<string, StoredRecord>([['/app', { record: { Id: '/app', Acl: this.acl, Config: {} }, version: this.version, format: 2 }]]);
    return { snapshotVersion: 1, apps: [marathonApp('/app', [{ port: 1000 }])], rules };
  }
}

class FakeHAProxy implements HAProxyProcess {
  readonly mode = 'command' as const;
  reloads: string[] = [];
  delayMs = 0;
  /** Old generations the master would list (null: cannot tell). */
  old: number[] | null = null;
  async oldWorkers(): Promise<number[] | null> {
    return this.old;
  }
  constructor(private readonly outputPath: string) {}
  async start() {
    return { ok: true, reason: '', adopted: false };
  }
  async reload(): Promise<ReloadResult> {
    await sleep(this.delayMs);
    this.reloads.push(readFileSync(this.outputPath, 'utf8'));
    return { ok: true, reason: 'ok', ms: this.delayMs, output: '' };
  }
  state() {
    return { mode: 'command' as const, running: null, masterPid: null, workerPids: [], restarts: 0 };
  }
  async close() {}
}

function setup(overrides: Partial<ConstructorParameters<typeof Reconciler>[0]> = {}) {
  const dir = tempDir('bamboo-rec-');
  const outputPath = join(dir, 'haproxy.cfg');
  const source = new FakeSource();
  const haproxy = new FakeHAProxy(outputPath);
  const validated: string[] = [];
  const r = new Reconciler({
    outputPath,
    renderer: createRenderer(TEMPLATE),
    settings: { HttpBind: '', StatsBind: '', StatsUser: '', StatsPassword: '', AdminSocket: '', BindOptions: '' },
    source,
    haproxy,
    validate: async (path): Promise<ValidationResult> => {
      validated.push(path);
      return { ok: true, output: '', timedOut: false, ms: 0, lines: [] };
    },
    commandTimeoutMs: 1000,
    debounceMs: 0,
    minUpdateIntervalMs: 0,
    minReloadIntervalMs: 0,
    log: testLogger('reconciler'),
    metrics: nullMetrics,
    retryInitialMs: 50,
    ...overrides,
  });
  const seen: ApplyOutcome[] = [];
  r.on('outcome', (o: ApplyOutcome) => seen.push(o));
  return { r, source, haproxy, outputPath, seen, validated };
}

describe('reconcile loop (in-memory stand-ins)', () => {
  it('runs one apply at a time and lets the latest state win', async () => {
    const { r, source, haproxy, seen } = setup();
    haproxy.delayMs = 150;
    r.trigger('first');
    await waitFor(() => source.reads === 1, 'the first read');
    for (let i = 1; i <= 50; i++) {
      source.acl = `v${i}`;
      source.version = i;
      r.trigger(`hint-${i}`);
      await sleep(1);
    }
    await r.whenIdle();
    expect(seen.map((o) => o.outcome)).to.deep.equal(['reloaded', 'reloaded']);
    expect(haproxy.reloads).to.have.length(2);
    expect(haproxy.reloads[1]).to.contain('# v50');
    expect(seen[1].triggers).to.include('hint-50');
    await r.close();
  });

  it('waits out the minimum reload interval and reloads with state that arrived meanwhile', async () => {
    const { r, source, haproxy, seen } = setup({ minReloadIntervalMs: 400 });
    r.trigger('first');
    await waitFor(() => haproxy.reloads.length === 1, 'the first reload');
    source.acl = 'second';
    r.trigger('second');
    await waitFor(() => source.reads === 2, 'the second read');
    source.acl = 'third';
    r.trigger('third');
    await r.whenIdle();
    expect(haproxy.reloads).to.have.length(2);
    expect(haproxy.reloads[1]).to.contain('# third');
    expect(seen.at(-1)!.triggers).to.deep.equal(['second', 'third']);
    expect(seen.at(-1)!.stages.wait).to.be.greaterThan(0);
    await r.close();
  });

  it('treats an unreadable desired state as a noop that keeps the config in force, and retries', async () => {
    const { r, source, haproxy, outputPath, seen } = setup();
    r.trigger('first');
    await waitFor(() => haproxy.reloads.length === 1, 'the first reload');
    const good = readFileSync(outputPath, 'utf8');
    source.fail = new Error('ZooKeeper unavailable (disconnected)');
    r.trigger('hint');
    await waitFor(() => seen.length >= 3, 'a read failure and its retry');
    expect(seen.slice(1).every((o) => o.outcome === 'noop' && o.reason.includes('desired state unavailable'))).to.equal(true);
    expect(seen[2].triggers).to.deep.equal(['retry']);
    expect(readFileSync(outputPath, 'utf8')).to.equal(good);
    expect(seen.at(-1)!.configHash).to.equal(seen[0].configHash);
    source.fail = null;
    source.acl = 'after';
    await waitFor(() => haproxy.reloads.length === 2, 'the retry to apply once ZooKeeper is back');
    await r.close();
  });

  it('noops without validating when the rendered config equals the one in force', async () => {
    const { r, source, haproxy, seen, validated, outputPath } = setup();
    r.trigger('first');
    await waitFor(() => seen.length === 1, 'the first outcome');
    r.trigger('resync');
    await waitFor(() => seen.length === 2, 'the second outcome');
    expect(seen[1]).to.include({ outcome: 'noop', reason: 'unchanged' });
    expect(validated).to.have.length(1);
    expect(haproxy.reloads).to.have.length(1);
    expect(existsSync(validated[0])).to.equal(false);
    expect(readFileSync(`${outputPath}.last-good`, 'utf8')).to.equal(readFileSync(outputPath, 'utf8'));

    // A new rule version that renders the same text is applied without a reload: the model follows.
    source.version = 7;
    r.trigger('hint');
    await waitFor(() => seen.length === 3, 'the third outcome');
    expect(seen[2].outcome).to.equal('noop');
    expect(r.running!.rulesApplied).to.deep.equal({ '/app': 7 });
    expect(haproxy.reloads).to.have.length(1);
    await r.close();
  });
  it('starts at once when idle, however long the debounce, and still coalesces the burst that follows', async () => {
    // A minute of debounce: only the leading edge can get the first hint applied within the wait below.
    const { r, source, haproxy, seen } = setup({ debounceMs: 60_000 });
    haproxy.delayMs = 150;
    r.trigger('first');
    await waitFor(() => haproxy.reloads.length === 1, 'the first hint applied without the debounce wait');
    await r.close();

    // Triggers arriving while a reconcile runs wait for the debounce after it: one more read, the latest state.
    const second = setup({ debounceMs: 200 });
    second.haproxy.delayMs = 150;
    second.r.trigger('first');
    await waitFor(() => second.source.reads === 1, 'the first read');
    for (let i = 1; i <= 30; i++) {
      second.source.acl = `v${i}`;
      second.source.version = i;
      second.r.trigger(`hint-${i}`);
    }
    await second.r.whenIdle();
    expect(second.source.reads).to.equal(2);
    expect(second.seen.map((o) => o.outcome)).to.deep.equal(['reloaded', 'reloaded']);
    expect(second.haproxy.reloads[1]).to.contain('# v30');
    expect(second.seen[1].triggers).to.include.members(['hint-1', 'hint-30']);
    expect(seen).to.have.length(1);
    expect(source.reads).to.equal(1);
    await second.r.close();
  });

  it('waits the debounce for a trigger that comes right after a reconcile ended', async () => {
    const clock = new FakeClock();
    const { r, source, seen } = setup({ debounceMs: 60_000, clock });
    r.trigger('first');
    await waitFor(() => seen.length === 1, 'the first outcome');
    // Not idle (a reconcile ended within the debounce window): this one waits, as part of a burst.
    r.trigger('soon-after');
    await clock.advance(59_999);
    expect(source.reads).to.equal(1);
    expect(r.busy).to.equal(true);
    await clock.advance(1);
    await waitFor(() => seen.length === 2, 'the debounced reconcile');
    expect(seen[1].triggers).to.deep.equal(['soon-after']);
    await r.close();
  });

  it('keeps its pace when the wall clock steps back an hour or forward an hour (pacing is monotonic)', async () => {
    const realNow = Date.now;
    const { r, source, haproxy } = setup({ debounceMs: 20, minUpdateIntervalMs: 100, minReloadIntervalMs: 300 });
    try {
      r.trigger('first');
      await waitFor(() => haproxy.reloads.length === 1, 'the first reload');
      for (const [i, step] of [-3_600_000, 3_600_000].entries()) {
        Date.now = () => realNow() + step;
        source.acl = `after-step-${i}`;
        r.trigger('hint');
        await waitFor(() => haproxy.reloads.length === i + 2, `the reload after a ${step} ms step`, 5000);
        expect(haproxy.reloads.at(-1)).to.contain(`# after-step-${i}`);
      }
    } finally {
      Date.now = realNow;
      await r.close();
    }
  });
});

describe('reload storm bounds (in-memory stand-ins, fake clock)', () => {
  /** Changes the rule and asks for a reconcile. */
  async function change(h: ReturnType<typeof setup>, acl: string) {
    h.source.acl = acl;
    h.source.version++;
    h.r.trigger(`hint-${acl}`);
  }

  it('holds a reload over Worker.MaxReloadsPerMinute until the minute allows it, shows why, and reloads the latest state', async () => {
    const clock = new FakeClock();
    const deferred: string[] = [];
    const h = setup({ clock, maxReloadsPerMinute: 3, metrics: { ...nullMetrics, reloadDeferred: (reason: string) => void deferred.push(reason) } });
    for (let i = 1; i <= 3; i++) {
      await change(h, `v${i}`);
      await waitFor(() => h.haproxy.reloads.length === i, `reload ${i}`);
      await clock.advance(1000);
    }
    await change(h, 'v4');
    await waitFor(() => h.r.status().reloads.wait?.reason === 'rate', 'the fourth reload to wait for the per-minute bound');
    expect(h.r.status().reloads.wait!.until).to.be.a('number');
    await change(h, 'v5');
    await clock.advance(56_999);
    expect(h.haproxy.reloads).to.have.length(3);
    await clock.advance(1);
    await waitFor(() => h.haproxy.reloads.length === 4 && !h.r.busy, 'the held reload');
    // It started over with the state that arrived while it waited: one reload, the latest rule.
    expect(h.haproxy.reloads.at(-1)).to.contain('# v5');
    expect(h.r.status().reloads.wait).to.equal(null);
    expect(h.r.status().reloads.deferred).to.equal(1);
    expect(deferred).to.include('rate');
    await h.r.close();
  });

  it('holds a reload while Worker.MaxOldGenerations old HAProxy generations run, and reloads once one exits', async () => {
    const clock = new FakeClock();
    const h = setup({ clock, maxOldGenerations: 2 });
    await change(h, 'v1');
    await waitFor(() => h.haproxy.reloads.length === 1, 'the first reload');
    h.haproxy.old = [101, 102];
    await change(h, 'v2');
    await waitFor(() => h.r.status().reloads.wait?.reason === 'generations', 'the reload to wait for old generations');
    expect(h.r.status().reloads.oldGenerations).to.equal(2);
    await clock.advance(5000);
    expect(h.haproxy.reloads).to.have.length(1);
    h.haproxy.old = [102];
    await clock.advance(250);
    await waitFor(() => h.haproxy.reloads.length === 2, 'the reload once an old generation exited');
    expect(h.haproxy.reloads[1]).to.contain('# v2');
    await h.r.close();
  });

  it('reloads anyway after Worker.OldGenerationsWaitMs when old generations never exit, so updates never freeze', async () => {
    const clock = new FakeClock();
    const h = setup({ clock, maxOldGenerations: 1, oldGenerationsWaitMs: 10_000 });
    await change(h, 'v1');
    await waitFor(() => h.haproxy.reloads.length === 1, 'the first reload');
    h.haproxy.old = [101];
    await change(h, 'v2');
    await waitFor(() => h.r.status().reloads.wait?.reason === 'generations', 'the reload to wait for old generations');
    await clock.advance(9_000);
    expect(h.haproxy.reloads).to.have.length(1);
    for (let i = 0; i < 8 && h.haproxy.reloads.length < 2; i++) await clock.advance(250);
    await waitFor(() => h.haproxy.reloads.length === 2, 'the reload after the bounded wait');
    await h.r.close();
  });
});

describe('reconciler write failures (in-memory stand-ins)', () => {
  it('reports a candidate it cannot install as write-failed, leaves no temp file, and retries soon', async () => {
    const { r, haproxy, outputPath, seen } = setup({ retryInitialMs: 50 });
    // A non-empty directory where haproxy.cfg should be: the temp file is written and validated, the rename fails.
    mkdirSync(outputPath);
    writeFileSync(join(outputPath, 'keep'), 'x');
    r.trigger('first');
    await waitFor(() => seen.filter((o) => o.outcome === 'write-failed').length >= 2, 'a write-failed outcome and its retry');
    const failed = seen.find((o) => o.outcome === 'write-failed')!;
    expect(failed.reason).to.match(/^cannot write .*haproxy\.cfg: E[A-Z]+; keeping the config in force \(retry in \d+ ms\)$/);
    expect(seen.slice(1).some((o) => o.triggers.includes('retry')), 'retried by the timer').to.equal(true);
    // Between two reconciles (a retry timer fires only after this synchronous check).
    await r.whenIdle();
    expect(readdirSync(dirname(outputPath)).filter((n) => n.includes('.tmp-')), 'temp files').to.deep.equal([]);
    expect(haproxy.reloads).to.have.length(0);
    expect(r.counts['write-failed']).to.be.at.least(2);

    rmSync(outputPath, { recursive: true });
    await waitFor(() => haproxy.reloads.length === 1, 'the retry to apply once the path is free', 10000);
    // The reload is counted before the reconcile keeps `.last-good` (its own temp file + rename).
    await r.whenIdle();
    expect(readdirSync(dirname(outputPath)).filter((n) => n.includes('.tmp-'))).to.deep.equal([]);
    await r.close();
  });
  it('removes the candidate when the validator throws', async () => {
    const { r, outputPath, seen } = setup({
      validate: async () => {
        throw new Error('validator exploded');
      },
    });
    r.trigger('first');
    await waitFor(() => seen.length >= 1, 'the outcome');
    await r.whenIdle();
    expect(seen[0].reason).to.contain('validator exploded');
    expect(readdirSync(dirname(outputPath)).filter((n) => n.includes('.tmp-'))).to.deep.equal([]);
    await r.close();
  });
});

describe('quarantine keeps the last good rule (in-memory stand-ins)', () => {
  /** Two apps and their rules, edited by the test; each edit bumps the rule's version as ZooKeeper does. */
  class RulesSource {
    private readonly rules = new Map<string, StoredRecord>();
    set(id: string, acl: string): void {
      const version = (this.rules.get(id)?.version ?? -1) + 1;
      this.rules.set(id, { record: { Id: id, Acl: acl, Config: {} }, version, format: 2 });
    }
    async read(): Promise<DesiredState> {
      return { snapshotVersion: 1, apps: [marathonApp('/a', [{ port: 1000 }]), marathonApp('/b', [{ port: 1001 }])], rules: new Map(this.rules) };
    }
  }

  /** A validator refusing every line that holds one of `refused`, with HAProxy's alert format. */
  function refusing(refused: Set<string>) {
    return async (path: string): Promise<ValidationResult> => {
      const lines = readFileSync(path, 'utf8').split('\n').flatMap((l, i) => ([...refused].some((r) => l.includes(r)) ? [i + 1] : []));
      const output = lines.map((n) => `[ALERT]    (1) : config : parsing [${path}:${n}] : unknown converter 'nosuchconv'.`).join('\n');
      return { ok: lines.length === 0, output, timedOut: false, ms: 0, lines };
    };
  }

  async function settle(r: Reconciler, why: string): Promise<void> {
    r.trigger(why);
    await sleep(5);
    await r.whenIdle();
  }

  it('routes a quarantined rule by the last good rule this worker ran, and an app that never had one by the default rule', async () => {
    const source = new RulesSource();
    source.set('/a', 'good-a');
    source.set('/b', 'BAD-b');
    const { r, outputPath } = setup({ source, validate: refusing(new Set(['BAD'])) });
    await settle(r, 'first');
    expect(r.running!.quarantined).to.have.length(1);
    expect(r.running!.quarantined[0]).to.include({ appId: '/b', level: 'rules', fallback: 'default', ruleVersion: 0 });
    expect(r.running!.quarantined[0]).to.not.have.property('lastGoodVersion');
    expect(readFileSync(outputPath, 'utf8')).to.contain('backend ::a # good-a\n').and.contain('backend ::b # \n');

    source.set('/a', 'BAD-a');
    await settle(r, 'hint');
    const qa = r.running!.quarantined.find((q) => q.appId === '/a')!;
    expect(qa).to.include({ level: 'rules', fallback: 'last-good', ruleVersion: 1, lastGoodVersion: 0 });
    expect(qa.error).to.contain('nosuchconv');
    expect(readFileSync(outputPath, 'utf8')).to.contain('backend ::a # good-a\n');
    expect(readFileSync(outputPath, 'utf8')).to.not.contain('BAD');
    // The rule in force is the last good one: its version is what the worker reports as applied.
    expect(r.running!.rulesApplied).to.deep.equal({ '/a': 0 });
    expect(qa.since).to.be.a('number').and.at.most(Date.now());

    // Another change elsewhere: the same failing version keeps its quarantine's start and last good rule.
    await sleep(5);
    source.set('/b', 'BAD-b2');
    await settle(r, 'hint');
    const again = r.running!.quarantined.find((q) => q.appId === '/a')!;
    expect(again).to.include({ fallback: 'last-good', ruleVersion: 1, lastGoodVersion: 0, since: qa.since });
    expect(r.running!.quarantined.find((q) => q.appId === '/b')).to.include({ fallback: 'default', ruleVersion: 1 });

    // A new failing version of the rule: still the last good rule, a new start.
    source.set('/a', 'BAD-a2');
    await settle(r, 'hint');
    const third = r.running!.quarantined.find((q) => q.appId === '/a')!;
    expect(third).to.include({ fallback: 'last-good', ruleVersion: 2, lastGoodVersion: 0 });
    expect(third.since).to.be.greaterThan(qa.since!);
    expect(readFileSync(outputPath, 'utf8')).to.contain('backend ::a # good-a\n');

    // A rule that works lifts the quarantine.
    source.set('/a', 'fixed-a');
    await settle(r, 'hint');
    expect(r.running!.quarantined.map((q) => q.appId)).to.deep.equal(['/b']);
    expect(readFileSync(outputPath, 'utf8')).to.contain('backend ::a # fixed-a\n');
    expect(r.running!.rulesApplied).to.deep.equal({ '/a': 3 });
    await r.close();
  });

  it('falls back to the default rule when the last good rule fails too or is the failing one, and leaves the app out last', async () => {
    const source = new RulesSource();
    source.set('/a', 'good-a');
    const refused = new Set(['BAD']);
    const { r, outputPath } = setup({ source, validate: refusing(refused) });
    await settle(r, 'first');
    expect(r.running!.quarantined).to.deep.equal([]);

    // HAProxy (or the template) changed: the last good rule fails as well as the new one (next to
    // another change, so the candidate is not the config in force, which stays whatever fails).
    refused.add('good-a');
    source.set('/a', 'BAD-a');
    source.set('/b', 'b-rule');
    await settle(r, 'hint');
    expect(r.running!.quarantined).to.have.length(1);
    expect(r.running!.quarantined[0]).to.include({ appId: '/a', level: 'rules', fallback: 'default', ruleVersion: 1 });
    expect(r.running!.quarantined[0].error).to.contain('the last good rule v0 failed too');
    expect(readFileSync(outputPath, 'utf8')).to.contain('backend ::a # \n');
    expect(r.running!.rulesApplied).to.deep.equal({ '/b': 0 });

    await r.close();

    // The rule in force itself fails now (a template or HAProxy that changed): no other rule to
    // fall back to, so the default rule at once; and if the app's fragment still fails, the app.
    const other = new RulesSource();
    other.set('/a', 'old-a');
    const refusedToo = new Set(['BAD']);
    const { r: r2, outputPath: out2 } = setup({ source: other, validate: refusing(refusedToo) });
    await settle(r2, 'first');
    refusedToo.add('old-a');
    other.set('/b', 'b-rule');
    await settle(r2, 'hint');
    expect(r2.running!.quarantined).to.have.length(1);
    expect(r2.running!.quarantined[0]).to.include({ appId: '/a', level: 'rules', fallback: 'default', ruleVersion: 0 });
    expect(r2.running!.quarantined[0].error).to.not.contain('failed too');
    expect(readFileSync(out2, 'utf8')).to.contain('backend ::a # \n').and.contain('backend ::b # b-rule\n');

    refusedToo.add('::a #');
    other.set('/b', 'b-rule-2');
    await settle(r2, 'hint');
    expect(r2.running!.quarantined.map((q) => [q.appId, q.level])).to.deep.equal([['/a', 'app']]);
    expect(readFileSync(out2, 'utf8')).to.contain('backend ::b # b-rule-2\n');
    expect(readFileSync(out2, 'utf8')).to.not.contain('::a');
    await r2.close();
  });
});

describe('reconciler: the reload as the validation (in-memory stand-ins)', () => {
  /** Refuses (as a master would) any config with BAD in it; `haproxy -c` fails on it with a line. */
  function refusing(opts: { validatorAccepts?: boolean } = {}) {
    const h = setup({
      validateBeforeReload: false,
      validate: async (path): Promise<ValidationResult> => {
        h.validated.push(path);
        const lines = readFileSync(path, 'utf8').split('\n');
        const n = lines.findIndex((l) => l.includes('BAD')) + 1;
        if (n === 0 || opts.validatorAccepts) return { ok: true, output: '', timedOut: false, ms: 0, lines: [] };
        return { ok: false, output: `[ALERT] (1) : config : parsing [${path}:${n}] : BAD is not a fetch`, timedOut: false, ms: 0, lines: [n] };
      },
    });
    const refused: string[] = [];
    h.haproxy.reload = async (): Promise<ReloadResult> => {
      const text = readFileSync(h.outputPath, 'utf8');
      if (!text.includes('BAD')) {
        h.haproxy.reloads.push(text);
        return { ok: true, reason: 'ok', ms: 0, output: '' };
      }
      refused.push(text);
      return { ok: false, reason: 'haproxy rejected the new configuration (master kept the old workers)', ms: 0, output: '[ALERT] (2) : config : cannot load' };
    };
    return { ...h, refused };
  }

  it('reloads a change without validating it first once a config is in force', async () => {
    const { r, source, haproxy, validated, seen } = refusing();
    r.trigger('first');
    await r.whenIdle();
    // Nothing confirmed in force yet: the first candidate is validated first.
    expect(validated).to.have.length(1);
    source.acl = 'v1';
    source.version = 1;
    r.trigger('rule');
    await r.whenIdle();
    expect(seen.map((o) => o.outcome)).to.deep.equal(['reloaded', 'reloaded']);
    expect(validated, 'haproxy -c runs').to.have.length(1);
    expect(haproxy.reloads.at(-1)).to.contain('# v1');
    await r.close();
  });

  it('validates a refused candidate, quarantines the rule its alert points at, and keeps the app on its last good rule', async () => {
    const { r, source, haproxy, validated, seen, refused, outputPath } = refusing();
    r.trigger('first');
    await r.whenIdle();
    const good = readFileSync(outputPath, 'utf8');
    source.acl = 'BAD';
    source.version = 1;
    r.trigger('rule');
    await r.whenIdle();
    expect(refused, 'candidates the master refused').to.have.length(1);
    // One validation found the culprit, one checked the config without it.
    expect(validated).to.have.length(3);
    expect(seen.at(-1)!.outcome).to.equal('reloaded');
    // The rule falls back to the last one that worked here (the quarantine keeps the last good rule).
    expect(seen.at(-1)!.quarantined).to.have.length(1);
    expect(seen.at(-1)!.quarantined[0]).to.include({ appId: '/app', level: 'rules', fallback: 'last-good', ruleVersion: 1, lastGoodVersion: 0 });
    expect(seen.at(-1)!.quarantined[0].error).to.contain('BAD is not a fetch');
    // Routed by its last good rule (v0), so the config in force is the good one again.
    expect(haproxy.reloads.at(-1)).to.equal('backend ::app # v0\n').and.equal(good);
    expect(readFileSync(outputPath, 'utf8')).to.equal(haproxy.reloads.at(-1));
    expect(readFileSync(`${outputPath}.last-failed`, 'utf8')).to.contain('# BAD');
    await r.close();
  });

  it('blames a refusal that validates on the reload as before (reload-failed, last good file back)', async () => {
    const { r, source, seen, refused, outputPath } = refusing({ validatorAccepts: true });
    r.trigger('first');
    await r.whenIdle();
    const good = readFileSync(outputPath, 'utf8');
    source.acl = 'BAD';
    source.version = 1;
    r.trigger('rule');
    await waitFor(() => seen.some((o) => o.outcome === 'reload-failed'), 'the failed reload');
    expect(refused.length).to.be.at.least(1);
    expect(readFileSync(outputPath, 'utf8')).to.equal(good);
    await r.close();
  });
});
