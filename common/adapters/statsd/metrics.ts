/**
 * Metrics behind domain methods, so no raw client is passed around: StatsD (hot-shots, when
 * `StatsD.Enabled`) and Prometheus (common/adapters/prometheus/prom-metrics.ts, always; served on `GET /metrics`), each
 * call going to both sinks. docs/metrics.md lists every figure in both.
 *
 * StatsD (below):
 *
 * Bamboo's names are kept where Bamboo had them (`restart`, `callback.marathon`, `reload.domain`,
 * `haproxy.reload.error`, `haproxy.reload.marathon.reloaded`, `haproxy.reload.marathon.duration`,
 * `haproxy.reload.skipped`); new figures get names under the same prefix. Sending never throws: a
 * missing StatsD must not affect routing.
 */
import StatsDClient, { type StatsD } from 'hot-shots';
import type { Config } from '../../config.js';
import type { Logger } from '../../log.js';
import { PromMetrics, type ReconcileRecord } from '../prometheus/prom-metrics.js';

export type { ReconcileRecord };


export interface Metrics {
  /** A Marathon event arrived (by callback or stream). */
  marathonEvent(type: string): void;
  marathonFetch(ms: number, ok: boolean, reason?: string): void;
  /** The Marathon event stream failed or ended (`reason`: a MarathonFailure or `ended`); it is reopened. */
  marathonStreamFailed(reason: string): void;
  /** Whether a shrunken Marathon answer is held back by the shrink guard now (gauge `marathon.held`). */
  answerHeld(held: boolean): void;
  /** A held answer ended (`recovered` | `expired` | `confirmed`): counter `marathon.held.<how>`. */
  heldAnswerEnded(how: string): void;
  published(kind: string): void;
  /** A hint arrived at a worker (`gap`: the publisher's sequence skipped, a full reconcile follows). */
  hintReceived(kind: string, gap: boolean): void;
  apiError(code: string): void;
  /** A rule write or delete was acknowledged, by this credential name (`anonymous`) and action. */
  ruleChanged(credential?: string, action?: string): void;
  /** One reconcile finished with this outcome (noop | reloaded | runtime | invalid | reload-failed | write-failed). */
  reconcile(outcome: string, ms: number): void;
  /** The same reconcile with its reason class and stage timings (emitted from the outcome event). */
  reconciled(o: ReconcileRecord): void;
  reloadDone(ms: number): void;
  reloadFailed(): void;
  /** A reload waited (`reason`: interval | retry | rate | generations) this long before it could run. */
  reloadDeferred(reason: string, ms: number): void;
  quarantined(count: number): void;
  /** In the config in force: host claims lost to another app (conflicts), and labels or rule keys left out. */
  routing(conflicts: number, ignored: number): void;
  /** The ZooKeeper session connected (true) or was lost (false). */
  zookeeperConnected(connected: boolean): void;
  zookeeperSessionExpired(): void;
  /** The newest Marathon snapshot version this process knows (api: published; worker: in force). */
  snapshotVersion(version: number): void;
  /** An HTTP request was answered (`route`: the route pattern, never the URL). */
  httpRequest(method: string, route: string, status: number, seconds: number): void;
  gauge(name: string, value: number): void;
  /** The Prometheus text exposition of this process's registry; null when there is none. Never throws. */
  exposition(): Promise<{ contentType: string; text: string } | null>;
  close(): Promise<void>;
}

