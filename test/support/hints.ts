/** Hints of one api copy, as a worker would receive them over ZeroMQ. */
import { Subscriber } from 'zeromq';
import type { RunningApi } from '../../api/main.js';
import { decodeHint, type Hint } from '../../common/adapters/zeromq/bus.js';
import { waitFor } from '../../harness/process.js';

export interface Hints {
  all: Hint[];
  marathon(): Hint[];
  close(): void;
}

/** A ZeroMQ subscriber collecting every hint of one api copy, resolved once its subscription is live. */
export async function listenHints(api: RunningApi): Promise<Hints> {
  const sub = new Subscriber({ linger: 0 });
  sub.connect(api.registration.zmq);
  sub.subscribe('bamboo');
  const all: Hint[] = [];
  void (async () => {
    for await (const frames of sub) {
      const h = decodeHint(frames as Buffer[]);
      if (h) all.push(h);
    }
  })().catch(() => undefined);
  // ZeroMQ's slow joiner: send heartbeats until one arrives, proving the subscription is live.
  await waitFor(() => {
    if (all.length > 0) return true;
    void api.publisher.publish('heartbeat');
    return false;
  }, 'first hint (heartbeat)', 5000, 20);
  return { all, marathon: () => all.filter((h) => h.kind === 'marathon'), close: () => sub.close() };
}
