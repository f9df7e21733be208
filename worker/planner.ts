/**
 * The plan stage: desired state -> template data -> haproxy.cfg text (port policy, quarantine) ->
 * hash compared with the config in force -> a runtime change, or a validated candidate on disk.
 * Its I/O: the candidate file, the injected validator, `.last-good` after a validation timeout when
 * no running model is known. The loop owns the running model and passes it in.
 */
import { readFile } from 'node:fs/promises';
import { sha256 } from '../common/core/hash.js';
import { alertSummary } from '../common/core/reload-alerts.js';
import { type ValidationResult } from '../common/adapters/haproxy/commands.js';
import { diffConfigs } from '../common/core/config-diff.js';
import type { Logger } from '../common/log.js';
import type { HAProxySettings, ServiceRecord, TemplateData } from '../common/core/model.js';
import { heldPorts, portRefusals, settingPorts, type Holder, type PortRange } from '../common/core/port-policy.js';
import { appsAtLines, TemplateError, type Origin, type Renderer } from '../common/core/render.js';
import type { AllowedDomains } from '../common/core/labels.js';
import { hostOwners } from '../common/core/routing.js';
import { buildTemplateData, type BuildTemplateDataInput } from '../common/core/template-data.js';
import { TemplateDataMemo } from '../common/core/template-memo.js';
import { quarantineCulprits, reloadBlame, timeoutBlame } from './blame.js';
import type { ConfigFiles } from './config-files.js';
import type { DesiredState, QuarantinedApp, RunningModel, StageTimes } from './outcome.js';
import { QuarantineSince, recheck, rulesInForce, withFallbacks, type GoodRule } from './last-good.js';
import type { ApplyPlan, Plan, RuntimePlan } from './plan.js';
import type { QuarantineMemory } from './quarantine.js';
import { ValidationPolicy } from './validation-policy.js';

export interface PlannerOptions {
  renderer: Renderer;
  settings: HAProxySettings;
  /** Validates a candidate file (built-in `haproxy -c` or ReloadValidationCommand). */
  validate: (path: string) => Promise<ValidationResult>;
  files: ConfigFiles;
  /** Quarantine kept across reconciles (refused reloads, validation timeouts). */
  memory: QuarantineMemory;
  commandTimeoutMs: number;
  /** HAProxy.ServerSlotHeadroom (percent). */
  slotHeadroomPercent?: number;
  /** HAProxy.DynamicServers with the Runtime API on: backends grow through `add server`, without spare slots. */
  dynamicServers?: boolean;
  /** HAProxy.TcpPortRange: ports apps may bind (default: any; the edge's ports and clashes are refused regardless). */
  tcpPortRange?: PortRange;
  /**
   * The rules in force when the worker started (read from `<OutputPath>.last-good-rules`): each
   * app's last good rule until this worker has applied a config of its own.
   */
  rulesAtStart?: ReadonlyMap<string, GoodRule>;
  /** Labels.AllowedDomains and Worker.Groups, parsed (docs/labels.md); absent: no restriction, every app. */
  routing?: { allowedDomains?: AllowedDomains; groups?: readonly string[] };
  /**
   * Validate every candidate before its reload (default true; command mode always does). False:
   * managed mode's reload is the validation, except where worker/validation-policy.ts says otherwise.
   */
  validateBeforeReload?: boolean;
  log: Logger;
}

/** The most quarantine rounds (render + validate) one reconcile tries before giving up. */
const MAX_QUARANTINE_ROUNDS = 6;
/** Validation failures remembered by config hash (a known-bad config is not validated again). */
const INVALID_CACHE_SIZE = 16;

export class Planner {
  private readonly invalidCache = new Map<string, ValidationResult>();
  /** Per-app template data of the last build: a one-app change rebuilds one app (snapshots are never mutated). */
  private readonly dataMemo = new TemplateDataMemo();
  /** Ports apps bind in the running config, by its hash (the port policy's incumbents). */
  private heldCache: { hash: string; held: Map<number, Holder> } | null = null;
  /** Host owners in the running config, by its hash (host conflicts' incumbents). */
  private ownersCache: { hash: string; owners: Map<string, string> } | null = null;
  /** Ports of HAProxy.HttpBind, StatsBind and HttpsBind: the edge's whether or not the template binds them. */
  private readonly edgePorts: number[];
  /** When each quarantine began on this worker (shown as `since`). */
  private readonly since = new QuarantineSince();

