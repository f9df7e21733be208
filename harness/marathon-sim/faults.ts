/**
 * Fault switches of one simulator. Tests flip them at any time; the server reads them on every
 * request, every event and every heartbeat, so a change takes effect at once.
 */

/** The server side the faults need to reach (implemented by server.ts). */
export interface FaultHooks {
  /** Called when stallStream changes, so held connections can resume. */
  stallChanged(stalled: boolean): void;
  /** Closes every open event stream now. */
  dropStreams(): void;
}

/** Fault injection switches; see each field. All off by default. */
export class Faults {
  /** Delay before every response (and before an event stream's headers). */
  latencyMs = 0;
  /**
   * Answer every request except /ping with this status and a Marathon-style `{"message": ...}` body
   * (e.g. 500, 503, 401). null = off.
   */
  status: number | null = null;
  /** Answer every request except /ping with a 502 text/html page, as a proxy in front of Marathon would. */
  htmlError = false;
  /** Cut every JSON body in half (status 200, valid framing, unparsable JSON). */
  truncateJson = false;
  /** Serve `{"apps":[]}` from GET /v2/apps (and 404 from GET /v2/apps/{id}), as a Marathon that lost its state would. */
  emptyApps = false;
  /**
   * Serve only the first N apps (in list order) from GET /v2/apps (the others 404 from GET /v2/apps/{id}),
   * as a Marathon restored from an old backup or a proxy answering for the wrong one would. null = off.
   */
  keepApps: number | null = null;
  /**
   * App ids that GET /v2/apps/{id} answers 404 for while the list still has them, as a lagging
   * Marathon follower or a proxy routing to the wrong Marathon would.
   */
  readonly unknownApps = new Set<string>();
  private stalled = false;

  constructor(private readonly hooks: FaultHooks) {}

  /**
   * While true, event streams send nothing at all: no events (they are lost, not queued) and no
   * heartbeats; new stream requests get no headers until the stall ends.
   */
  get stallStream(): boolean {
    return this.stalled;
  }

  set stallStream(value: boolean) {
    if (value === this.stalled) return;
    this.stalled = value;
    this.hooks.stallChanged(value);
  }

  /** Closes every open event stream now (clients see the connection end). */
  dropStream(): void {
    this.hooks.dropStreams();
  }

  /** Turns every fault off. */
  reset(): void {
    this.latencyMs = 0;
    this.status = null;
    this.htmlError = false;
    this.truncateJson = false;
    this.emptyApps = false;
    this.keepApps = null;
    this.unknownApps.clear();
    this.stallStream = false;
  }
}