class StatsdMetrics implements Metrics {
  constructor(private readonly client: StatsD) {}
  marathonEvent(type: string): void {
    this.client.increment('callback.marathon');
    this.client.increment(`marathon.events.${safe(type)}`);
  }
  marathonFetch(ms: number, ok: boolean, reason?: string): void {
    this.client.timing('marathon.fetch.duration', ms);
    if (ok) this.client.increment('marathon.fetch.ok');
    else {
      this.client.increment('marathon.fetch.failed');
      if (reason) this.client.increment(`marathon.fetch.failed.${safe(reason)}`);
    }
  }
  marathonStreamFailed(reason: string): void {
    this.client.increment('marathon.stream.failed');
    this.client.increment(`marathon.stream.failed.${safe(reason)}`);
  }
  answerHeld(held: boolean): void {
    this.client.gauge('marathon.held', held ? 1 : 0);
  }
  heldAnswerEnded(how: string): void {
    this.client.increment(`marathon.held.${safe(how)}`);
  }
  published(kind: string): void {
    this.client.increment(`publish.${safe(kind)}`);
  }
  apiError(code: string): void {
    this.client.increment(`api.errors.${safe(code)}`);
  }
  hintReceived(): void {}
  ruleChanged(): void {
    this.client.increment('reload.domain');
  }
  reconcile(outcome: string, ms: number): void {
    this.client.increment(`reconcile.${safe(outcome)}`);
    this.client.timing('reconcile.duration', ms);
    if (outcome === 'noop') this.client.increment('haproxy.reload.skipped');
    if (outcome === 'invalid') this.client.increment('haproxy.reload.error');
  }
  reloadDone(ms: number): void {
    this.client.increment('haproxy.reload.marathon.reloaded');
    this.client.timing('haproxy.reload.marathon.duration', ms);
  }
  reloadFailed(): void {
    this.client.increment('haproxy.reload.error');
  }
  reloadDeferred(reason: string, ms: number): void {
    this.client.increment(`haproxy.reload.deferred.${safe(reason)}`);
    this.client.timing('haproxy.reload.deferred.duration', ms);
  }
  quarantined(count: number): void {
    this.client.gauge('quarantine.apps', count);
  }
  routing(conflicts: number, ignored: number): void {
    this.client.gauge('routing.conflicts', conflicts);
    this.client.gauge('routing.labels_ignored', ignored);
  }
  // Prometheus-only figures: StatsD keeps exactly the names it had (docs/metrics.md).
  reconciled(): void {}
  zookeeperConnected(): void {}
  zookeeperSessionExpired(): void {}
  snapshotVersion(): void {}
  httpRequest(): void {}
  gauge(name: string, value: number): void {
    this.client.gauge(safe(name), value);
  }
  async exposition(): Promise<null> {
    return null;
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.client.close(() => resolve()));
  }
}

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, '_');
}

const noop = () => undefined;
export const nullMetrics: Metrics = {
  marathonEvent: noop,
  marathonFetch: noop,
  marathonStreamFailed: noop,
  answerHeld: noop,
  heldAnswerEnded: noop,
  published: noop,
  hintReceived: noop,
  apiError: noop,
  ruleChanged: noop,
  reconcile: noop,
  reconciled: noop,
  reloadDone: noop,
  reloadFailed: noop,
  reloadDeferred: noop,
  quarantined: noop,
  routing: noop,
  zookeeperConnected: noop,
  zookeeperSessionExpired: noop,
  snapshotVersion: noop,
  httpRequest: noop,
  gauge: noop,
  exposition: async () => null,
  close: async () => undefined,
};

const METHODS = Object.keys(nullMetrics).filter((k) => k !== 'exposition' && k !== 'close') as Array<keyof Metrics>;

/**
 * Every domain call goes to each sink (a sink that throws does not keep the call from the others);
 * the exposition is the first sink's that has one; close closes all.
 */
export function teeMetrics(...sinks: Metrics[]): Metrics {
  const tee = {} as Record<string, unknown>;
  for (const m of METHODS) {
    tee[m] = (...args: unknown[]) => {
      for (const sink of sinks) {
        try {
          (sink[m] as (...a: unknown[]) => void)(...args);
        } catch {
          // A metric must never affect routing.
        }
      }
    };
  }
  tee.exposition = async () => {
    for (const sink of sinks) {
      const e = await sink.exposition().catch(() => null);
      if (e) return e;
    }
    return null;
  };
  tee.close = async () => {
    await Promise.all(sinks.map((s) => s.close().catch(() => undefined)));
  };
  return tee as unknown as Metrics;
}

/**
 * A Prometheus registry of this process (`role`: api | worker), plus StatsD when `StatsD.Enabled`.
 */
export function createMetrics(cfg: Pick<Config, 'StatsD'>, log: Logger, role = 'bamboo'): Metrics {
  const prom = new PromMetrics(role);
  const statsd = createStatsd(cfg, log);
  return statsd ? teeMetrics(prom, statsd) : prom;
}

/** Real StatsD when `StatsD.Enabled`, else null. */
function createStatsd(cfg: Pick<Config, 'StatsD'>, log: Logger): Metrics | null {
  if (!cfg.StatsD.Enabled) return null;
  const [host, port] = cfg.StatsD.Host.split(':');
  const client = new StatsDClient({
    host,
    port: Number(port),
    prefix: cfg.StatsD.Prefix,
    errorHandler: (err) => log.debug({ err }, 'statsd send failed'),
  });
  // Bamboo counted `restart` once per process start; dashboards built on it keep working.
  client.increment('restart');
  return new StatsdMetrics(client);
}
