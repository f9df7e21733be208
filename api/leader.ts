/**
 * Leader election in ZooKeeper (the classic recipe): each candidate creates an ephemeral sequential
 * node `lock-<seq>` under the election path; the lowest sequence leads; every other candidate watches
 * only its predecessor, so a departure wakes one candidate, not all of them.
 *
 * Failure rules:
 * - session expired: our node is gone, so leadership ends at once; a new node is created when the
 *   new session connects (we queue behind the candidates that stayed);
 * - disconnected: we may still lead (the server keeps our node until the session times out), but
 *   another copy takes over once it does; so leadership is given up after two thirds of the session
 *   timeout without a connection, before anyone else can be elected;
 * - a create whose reply was lost may leave a node of ours behind: nodes carry the candidate id, and
 *   a candidate without a node first adopts any node carrying its id.
 */
import { EventEmitter } from 'node:events';
import { CoalescedRunner } from '../common/coalesce.js';
import type { Logger } from '../common/log.js';
import { childPath } from '../common/adapters/zookeeper/zk-paths.js';
import { type Zk } from '../common/adapters/zookeeper/zk.js';
import { ZkNoNodeError } from '../common/adapters/zookeeper/zk-errors.js';

export interface LeaderStatus {
  candidateId: string;
  isLeader: boolean;
  /** The candidate id of the current leader, when known. */
  leaderId: string | null;
  /** Our node name (`lock-0000000003`) or null. */
  node: string | null;
}

function seqOf(name: string): number {
  const m = /(\d+)$/.exec(name);
  return m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
}

export class LeaderElection extends EventEmitter {
  private node: string | null = null;
  private leader = false;
  private leaderIdValue: string | null = null;
  private readonly checks = new CoalescedRunner(
    () => this.checkOnce(),
    // Retried on the next connect or watch; while unsure, a leader stays leader only as long as the
    // disconnect rules above allow.
    (err) => this.log.warn({ err }, 'leader election check failed'),
    () => this.closed,
  );
  private closed = true;
  private lostTimer: NodeJS.Timeout | null = null;
  private readonly onWatch = () => void this.check();
  private readonly onConnected = () => {
    if (this.lostTimer) clearTimeout(this.lostTimer);
    this.lostTimer = null;
    void this.check();
  };
  private readonly onDisconnected = () => {
    if (this.lostTimer || !this.leader) return;
    this.lostTimer = setTimeout(() => {
      this.lostTimer = null;
      if (!this.zk.connected) this.setLeader(false, 'zookeeper disconnected too long');
    }, Math.max(500, Math.floor((this.sessionTimeoutMs * 2) / 3)));
    this.lostTimer.unref();
  };
  private readonly onExpired = () => {
    this.node = null;
    this.setLeader(false, 'zookeeper session expired');
  };

  constructor(
    private readonly zk: Zk,
    /** ControlPaths.leader */
    readonly path: string,
    readonly candidateId: string,
    private readonly log: Logger,
    private readonly sessionTimeoutMs: number,
  ) {
    super();
  }

  get isLeader(): boolean {
    return this.leader;
  }

  status(): LeaderStatus {
    return { candidateId: this.candidateId, isLeader: this.leader, leaderId: this.leaderIdValue, node: this.node };
  }

  /** Joins the election; 'leader' (true/false) is emitted on every change. */
  start(): void {
    if (!this.closed) return;
    this.closed = false;
    this.zk.on('connected', this.onConnected);
    this.zk.on('disconnected', this.onDisconnected);
    this.zk.on('expired', this.onExpired);
    void this.check();
  }

  /** Leaves the election (our node is removed, so the next candidate takes over at once). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.zk.off('connected', this.onConnected);
    this.zk.off('disconnected', this.onDisconnected);
    this.zk.off('expired', this.onExpired);
    if (this.lostTimer) clearTimeout(this.lostTimer);
    await this.checks.settled();
    this.setLeader(false, 'closing');
    const node = this.node;
    this.node = null;
    if (node && this.zk.connected) await this.zk.remove(childPath(this.path, node)).catch(() => undefined);
  }

  private setLeader(value: boolean, reason: string): void {
    if (value === this.leader) return;
    this.leader = value;
    this.leaderIdValue = value ? this.candidateId : null; // unknown until the next check reads it
    this.log.info({ candidateId: this.candidateId, reason }, value ? 'stream leadership gained' : 'stream leadership lost');
    this.emit('leader', value);
  }

  /** Re-evaluates leadership; concurrent calls coalesce into one more pass. */
  check(): Promise<void> {
    return this.checks.run();
  }

  private async checkOnce(): Promise<void> {
    if (this.closed || !this.zk.connected) return;
    await this.zk.mkdirp(this.path);
    let children = await this.zk.children(this.path);
    if (this.node && !children.includes(this.node)) this.node = null; // our session's node is gone
    if (!this.node) {
      this.node = await this.adoptOrCreate(children);
      children = await this.zk.children(this.path);
      if (!children.includes(this.node)) {
        this.node = null;
        this.checks.again();
        return;
      }
    }
    const sorted = [...children].sort((a, b) => seqOf(a) - seqOf(b));
    const idx = sorted.indexOf(this.node);
    if (idx === 0) {
      this.setLeader(true, 'lowest candidate');
      return;
    }
    this.setLeader(false, 'not the lowest candidate');
    const leaderNode = await this.zk.get(childPath(this.path, sorted[0])).catch(() => null);
    this.leaderIdValue = leaderNode ? leaderNode.data.toString() : null;
    // Watch only the predecessor; when it goes we are woken and check again.
    const pred = await this.zk.exists(childPath(this.path, sorted[idx - 1]), this.onWatch);
    if (!pred) this.checks.again();
  }

  /** A node carrying our candidate id (left by a create whose reply was lost), else a new one. */
  private async adoptOrCreate(children: string[]): Promise<string> {
    const mine: string[] = [];
    for (const name of children) {
      const n = await this.zk.get(childPath(this.path, name)).catch((err: unknown) => {
        if (err instanceof ZkNoNodeError) return null;
        throw err;
      });
      if (n && n.data.toString() === this.candidateId) mine.push(name);
    }
    if (mine.length > 0) {
      mine.sort((a, b) => seqOf(a) - seqOf(b));
      for (const extra of mine.slice(1)) await this.zk.remove(childPath(this.path, extra)).catch(() => undefined);
      return mine[0];
    }
    const created = await this.zk.create(childPath(this.path, 'lock-'), Buffer.from(this.candidateId), 'ephemeral_sequential');
    return created.slice(created.lastIndexOf('/') + 1);
  }
}
