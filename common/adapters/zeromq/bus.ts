/**
 * ZeroMQ adapter: api copies publish hints, workers subscribe to every api copy.
 *
 * ZeroMQ PUB/SUB drops messages by design (slow joiner, high-water mark), so a message is only a hint:
 * it carries the publisher's id and a per-publisher sequence number; a subscriber that sees a gap (or a
 * new publisher) resyncs the full desired state. Publishers send a heartbeat so a gap is noticed even
 * when nothing else happens.
 *
 * Optional CURVE (ZeroMQ's CurveZMQ): an api copy with a keypair is a CURVE server; a worker connects to
 * a publisher only with the server public key it trusts for it, so the handshake fails against anyone
 * who does not hold the matching secret key, and the hints are encrypted. An api can also restrict its
 * subscribers to listed worker public keys (ZAP, below). Without CURVE anyone who can register a
 * publisher or reach a worker can send it hints, which is why a hint can only make a worker read
 * ZooKeeper (worker/desired.ts).
 */
import { Publisher as ZPub, Reply as ZRep, Subscriber as ZSub, curveKeyPair } from 'zeromq';
import type { Logger } from '../../log.js';
import type { SnapshotDelta } from '../../core/snapshot-delta.js';

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

/**
 * Messages larger than this are refused by a worker's socket (ZeroMQ drops the connection, which then
 * reconnects): a real hint carries at most a 64 kB delta (DELTA_MAX_BYTES, its app order included).
 */
export const HINT_MAX_BYTES = 1024 * 1024;

/** A CURVE keypair in Z85 text (40 characters each). */
export interface CurveKeys {
  publicKey: string;
  secretKey: string;
}

/** A new CURVE keypair (what `bamboo keygen` prints). */
export function newCurveKeys(): CurveKeys {
  return curveKeyPair();
}

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

/** The 32 bytes of a Z85 key (ZAP gives keys as bytes). Throws on text that is not Z85. */
export function z85Decode(text: string): Buffer {
  if (text.length % 5 !== 0) throw new Error('a Z85 text has a multiple of 5 characters');
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0, v = 0; i < text.length; i++) {
    const d = Z85.indexOf(text[i]);
    if (d < 0) throw new Error('not a Z85 character');
    v = v * 85 + d;
    if (i % 5 === 4) {
      out.writeUInt32BE(v >>> 0, ((i - 4) / 5) * 4);
      v = 0;
    }
  }
  return out;
}

/**
 * The process's ZAP handler (ZeroMQ RFC 27): libzmq asks it about every CURVE client of every socket in
 * the process, with the socket's `zapDomain`. A domain registered here admits only its listed client
 * keys; any other domain is admitted (sockets without a client list). One per process (it binds the
 * fixed inproc address), shared by every publisher in it, closed when the last one unregisters.
 */
const zap = {
  sock: null as ZRep | null,
  domains: new Map<string, Set<string>>(),
  async register(domain: string, clientKeys: readonly string[], log: Logger): Promise<void> {
    this.domains.set(domain, new Set(clientKeys.map((k) => z85Decode(k).toString('hex'))));
    if (this.sock) return;
    const sock = new ZRep({ linger: 0 });
    this.sock = sock;
    await sock.bind('inproc://zeromq.zap.01');
    void (async () => {
      try {
        for await (const frames of sock) {
          const [version, requestId, domain, address, , mechanism, key] = frames;
          const allowed = this.domains.get(domain?.toString() ?? '');
          const hex = key ? key.toString('hex') : '';
          const ok = !allowed || (mechanism?.toString() === 'CURVE' && allowed.has(hex));
          if (!ok) log.warn({ address: address?.toString(), key: hex.slice(0, 16) }, 'refused a subscriber whose CURVE key is not in ZeroMQ.CurveClientKeys');
          await sock.send([version, requestId, ok ? '200' : '400', ok ? 'OK' : 'client key not allowed', '', '']);
        }
      } catch (err) {
        if (this.sock === sock) log.warn({ err }, 'zap handler stopped');
      }
    })();
  },
  unregister(domain: string): void {
    this.domains.delete(domain);
    if (this.domains.size === 0 && this.sock) {
      this.sock.close();
      this.sock = null;
    }
  },
};

/** CURVE settings of an api copy: its keypair, and optionally the worker keys allowed to subscribe. */
export interface PublisherCurve extends CurveKeys {
  /** Worker public keys (Z85) allowed to subscribe; empty: any CURVE client. */
  clientKeys?: readonly string[];
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

  private zapDomain = '';

  constructor(
    readonly publisherId: string,
    private readonly log: Logger,
    private readonly heartbeatMs = 2000,
    /** CURVE server keys (and allowed clients); absent: no CURVE. */
    private readonly curve?: PublisherCurve,
  ) {}

  /** The public key workers must trust for this publisher ('' without CURVE). */
  get curvePublicKey(): string {
    return this.curve?.publicKey ?? '';
  }