  private readonly validation: ValidationPolicy;

  constructor(private readonly o: PlannerOptions) {
    this.edgePorts = settingPorts([o.settings.HttpBind, o.settings.StatsBind, o.settings.HttpsBind ?? '']);
    this.validation = new ValidationPolicy(o.validateBeforeReload ?? true);
  }

  /**
   * Builds the template data (tasks keep the slots they have in the running model), renders,
   * compares; with `allowRuntime`, a change confined to servers is returned as a `runtime` plan
   * before any validation. Otherwise validates, quarantining apps that break the config.
   */
  async plan(desired: DesiredState, running: RunningModel | null, allowRuntime: boolean, stages: StageTimes): Promise<Plan> {
    const plan = await this.planRounds(desired, running, allowRuntime, stages);
    // An invalid plan may have stopped before finding every quarantine: it forgets no start.
    return { ...plan, quarantined: this.since.stamp(plan.quarantined, Date.now(), plan.kind !== 'invalid') };
  }

  private async planRounds(desired: DesiredState, running: RunningModel | null, allowRuntime: boolean, stages: StageTimes): Promise<Plan> {
    const services: Record<string, ServiceRecord> = {};
    for (const [id, stored] of desired.rules) services[id] = stored.record;
    const slots = { previous: running?.slots ?? null, headroomPercent: this.o.slotHeadroomPercent, dynamic: this.o.dynamicServers };
    const { data: full, warnings } = await stages.timed('build', () => buildTemplateData({ apps: desired.apps, services, now: Date.now(), slots, memo: this.dataMemo, routing: this.routing(running) }));
    if (warnings.length) this.o.log.debug({ warnings: warnings.slice(0, 20), count: warnings.length }, 'template data warnings');

    // Apps quarantined by an earlier reconcile for a refused reload or a validation timeout stay
    // out while they are unchanged (worker/quarantine.ts). A quarantined rule routes by the last
    // good one this worker runs, when it has one (worker/last-good.ts).
    const good = this.goodRules(running);
    const quarantine = new Map([...this.o.memory.inForce(full)].map(([id, q]) => [id, recheck(q, good)]));
    /** Quarantined here for a validation timeout: remembered once a config without them validates. */
    const suspects = new Map<string, QuarantinedApp>();
    let timeoutStage = 0;
    const snapshotVersion = desired.snapshotVersion;
    let lastHash: string | null = null;
    for (let round = 0; round < MAX_QUARANTINE_ROUNDS; round++) {
      let data: TemplateData;
      let rendered: { text: string; origins: Origin[] };
      try {
        // Renders, then quarantines apps whose listeners the port policy refuses (and renders again).
        ({ data, rendered } = await stages.timed('render', () => this.renderAllowed(full, quarantine, running, good)));
      } catch (err) {
        const msg = err instanceof TemplateError ? err.message : `render failed: ${(err as Error).message}`;
        const quarantined = [...quarantine.values()].sort((a, b) => (a.appId < b.appId ? -1 : 1));
        return { kind: 'invalid', reason: `template failed: ${msg}`, hash: null, quarantined, snapshotVersion };
      }
      const quarantined = [...quarantine.values()].sort((a, b) => (a.appId < b.appId ? -1 : 1));
      const hash = await stages.timed('render', () => sha256(rendered.text));
      lastHash = hash;
      if (running?.confirmed && hash === running.hash) {
        // Without the suspects of a validation timeout the config is the one in force (validated
        // before): the timeout was theirs.
        if (suspects.size > 0) this.o.memory.remember(full, [...suspects.values()]);
        return { kind: 'unchanged', hash, data, origins: rendered.origins, quarantined, rulesApplied: rulesIn(data, desired, quarantine), snapshotVersion };
      }
      // Only servers changed (task churn)? Then no validation: the Runtime API applies the
      // difference, which only touches addresses, ports, weights and states of existing servers.
      let notRuntime: string | null = null;
      if (allowRuntime && running) {
        const runningText = running.text;
        const diff = await stages.timed('runtime', () => diffConfigs(runningText, rendered.text, { dynamic: this.o.dynamicServers }));
        if (diff.runtime) {
          // Only servers differ from the config in force: as above.
          if (suspects.size > 0) this.o.memory.remember(full, [...suspects.values()]);
          return {
            kind: 'runtime', text: rendered.text, hash, data, origins: rendered.origins, quarantined,
            rulesApplied: rulesIn(data, desired, quarantine), snapshotVersion, changes: diff.changes,
          };
        }
        notRuntime = diff.reason;
      }

      let result = this.invalidCache.get(hash);
      let tempPath: string | null = null;
      if (!result && suspects.size === 0 && this.validation.validateFirst(rendered.text, running) === null) {
        // Managed mode: the master's reload parses it once; a refusal is validated then (checkRefused).
        const text = rendered.text;
        tempPath = await stages.timed('install', () => this.o.files.writeTemp(text));
        const rulesApplied = rulesIn(data, desired, quarantine);
        return { kind: 'apply', tempPath, text, hash, data, origins: rendered.origins, quarantined, rulesApplied, snapshotVersion, warnings, notRuntime, unvalidated: true };
      }
      if (!result) {
        const text = rendered.text;
        tempPath = await stages.timed('validate', () => this.o.files.writeTemp(text));
        const path = tempPath;
        // The validator never rejects by contract; should one do so, the candidate still goes.
        result = await stages.timed('validate', () => this.o.validate(path)).catch(async (err: unknown) => {
          await this.o.files.discard(path);
          throw err;
        });
        if (!result.ok) {
          await this.o.files.discard(tempPath);
          tempPath = null;
          await this.o.files.keepLastFailed(rendered.text, `validation failed:\n${result.output}`);
          // A slow validation may be the machine's load, not the config: not remembered as invalid.
          if (!result.timedOut && result.limit !== 'cpu') this.rememberInvalid(hash, result);
        }
      }
      if (result.ok && tempPath) {
        // A config without the suspects of a validation timeout validated well within the timeout:
        // the timeout was theirs, not the machine's load, so they stay out until they change.
        if (suspects.size > 0 && result.ms < this.o.commandTimeoutMs / 2) this.o.memory.remember(full, [...suspects.values()]);
        const rulesApplied = rulesIn(data, desired, quarantine);
        return { kind: 'apply', tempPath, text: rendered.text, hash, data, origins: rendered.origins, quarantined, rulesApplied, snapshotVersion, warnings, notRuntime };
      }
      if (result.timedOut || (result.limit === 'cpu' && result.lines.length === 0)) {
        // A timeout (or the CPU-time limit, e.g. a pattern file that never ends) names no line. Leave
        // out what changed since the last good config (rules first, then apps) and validate again, so
        // one slow rule cannot stop every other update.
        const cause = result.timedOut ? `validation timed out after ${this.o.commandTimeoutMs} ms` : result.limitReason ?? 'validation stopped by the CPU-time limit';
        const more = await this.timeoutSuspects(data, rendered, timeoutStage++, cause, running, (id) => desired.rules.get(id)?.version, good);
        if (more.length === 0) {
          return { kind: 'invalid', reason: cause, hash, quarantined, snapshotVersion };
        }
        for (const q of more) {
          quarantine.set(q.appId, q);
          suspects.set(q.appId, q);
        }
        this.o.log.warn({ apps: more.map((q) => q.appId), level: more[0].level, round }, 'validation timed out; quarantining what changed since the last good config');
        continue;
      }
      if (result.limitReason && result.lines.length === 0) {
        return { kind: 'invalid', reason: result.limitReason, hash, quarantined, snapshotVersion };
      }

      // Quarantine: the apps whose fragments the errors point at (worker/blame.ts).
      const culprits = appsAtLines(rendered.origins, result.lines);
      const progress = quarantineCulprits(culprits, result, rendered.origins, data, (id) => desired.rules.get(id)?.version, quarantine, good);
      if (!progress) {
        const where = culprits.length ? '' : ' (not attributable to an app)';
        return { kind: 'invalid', reason: `validation failed${where}: ${alertSummary(result.output)}`, hash, quarantined, snapshotVersion };
      }
      this.o.log.warn({ apps: culprits, round }, 'quarantining apps whose fragments fail validation');
    }
    return {
      kind: 'invalid',
      reason: `validation failed after ${MAX_QUARANTINE_ROUNDS} quarantine rounds`,
      hash: lastHash,
      quarantined: [...quarantine.values()],
      snapshotVersion,
    };
  }

