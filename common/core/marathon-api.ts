/**
 * Marathon's API as Bamboo reads it, without I/O: the paths and embeds it requests, which app ids are
 * fit for a URL, and a server-sent message typed as a Marathon event (its JSON parsed on demand).
 */

export const APPS_PATH = '/v2/apps?embed=apps.tasks&embed=apps.deployments&embed=apps.readiness';
/** The query of GET /v2/apps/{id}: the same parts embedded as APPS_PATH, with the single-app prefix. */
export const APP_EMBEDS = '?embed=app.tasks&embed=app.deployments&embed=app.readiness';

/**
 * A Marathon app id fit to put in a URL path and to compare with the stored snapshot's ids: absolute,
 * made of Marathon's id characters (lower-case letters, digits, `-`, `.`, `_` tolerated), no empty or
 * relative segment. An event's app id is untrusted: anything else is no app id (the caller fetches
 * the whole list instead).
 */
export function validAppId(id: unknown): id is string {
  return typeof id === 'string' && id.length <= 500 && /^(\/[a-z0-9_][a-z0-9._-]*)+$/i.test(id) && !/\/\.\.?(\/|$)/.test(id);
}

/** The path of GET /v2/apps/{id} with the embeds Bamboo needs. */
export function appPath(id: string): string {
  return `/v2/apps${id.split('/').map(encodeURIComponent).join('/')}${APP_EMBEDS}`;
}

/**
 * The event stream in the light plan format: Marathon 1.6 then leaves the whole app group before and
 * after (`plan.original`/`plan.target`) out of every deployment event, 1.7+ always does, and older
 * versions ignore the parameter.
 */
export const EVENTS_PATH = '/v2/events?plan-format=light';
export const SUBSCRIPTIONS_PATH = '/v2/eventSubscriptions';

/** JSON.parse, or null when the text is not JSON. */
export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

export interface MarathonEvent {
  /** `eventType` (from the `event:` line, else from the JSON's `eventType`, else `message`). */
  type: string;
  /** The `data:` text as Marathon sent it (one JSON document). */
  data: string;
  /**
   * The JSON payload, or null when `data:` is not JSON. Parsed on the first call and kept: Marathon's
   * deployment events list every app (hundreds of kB each with 1,000 apps), and a consumer that only
   * needs the type (it is on the `event:` line) should not pay for parsing them.
   */
  payload(): unknown;
}

/** One event read from the stream; its payload is parsed on demand (see MarathonEvent.payload). */
class StreamEvent implements MarathonEvent {
  private parsed: { value: unknown } | null;

  constructor(
    readonly type: string,
    readonly data: string,
    parsed?: { value: unknown },
  ) {
    this.parsed = parsed ?? null;
  }

  payload(): unknown {
    this.parsed ??= { value: safeJson(this.data) };
    return this.parsed.value;
  }
}

/**
 * Types a server-sent message: by its `event:` line when there is one (Marathon 1.x always sends
 * it), without reading the data; else (Marathon 0.9/0.10 data-only frames) by the JSON's
 * `eventType`, parsing the data once for both.
 */
export function toMarathonEvent(msg: { event?: string; data: string }): MarathonEvent {
  if (msg.event) return new StreamEvent(msg.event, msg.data);
  const value = safeJson(msg.data);
  const fromJson = value && typeof value === 'object' ? (value as { eventType?: unknown }).eventType : undefined;
  return new StreamEvent(typeof fromJson === 'string' ? fromJson : 'message', msg.data, { value });
}
