/**
 * StatsD metrics (hot-shots) behind domain methods, so no raw client is passed around.
 *
 * Bamboo's names are kept where Bamboo had them (`restart`, `callback.marathon`, `reload.domain`,
 * `haproxy.reload.error`, `haproxy.reload.marathon.reloaded`, `haproxy.reload.marathon.duration`,
 * `haproxy.reload.skipped`); new figures get names under the same prefix. Sending never throws: a
 * missing StatsD must not affect routing.
 */
import StatsDClient, { type StatsD } from 'hot-shots';
import type { Config } from './config.js';
import type { Logger } from './log.js';

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
  apiError(code: string): void;
  ruleChanged(): void;
  /** One reconcile finished with this outcome (noop | reloaded | runtime | invalid | reload-failed | write-failed). */
  reconcile(outcome: string, ms: number): void;
  reloadDone(ms: number): void;
  reloadFailed(): void;
  /** A reload waited (`reason`: interval | retry | rate | generations) this long before it could run. */
  reloadDeferred(reason: string, ms: number): void;
  quarantined(count: number): void;
  gauge(name: string, value: number): void;
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
  gauge(name: string, value: number): void {
    this.client.gauge(safe(name), value);
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
  apiError: noop,
  ruleChanged: noop,
  reconcile: noop,
  reloadDone: noop,
  reloadFailed: noop,
  reloadDeferred: noop,
  quarantined: noop,
  gauge: noop,
  close: async () => undefined,
};

/** Real StatsD when `StatsD.Enabled`, else a no-op. */
export function createMetrics(cfg: Pick<Config, 'StatsD'>, log: Logger): Metrics {
  if (!cfg.StatsD.Enabled) return nullMetrics;
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
