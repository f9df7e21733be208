/**
 * What one intake fetch asks Marathon: the apps its requests named, laid on the content this copy
 * stored, or the whole list (docs/api.md, "Per-app fetches").
 */
import type { Config } from '../common/config.js';
import type { Logger } from '../common/log.js';
import type { StoredContent } from '../common/adapters/zookeeper/snapshot.js';
import type { ParsedApps } from '../common/core/snapshot-delta.js';
import type { AppsSource, FetchRecord } from './intake-contracts.js';

/** A Marathon answer to store: the apps, their JSON texts when known, who answered and how it was asked. */
export interface Answer {
  apps: unknown[];
  texts: string[] | undefined;
  endpoint: string;
  scope: FetchRecord['scope'];
}

export class AppsFetcher {
  /** Fetches of the named apps only (GET /v2/apps/{id}). */
  appFetches = 0;
  /** Apps named by the requests not yet taken by a fetch, unless `fullPending`. */
  private readonly namedPending = new Set<string>();
  /** A request not taken yet wants the whole list. */
  private fullPending = false;
  /** The snapshot this copy last stored (or found stored with the same content), app by app. */
  private stored: StoredContent | null = null;
  /** The apps of `stored`, in its order (the base a per-app fetch changes). */
  private storedApps: unknown[] | null = null;
  /**
   * The last answer's apps with their JSON texts: the next fetch parses only apps whose text changed
   * (a cache by content, right whoever stored what since).
   */
  private lastParsed: ParsedApps | null = null;

  constructor(
    private readonly client: AppsSource,
    private readonly cfg: Pick<Config, 'Marathon'>,
    private readonly log: Logger,
  ) {}

  /** Notes a request: of `apps` when given and few enough (`Marathon.PerAppFetchMax`), else of the whole list. */
  want(apps?: readonly string[] | null): void {
    const max = this.cfg.Marathon.PerAppFetchMax;
    if (!this.fullPending) {
      if (apps && apps.length > 0 && apps.length <= max && this.client.fetchApp) {
        for (const id of apps) this.namedPending.add(id);
        if (this.namedPending.size > max) this.fullPending = true;
      } else this.fullPending = true;
      // The set is kept bounded: once the whole list is due, names no longer matter.
      if (this.fullPending) this.namedPending.clear();
    }
  }

  /** Makes the requests not taken yet ask for the whole list. */
  wantAll(): void {
    this.fullPending = true;
    this.namedPending.clear();
  }

  /** What the requests so far ask for (the apps named, or null for the whole list), and forgets them. */
  take(): string[] | null {
    const named = this.fullPending || this.namedPending.size === 0 ? null : [...this.namedPending];
    this.fullPending = false;
    this.namedPending.clear();
    return named;
  }

  /** The snapshot this copy last stored, as the next delta's base; null when unknown. */
  get lastStored(): StoredContent | null {
    return this.stored;
  }

  /** Remembers what this copy stored (`content` null: not known exactly, which `forget` also says). */
  remember(content: StoredContent | null, apps: unknown[]): void {
    this.stored = content;
    this.storedApps = content ? apps : null;
  }

  forget(): void {
    this.stored = null;
    this.storedApps = null;
  }

  /**
   * Marathon's answer: the `named` apps on the stored content when this copy holds exactly the content
   * stored at version `before`, else the whole list. Throws what MarathonClient.fetchApps throws.
   */
  async fetch(named: readonly string[] | null, before: number): Promise<Answer> {
    let answer: Answer;
    const some = named && this.stored?.version === before ? await this.fetchNamed(named) : null;
    if (some) {
      this.appFetches++;
      answer = { ...some, scope: 'apps' };
    } else {
      const r = await this.client.fetchApps(this.lastParsed);
      answer = { apps: r.apps, texts: r.texts, endpoint: r.endpoint, scope: 'full' };
    }
    this.lastParsed = answer.texts ? { texts: answer.texts, apps: answer.apps } : null;
    return answer;
  }

  /**
   * The stored content (`stored`, `storedApps`) with the named apps as GET /v2/apps/{id} answers
   * them now, or null when this must be a full fetch instead: an answer failed, or an app this copy
   * stored is gone (a 404 is not trusted to remove an app; the full list confirms it). A named app
   * that is neither stored nor known to Marathon changes nothing; a new one goes at the end.
   */
  private async fetchNamed(ids: readonly string[]): Promise<{ apps: unknown[]; texts: string[]; endpoint: string } | null> {
    const stored = this.stored;
    const base = this.storedApps;
    const fetchApp = this.client.fetchApp?.bind(this.client);
    if (!stored || !base || !fetchApp || base.length !== stored.parts.length) return null;
    const answers = await Promise.all(ids.map((id) => fetchApp(id).catch((err: unknown) => err as Error)));
    const at = new Map<string, number>();
    for (const id of ids) at.set(id, stored.ids.indexOf(id));
    const apps = base.slice();
    const texts = stored.parts.slice();
    let endpoint = '';
    for (let k = 0; k < ids.length; k++) {
      const a = answers[k];
      if (a instanceof Error) {
        this.log.debug({ appId: ids[k], err: a }, 'marathon app fetch failed; fetching the whole list');
        return null;
      }
      endpoint = a.endpoint;
      const i = at.get(ids[k])!;
      if (!a.found) {
        if (i >= 0) return null;
        continue;
      }
      if (i >= 0) {
        apps[i] = a.app;
        texts[i] = a.text;
      } else {
        apps.push(a.app);
        texts.push(a.text);
      }
    }
    return { apps, texts, endpoint };
  }
}