  async start(bindAddress: string): Promise<string> {
    // Up to this many messages are queued per subscriber that stopped reading; beyond, ZeroMQ drops
    // them and the subscriber sees a sequence gap and resyncs. Hints carry at most a 64 kB delta.
    const curve = this.curve;
    const clients = curve?.clientKeys ?? [];
    if (curve && clients.length > 0) {
      this.zapDomain = `bamboo-${this.publisherId}`;
      await zap.register(this.zapDomain, clients, this.log);
    }
    const sock = new ZPub({
      linger: 0,
      sendHighWaterMark: 1000,
      ...(curve ? { curveServer: true, curvePublicKey: curve.publicKey, curveSecretKey: curve.secretKey } : {}),
      ...(this.zapDomain ? { zapDomain: this.zapDomain } : {}),
    });
    try {
      await sock.bind(bindAddress);
    } catch (err) {
      sock.close();
      if (this.zapDomain) zap.unregister(this.zapDomain);
      throw err;
    }
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
      .catch((err: Error) => this.log.warn({ err, kind }, 'publish failed'));
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
    if (this.zapDomain) zap.unregister(this.zapDomain);
    this.zapDomain = '';
  }
}

export interface HintEvent {
  hint: Hint;
  /** True when messages from this publisher were lost (or it is new/restarted): resync everything. */
  gap: boolean;
}

/** A publisher to connect to: its address, and with CURVE the server public key it must prove. */
export type PublisherEndpoint = string | { address: string; serverKey?: string };

/** The worker side: one SUB socket connected to every known publisher. */
export class HintSubscriber {
  private sock: ZSub | null = null;
  /** Connected addresses, with the server key each was connected with ('' without CURVE). */
  private readonly endpoints = new Map<string, string>();
  private readonly lastSeq = new Map<string, number>();
  private running = false;
  received = 0;
  gaps = 0;
  private curveSet = false;
  /** The CURVE server key the socket holds now (the one the next connect uses). */
  private serverKey = '';
  /** Hints received per publisher id (diagnostics and tests). */
  readonly receivedFrom = new Map<string, number>();

  constructor(
    private readonly log: Logger,
    private readonly onHint: (e: HintEvent) => void,
    /**
     * This worker's CURVE client keys, used for endpoints that name a server key (default: a new pair).
     * Socket options persist, so a subscriber is either all CURVE or all plain (PublisherDiscovery
     * never mixes them).
     */
    private curve?: CurveKeys,
  ) {}

  start(): void {
    this.sock = new ZSub({ linger: 0, receiveHighWaterMark: 1000, maxMessageSize: HINT_MAX_BYTES });
    this.sock.subscribe(TOPIC);
    this.running = true;
    void this.loop(this.sock);
  }

  /**
   * Connects to exactly this set of publishers (adds new ones, drops gone ones). An endpoint with a
   * `serverKey` is connected over CURVE and only completes the handshake with a publisher holding the
   * matching secret key; one whose key changed is reconnected.
   */
  setEndpoints(endpoints: Iterable<PublisherEndpoint>): void {
    const sock = this.sock;
    if (!sock) return;
    const want = new Map<string, string>();
    for (const e of endpoints) {
      if (typeof e === 'string') want.set(e, '');
      else want.set(e.address, e.serverKey ?? '');
    }
    for (const [a, key] of this.endpoints) {
      if (want.get(a) !== key) {
        try {
          sock.disconnect(a);
        } catch {
          /* already gone */
        }
        this.endpoints.delete(a);
        this.log.info({ address: a }, 'publisher disconnected');
      }
    }
    for (const [a, key] of want) {
      if (!this.endpoints.has(a)) {
        try {
          if (key) {
            // Options apply to the connections made after they are set: each publisher its own key.
            // Set only when they change (zeromq warns about options set after a connect).
            if (!this.curveSet) {
              this.curve ??= newCurveKeys();
              sock.curvePublicKey = this.curve.publicKey;
              sock.curveSecretKey = this.curve.secretKey;
              this.curveSet = true;
            }
            if (this.serverKey !== key) sock.curveServerKey = key;
            this.serverKey = key;
          }
          sock.connect(a);
          this.endpoints.set(a, key);
          this.log.info({ address: a, curve: Boolean(key) }, 'publisher connected');
        } catch (err) {
          this.log.warn({ address: a, err }, 'cannot connect to publisher');
        }
      }
    }
  }

  get connectedEndpoints(): string[] {
    return [...this.endpoints.keys()].sort();
  }

  private async loop(sock: ZSub): Promise<void> {
    while (this.running) {
      let frames: Buffer[];
      try {
        frames = await sock.receive();
      } catch (err) {
        if (!this.running) return;
        this.log.warn({ err }, 'receive failed');
        continue;
      }
      const hint = decodeHint(frames);
      if (!hint) continue;
      this.received++;
      this.receivedFrom.set(hint.publisher, (this.receivedFrom.get(hint.publisher) ?? 0) + 1);
      const last = this.lastSeq.get(hint.publisher);
      const gap = last === undefined || hint.seq !== last + 1;
      if (gap && last !== undefined) this.gaps++;
      this.lastSeq.set(hint.publisher, hint.seq);
      try {
        this.onHint({ hint, gap });
      } catch (err) {
        this.log.error({ err }, 'hint handler failed');
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
