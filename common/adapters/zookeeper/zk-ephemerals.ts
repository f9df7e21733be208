/**
 * The ephemeral nodes a process keeps (registrations, status records): created now if connected,
 * and recreated after every new session, with backoff while a freshly resumed ensemble still
 * refuses, so a registration is never left missing until the next reconnect.
 */
import type { Logger } from '../../log.js';
import { ZkNodeExistsError, ZkNoNodeError } from './zk-errors.js';

/** What the registry needs of the session (zk.ts's Zk). */
export interface EphemeralSession {
  readonly connected: boolean;
  readonly isClosing: boolean;
  readonly log: Logger;
  create(path: string, data: Buffer, mode: 'ephemeral'): Promise<string>;
  set(path: string, data: Buffer): Promise<number>;
  remove(path: string): Promise<void>;
  mkdirp(path: string): Promise<void>;
}

export class EphemeralNodes {
  private readonly nodes = new Map<string, () => Buffer>();
  private recreateTimer: NodeJS.Timeout | null = null;

  constructor(private readonly zk: EphemeralSession) {}

  async register(path: string, data: () => Buffer): Promise<void> {
    this.nodes.set(path, data);
    if (this.zk.connected) await this.ensure(path, data).catch(() => undefined);
  }

  async update(path: string): Promise<void> {
    const data = this.nodes.get(path);
    if (!data || !this.zk.connected) return;
    try {
      await this.zk.set(path, data());
    } catch (err) {
      if (err instanceof ZkNoNodeError) await this.ensure(path, data);
      else throw err;
    }
  }

  async drop(path: string): Promise<void> {
    this.nodes.delete(path);
    if (this.zk.connected) await this.zk.remove(path).catch(() => undefined);
  }

  /** Stops retrying (the session is closing). */
  stop(): void {
    if (this.recreateTimer) clearTimeout(this.recreateTimer);
    this.recreateTimer = null;
  }

  private async ensure(path: string, data: () => Buffer): Promise<void> {
    const parent = path.slice(0, path.lastIndexOf('/')) || '/';
    await this.zk.mkdirp(parent);
    try {
      await this.zk.create(path, data(), 'ephemeral');
    } catch (err) {
      if (!(err instanceof ZkNodeExistsError)) throw err;
      // A node left by our previous session may linger until that session times out: replace it.
      await this.zk.remove(path).catch(() => undefined);
      await this.zk.create(path, data(), 'ephemeral').catch(() => undefined);
    }
  }

  /**
   * Recreates every registered node. A failure (e.g. a freshly resumed ensemble still electing its
   * leader) is retried with backoff for as long as this session lasts.
   */
  async recreate(attempt = 0): Promise<void> {
    this.stop();
    let failed = false;
    for (const [path, data] of this.nodes) {
      try {
        await this.ensure(path, data);
      } catch (err) {
        failed = true;
        this.zk.log.warn({ path, attempt, err }, 'could not recreate ephemeral node, retrying');
      }
    }
    if (failed && !this.zk.isClosing) {
      const delay = Math.min(5000, 200 * 2 ** attempt);
      this.recreateTimer = setTimeout(() => {
        this.recreateTimer = null;
        if (this.zk.connected && !this.zk.isClosing) void this.recreate(attempt + 1);
      }, delay);
      this.recreateTimer.unref();
    }
  }
}