  /**
   * While a storm bound holds a reload: the desired state rendered with the rules in force (a rule
   * change is what needs the reload), the newest apps and tasks, and the quarantine in force; a
   * `runtime` plan when that differs from the running config only in servers, else null.
   */
  async heldRuntime(desired: DesiredState, running: RunningModel & { data: TemplateData }, stages: StageTimes): Promise<RuntimePlan | null> {
    const slots = { previous: running.slots, headroomPercent: this.o.slotHeadroomPercent, dynamic: this.o.dynamicServers };
    const { data: full } = await stages.timed('build', () => buildTemplateData({ apps: desired.apps, services: running.data.Services, now: Date.now(), slots, memo: this.dataMemo, routing: this.routing(running) }));
    const quarantine = new Map(running.quarantined.map((q) => [q.appId, q]));
    const data = quarantine.size === 0 ? full : withFallbacks(full, quarantine, this.goodRules(running));
    const rendered = await stages.timed('render', () => this.o.renderer.render(data, this.o.settings));
    const hash = await sha256(rendered.text);
    if (hash === running.hash) return null;
    const diff = await stages.timed('runtime', () => diffConfigs(running.text, rendered.text, { dynamic: this.o.dynamicServers }));
    if (!diff.runtime) return null;
    return {
      kind: 'runtime', text: rendered.text, hash, data, origins: rendered.origins, quarantined: running.quarantined,
      rulesApplied: running.rulesApplied, snapshotVersion: desired.snapshotVersion, changes: diff.changes,
    };
  }

