/**
 * ZeroMQ adapter: api copies publish hints, workers subscribe to every api copy.
 *
 * ZeroMQ PUB/SUB drops messages by design (slow joiner, high-water mark), so a message is only a hint:
 * it carries the publisher's id and a per-publisher sequence number; a subscriber that sees a gap (or a
 * new publisher) resyncs the full desired state. Publishers send a heartbeat so a gap is noticed even
 * when nothing else happens.
 */
import { Publisher as ZPub, Subscriber as ZSub } from 'zeromq';
import type { Logger } from './log.js';
import type { SnapshotDelta } from './snapshot-delta.js';

export const TOPIC = 'bamboo';

export type HintKind = 'marathon' | 'rules' | 'heartbeat';

/** The wire message (JSON in the second frame; the first frame is the topic `bamboo`). */
export interface Hint {
  /** Message format version. */
  v: 1;
  kind: HintKind;
  /** The publishing api copy (its registration id in ZooKeeper). */
  publisher: string;
  /** Per-publisher sequence, starting at 1; a jump means messages were lost. */
  seq: number;
  /** ZooKeeper version of the Marathon snapshot the publisher last wrote or saw (-1: none yet). */
  snapshotVersion: number;
  /** For `rules`: the app id whose rule changed. */
  appId?: string;
  /**
   * For `marathon`, when small enough: what changed since the snapshot this one replaced, so a worker
   * holding that one needs no ZooKeeper read (see snapshot-delta.ts). Absent: read ZooKeeper.
   */
  delta?: SnapshotDelta;
  /** Publisher clock, ms epoch (diagnostics only). */
  at: number;
}

export function encodeHint(h: Hint): [string, string] {
  return [TOPIC, JSON.stringify(h)];
}

/** Parses a message; null for anything malformed (never throws into the receive loop). */
export function decodeHint(frames: Buffer[]): Hint | null {
  if (frames.length < 2 || frames[0].toString() !== TOPIC) return null;
  try {
    const h = JSON.parse(frames[1].toString()) as Hint;
    if (h.v !== 1 || typeof h.publisher !== 'string' || typeof h.seq !== 'number') return null;
    return h;
  } catch {
    return null;
  }
}

/** The api side: one PUB socket per api copy. */
export class HintPublisher {
  private sock: ZPub | null = null;
  private seq = 0;
  private heartbeat: NodeJS.Timeout | null = null;
  private sending: Promise<void> = Promise.resolve();
  /** The address actually bound (port resolved when the bind used `*`). */
  boundAddress = '';
  snapshotVersion = -1;
  published = 0;

  constructor(
    readonly publisherId: string,
    private readonly log: Logger,
    private readonly heartbeatMs = 2000,
  ) {}

  async start(bindAddress: string): Promise<string> {
    // Up to this many messages are queued per subscriber that stopped reading; beyond, ZeroMQ drops
    // them and the subscriber sees a sequence gap and resyncs. Hints carry at most a 64 kB delta.
    const sock = new ZPub({ linger: 0, sendHighWaterMark: 1000 });
    await sock.bind(bindAddress);
    this.sock = sock;
    this.boundAddress = sock.lastEndpoint ?? bindAddress;
    if (this.heartbeatMs > 0) {
      this.heartbeat = setInterval(() => this.publish('heartbeat'), this.heartbeatMs);
      this.heartbeat.unref();
    }
    return this.boundAddress;
  }

  /** Publishes a hint; never throws (a lost hint is healed by the subscriber's resync). */
  publish(kind: HintKind, extra: { appId?: string; delta?: SnapshotDelta } = {}): Promise<void> {
    const sock = this.sock;
    if (!sock) return Promise.resolve();
    const hint: Hint = { v: 1, kind, publisher: this.publisherId, seq: ++this.seq, snapshotVersion: this.snapshotVersion, at: Date.now(), ...extra };
    // zeromq allows one send at a time per socket: chain them.
    this.sending = this.sending
      .then(() => sock.send(encodeHint(hint)))
      .then(() => {
        if (kind !== 'heartbeat') this.published++;
      })
      .catch((err: Error) => this.log.warn({ err: err.message, kind }, 'publish failed'));
    return this.sending;
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    const sock = this.sock;
    this.sock = null;
    if (sock) {
      await this.sending.catch(() => undefined);
      sock.close();
    }
  }
}

export interface HintEvent {
  hint: Hint;
  /** True when messages from this publisher were lost (or it is new/restarted): resync everything. */
  gap: boolean;
}

/** The worker side: one SUB socket connected to every known publisher. */
export class HintSubscriber {
  private sock: ZSub | null = null;
  private readonly endpoints = new Set<string>();
  private readonly lastSeq = new Map<string, number>();
  private running = false;
  received = 0;
  gaps = 0;

  constructor(
    private readonly log: Logger,
    private readonly onHint: (e: HintEvent) => void,
  ) {}

  start(): void {
    this.sock = new ZSub({ linger: 0, receiveHighWaterMark: 1000 });
    this.sock.subscribe(TOPIC);
    this.running = true;
    void this.loop(this.sock);
  }

  /** Connects to exactly this set of publisher addresses (adds new ones, drops gone ones). */
  setEndpoints(addresses: Iterable<string>): void {
    const sock = this.sock;
    if (!sock) return;
    const want = new Set(addresses);
    for (const a of this.endpoints) {
      if (!want.has(a)) {
        try {
          sock.disconnect(a);
        } catch {
          /* already gone */
        }
        this.endpoints.delete(a);
        this.log.info({ address: a }, 'publisher disconnected');
      }
    }
    for (const a of want) {
      if (!this.endpoints.has(a)) {
        try {
          sock.connect(a);
          this.endpoints.add(a);
          this.log.info({ address: a }, 'publisher connected');
        } catch (err) {
          this.log.warn({ address: a, err: (err as Error).message }, 'cannot connect to publisher');
        }
      }
    }
  }

  get connectedEndpoints(): string[] {
    return [...this.endpoints].sort();
  }

  private async loop(sock: ZSub): Promise<void> {
    while (this.running) {
      let frames: Buffer[];
      try {
        frames = await sock.receive();
      } catch (err) {
        if (!this.running) return;
        this.log.warn({ err: (err as Error).message }, 'receive failed');
        continue;
      }
      const hint = decodeHint(frames);
      if (!hint) continue;
      this.received++;
      const last = this.lastSeq.get(hint.publisher);
      const gap = last === undefined || hint.seq !== last + 1;
      if (gap && last !== undefined) this.gaps++;
      this.lastSeq.set(hint.publisher, hint.seq);
      try {
        this.onHint({ hint, gap });
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'hint handler failed');
      }
    }
  }

  close(): void {
    this.running = false;
    const sock = this.sock;
    this.sock = null;
    sock?.close();
  }
}
