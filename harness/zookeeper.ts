/**
 * Real ZooKeeper from the Debian package, started with java as a background process: a standalone
 * server or a 3-node loopback ensemble (for failover tests). Used by tests and by `bamboo demo`.
 */
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Zk } from '../common/adapters/zookeeper/zk.js';
import { freePorts } from './ports.js';
import { startProcess, waitFor, type Started } from './process.js';
import { tempDir } from './tmp.js';

const JARS = ['/usr/share/java/zookeeper.jar', '/usr/share/java/slf4j-simple.jar'];
const MAIN = 'org.apache.zookeeper.server.quorum.QuorumPeerMain';

export function zookeeperInstalled(): boolean {
  return JARS.every((j) => existsSync(j));
}

/** Sends a four-letter command and returns the reply ('' when the server is not answering). */
export function fourLetter(port: number, cmd: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    let out = '';
    const done = () => {
      sock.destroy();
      resolve(out);
    };
    sock.setTimeout(1000, done);
    sock.on('connect', () => sock.write(cmd));
    sock.on('data', (b) => (out += b.toString()));
    sock.on('end', done);
    sock.on('error', done);
  });
}

export interface ZkNode {
  id: number;
  clientPort: number;
  dir: string;
  proc: Started | null;
  /** 'leader' | 'follower' | 'standalone' | '' (down) */
  mode(): Promise<string>;
  start(): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface ZkServer {
  /** Connection string for clients, e.g. 127.0.0.1:2181,127.0.0.1:2182 */
  connectionString: string;
  nodes: ZkNode[];
  /** The node currently leading (ensemble) or the only node. */
  leader(): Promise<ZkNode | undefined>;
  stop(): Promise<void>;
}

async function startNodes(count: number, opts: { dir?: string } = {}): Promise<ZkServer> {
  if (!zookeeperInstalled()) throw new Error('ZooKeeper is not installed: apt-get install zookeeper (see .ci/run)');
  const base = opts.dir ?? tempDir('bamboo-zk-');
  const ports = await freePorts(count * 3);
  const nodes: ZkNode[] = [];
  for (let i = 0; i < count; i++) {
    const id = i + 1;
    const dir = join(base, `node${id}`);
    mkdirSync(join(dir, 'data'), { recursive: true });
    const lines = [
      'tickTime=500',
      'initLimit=10',
      'syncLimit=5',
      `dataDir=${join(dir, 'data')}`,
      `clientPort=${ports[i * 3]}`,
      'clientPortAddress=127.0.0.1',
      'admin.enableServer=false',
      '4lw.commands.whitelist=*',
      'maxSessionTimeout=60000',
      'minSessionTimeout=1000',
    ];
    if (count > 1) {
      for (let j = 0; j < count; j++) lines.push(`server.${j + 1}=127.0.0.1:${ports[j * 3 + 1]}:${ports[j * 3 + 2]}`);
      writeFileSync(join(dir, 'data', 'myid'), `${id}\n`);
    }
    writeFileSync(join(dir, 'zoo.cfg'), lines.join('\n') + '\n');
    const clientPort = ports[i * 3];
    const node: ZkNode = {
      id,
      clientPort,
      dir,
      proc: null,
      async mode() {
        const out = await fourLetter(clientPort, 'srvr');
        const m = /Mode: (\w+)/.exec(out);
        return m ? m[1] : '';
      },
      async start() {
        if (node.proc && node.proc.child.exitCode === null) return;
        node.proc = startProcess('java', ['-Xmx256m', '-XX:+UseSerialGC', '-cp', JARS.join(':'), MAIN, join(dir, 'zoo.cfg')], { cwd: dir });
      },
      async stop(signal: NodeJS.Signals = 'SIGKILL') {
        await node.proc?.stop(signal, 3000);
        node.proc = null;
      },
    };
    nodes.push(node);
  }
  await Promise.all(nodes.map((n) => n.start()));
  const server: ZkServer = {
    connectionString: nodes.map((n) => `127.0.0.1:${n.clientPort}`).join(','),
    nodes,
    async leader() {
      for (const n of nodes) {
        const m = await n.mode();
        if (m === 'leader' || m === 'standalone') return n;
      }
      return undefined;
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
    },
  };
  await waitForServing(server, 30000);
  return server;
}

/**
 * Waits until every running node reports a Mode (leader/follower/standalone). Fails at once, with the
 * server's output, if a node process exits (e.g. its port was taken while it was down).
 */
export async function waitForServing(server: ZkServer, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const running = server.nodes.filter((n) => n.proc);
    const dead = running.find((n) => n.proc!.child.exitCode !== null || n.proc!.child.signalCode !== null);
    if (dead) throw new Error(`ZooKeeper node ${dead.id} exited: ${dead.proc!.output().slice(-800)}`);
    const modes = await Promise.all(running.map((n) => n.mode()));
    if (modes.length > 0 && modes.every((m) => m !== '')) return;
    if (Date.now() > deadline) throw new Error('timed out waiting for ZooKeeper to serve');
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function startZooKeeper(opts: { dir?: string } = {}): Promise<ZkServer> {
  return startNodes(1, opts);
}

export function startEnsemble(size = 3): Promise<ZkServer> {
  return startNodes(size);
}

let shared: Promise<ZkServer> | null = null;

/** One standalone ZooKeeper shared by the whole test run (each test uses its own path, see uniquePath). */
export function sharedZooKeeper(): Promise<ZkServer> {
  if (!shared) shared = startZooKeeper();
  return shared;
}

/** A fresh ZooKeeper path for one test, so tests never see each other's data. */
export function uniquePath(prefix = '/test'): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/**
 * Freezes a process we started (SIGSTOP by its PID) for `ms`, then lets it go on: like a long GC
 * pause or a frozen VM. A Bamboo process frozen longer than its session timeout loses its session.
 */
export async function pauseProcess(pid: number, ms: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  try {
    await new Promise((r) => setTimeout(r, ms));
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

/**
 * A network partition between one client and ZooKeeper: a TCP relay the client connects through
 * (`connectionString`), which can be cut (every relayed connection closed, new ones closed at once)
 * and healed. Cut longer than the client's session timeout, the server expires the session, and the
 * client learns it when it reconnects after the heal: a session expiry that always happens, unlike
 * ending the session from a second client (the owner may win it back) or freezing the server (it may
 * serve the owner's reconnect before its session tracker runs).
 */
export interface Partition {
  readonly connectionString: string;
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

export async function partition(target: string): Promise<Partition> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  let isCut = false;
  const open = new Set<Socket>();
  const server = createServer((client) => {
    if (isCut) return void client.destroy();
    const upstream = connect({ host, port });
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      open.add(a);
      a.on('error', () => undefined);
      a.on('close', () => {
        open.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const cutAll = () => {
    for (const sock of open) sock.destroy();
    open.clear();
  };
  return {
    connectionString: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut() {
      isCut = true;
      cutAll();
    },
    heal() {
      isCut = false;
    },
    close() {
      cutAll();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Expires the session of a client connected through `p`: cuts the partition until `gone()` says the
 * server dropped the session (e.g. an ephemeral node of it vanished, seen by another client), heals it
 * and waits for the client to report the expiry.
 */
export async function expireThrough(p: Partition, zk: Zk, gone: () => boolean | Promise<boolean>, timeoutMs = 30000): Promise<void> {
  let expired = false;
  const onExpired = () => (expired = true);
  zk.once('expired', onExpired);
  p.cut();
  try {
    await waitFor(gone, 'the server to expire the session of the cut-off client', timeoutMs, 50);
  } finally {
    p.heal();
  }
  await waitFor(() => expired, 'the client to report the expiry after the heal', timeoutMs, 20);
}