  /**
   * After the master refused a candidate that was not validated first: validates it now. True when
   * it is invalid; it is then remembered as such, so planning the same desired state again takes
   * the validation's quarantine rounds (rules first, then the app). False: it validates (the master
   * refused it for something `haproxy -c` does not check, e.g. a port it cannot bind).
   */
  async checkRefused(plan: ApplyPlan, stages: StageTimes): Promise<boolean> {
    const text = plan.text;
    const path = await stages.timed('validate', () => this.o.files.writeTemp(text));
    let result: ValidationResult;
    try {
      result = await stages.timed('validate', () => this.o.validate(path));
    } finally {
      await this.o.files.discard(path);
    }
    // A timeout or a limit names no line here; the refusal's own alerts are used instead.
    if (result.ok || result.timedOut || result.limit) return false;
    this.rememberInvalid(plan.hash, result);
    return true;
  }

  /**
   * After a refused reload: the apps HAProxy's alerts blame (through the line origins). When the
   * alerts blame no app nor the edge and the same kind of failure `repeated`, the rules and apps
   * changed since the last good config instead, so an unattributable failure cannot stop every
   * later change. Empty: nothing to quarantine (retry with backoff).
   */
  blameFailedReload(plan: ApplyPlan, previous: RunningModel | null, output: string, repeated: boolean): QuarantinedApp[] {
    const blamed = reloadBlame(plan, previous, output, repeated, this.o.files.outputPath, () => this.goodRules(previous));
    return this.since.stamp(blamed, Date.now(), false);
  }

