/**
 * Callback mode's subscriptions: this api's callback URL kept registered on every Marathon endpoint,
 * and removed by the last api copy to stop (docs/api.md, "Callback mode").
 */
import type { Logger } from '../common/log.js';
import { redactUrl } from '../common/config-redact.js';
import type { AppsSource, IntakeStatus, SubscriptionState } from './intake-contracts.js';

export class CallbackSubscriptions {
  private readonly subs = new Map<string, { state: SubscriptionState; error: string | null; checkedAt: number | null; warned: boolean }>();

  constructor(
    private readonly client: AppsSource,
    private readonly callbackUrl: string,
    private readonly log: Logger,
    /** Called when a subscription was (re)registered: events may have been missed meanwhile. */
    private readonly onSubscribed: () => void,
  ) {
    for (const e of client.endpoints) this.subs.set(e, { state: 'unknown', error: null, checkedAt: null, warned: false });
  }

  /** Makes sure every endpoint has our callback URL; re-subscribes when Marathon forgot it. */
  async check(): Promise<void> {
    const { client, log } = this;
    await Promise.all(
      client.endpoints.map(async (endpoint) => {
        const s = this.subs.get(endpoint)!;
        const where = redactUrl(endpoint);
        try {
          const urls = await client.subscriptions(endpoint);
          let state: SubscriptionState;
          if (urls === 'unsupported') state = 'unsupported';
          else if (urls.includes(this.callbackUrl)) state = 'subscribed';
          else {
            state = (await client.subscribe(endpoint, this.callbackUrl)) === 'ok' ? 'subscribed' : 'unsupported';
            if (state === 'subscribed') {
              log.info({ endpoint: where, callbackUrl: this.callbackUrl }, 'marathon event subscription registered');
              // Events may have been missed while we were not subscribed.
              this.onSubscribed();
            }
          }
          if (state === 'unsupported' && !s.warned) {
            s.warned = true;
            log.warn(
              { endpoint: where },
              'marathon has no event subscriptions API (removed in Marathon 1.5): set Marathon.UseEventStream=true (MARATHON_USE_EVENT_STREAM=true) to read /v2/events instead',
            );
          }
          Object.assign(s, { state, error: state === 'unsupported' ? 'no /v2/eventSubscriptions (Marathon 1.5+): use Marathon.UseEventStream' : null, checkedAt: Date.now() });
        } catch (err) {
          Object.assign(s, { state: 'error', error: (err as Error).message, checkedAt: Date.now() });
          log.warn({ endpoint: where, err }, 'marathon event subscription check failed');
        }
      }),
    );
  }

  /**
   * Removes the subscription when no other api copy runs (`otherCopies`, excluding this one): they
   * share Bamboo.Endpoint, and unsubscribing it would silence Marathon for all of them.
   */
  async removeIfLast(otherCopies?: () => Promise<number>): Promise<void> {
    const { client, log } = this;
    let others = 0;
    try {
      others = otherCopies ? await otherCopies() : 0;
    } catch (err) {
      log.warn({ err }, 'cannot tell whether other api copies run; keeping the marathon subscription');
      return;
    }
    if (others > 0) {
      log.info({ others }, 'other api copies still run; keeping the marathon subscription');
      return;
    }
    await Promise.all(
      client.endpoints.map(async (endpoint) => {
        if (this.subs.get(endpoint)?.state !== 'subscribed') return;
        try {
          await client.unsubscribe(endpoint, this.callbackUrl);
          log.info({ endpoint: redactUrl(endpoint) }, 'marathon event subscription removed');
        } catch (err) {
          log.warn({ endpoint: redactUrl(endpoint), err }, 'marathon event subscription removal failed');
        }
      }),
    );
  }

  status(): IntakeStatus['subscriptions'] {
    return [...this.subs.entries()].map(([e, s]) => ({ endpoint: redactUrl(e), state: s.state, error: s.error, checkedAt: s.checkedAt }));
  }
}