  /**
   * Renders the data without the quarantined apps, then applies the port policy to the text: apps
   * binding a port the policy refuses are quarantined (left out entirely: the listener comes from
   * their Marathon data) and the rest rendered again. Each pass quarantines at least one more app.
   */
  private renderAllowed(
    full: TemplateData,
    quarantine: Map<string, QuarantinedApp>,
    running: RunningModel | null,
    good: ReadonlyMap<string, GoodRule>,
  ): { data: TemplateData; rendered: { text: string; origins: Origin[] } } {
    for (;;) {
      const data = quarantine.size === 0 ? full : withFallbacks(full, quarantine, good);
      const rendered = this.o.renderer.render(data, this.o.settings);
      const refused = portRefusals({
        text: rendered.text,
        origins: rendered.origins,
        range: this.o.tcpPortRange ?? { min: 1, max: 65535 },
        reserved: this.edgePorts,
        held: () => this.heldPorts(running),
      }).filter((r) => quarantine.get(r.appId)?.level !== 'app');
      if (refused.length === 0) return { data, rendered };
      for (const r of refused) quarantine.set(r.appId, { appId: r.appId, level: 'app', error: `port policy: ${r.reason}` });
      this.o.log.warn({ apps: refused.map((r) => r.appId), reasons: refused.slice(0, 5).map((r) => r.reason) }, 'quarantining apps whose ports the port policy refuses');
    }
  }

  /**
   * Each app's rule in the config this worker runs: the running model's, or before this worker
   * applied anything, the rules kept beside the last good config (PlannerOptions.rulesAtStart).
   */
  private goodRules(running: RunningModel | null): ReadonlyMap<string, GoodRule> {
    return rulesInForce(running) ?? this.o.rulesAtStart ?? new Map<string, GoodRule>();
  }

  /** The routing options, with the hosts of the config in force as incumbents (they keep their hosts). */
  private routing(r: RunningModel | null): BuildTemplateDataInput['routing'] {
    if (!r?.data) return this.o.routing;
    if (this.ownersCache?.hash !== r.hash) this.ownersCache = { hash: r.hash, owners: hostOwners(r.data.Apps) };
    return { ...this.o.routing, incumbents: this.ownersCache.owners };
  }

  private heldPorts(r: RunningModel | null): Map<number, Holder> {
    if (!r) return new Map();
    if (this.heldCache?.hash !== r.hash) this.heldCache = { hash: r.hash, held: heldPorts(r.text, r.origins) };
    return this.heldCache.held;
  }

  /**
   * After a validation timeout: the rules changed since the last good config or, when none did, the
   * apps changed since then. Nothing after two such rounds, or without any last good config.
   */
  private async timeoutSuspects(
    data: TemplateData,
    rendered: { text: string; origins: Origin[] },
    stage: number,
    cause: string,
    running: RunningModel | null,
    versionOf: (appId: string) => number | undefined,
    good: ReadonlyMap<string, GoodRule>,
  ): Promise<QuarantinedApp[]> {
    if (stage >= 2) return [];
    // An adopted master's config is not known: the last good file is what this host last applied.
    const lastGood = running ?? (await readFile(this.o.files.lastGoodPath, 'utf8').then((text) => ({ data: null, text }), () => null));
    if (!lastGood) return [];
    return timeoutBlame(lastGood, data, rendered, cause, versionOf, good);
  }

  private rememberInvalid(hash: string, result: ValidationResult): void {
    this.invalidCache.set(hash, result);
    if (this.invalidCache.size > INVALID_CACHE_SIZE) this.invalidCache.delete(this.invalidCache.keys().next().value as string);
  }
}

/** App id -> rule version of every service record the template data carries (a last good rule's own). */
function rulesIn(data: TemplateData, desired: DesiredState, quarantine: ReadonlyMap<string, QuarantinedApp>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of Object.keys(data.Services)) {
    const q = quarantine.get(id);
    const stored = desired.rules.get(id);
    if (q?.fallback === 'last-good' && q.lastGoodVersion !== undefined) out[id] = q.lastGoodVersion;
    else if (stored) out[id] = stored.version;
  }
  return out;
}
