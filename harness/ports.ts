/** Free loopback ports for test servers (machines are shared: never assume a fixed port is free). */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Every port handed out by this process. A port is free when it is handed out but is bound only later
 * by whoever asked for it (often a child process); meanwhile nothing else of ours may take it: the demo
 * once gave one api copy's HTTP port that the other copy was about to bind for ZeroMQ, and a test's
 * backend bound to port 0 once got the port its HAProxy was about to bind.
 */
const handedOut = new Set<number>();

/** The lowest port handed out; below it sit well-known and registered services' usual ports. */
const LOWEST = 10000;

/**
 * The kernel's ephemeral range (what a bind to port 0 or an outgoing connection gets). Ports are
 * handed out below it, so no socket bound to port 0, in this process or any other, can take a port
 * between the moment it is handed out and the moment its owner binds it.
 */
export function ephemeralRange(text?: string): { low: number; high: number } {
  try {
    const [low, high] = (text ?? readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high) && low > 0 && high >= low) return { low, high };
  } catch {
    // Not Linux: the IANA range, which BSD, macOS and Windows use.
  }
  return { low: 49152, high: 65535 };
}

/** Resolves whether `port` can be bound on 127.0.0.1 right now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

function askKernel(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A free TCP port on 127.0.0.1 that this process has not handed out before: a random one between
 * 10000 and the start of the ephemeral range that binds now, or, when that range is too small (an
 * unusual ip_local_port_range) or crowded, one the kernel offers.
 */
export async function freePort(): Promise<number> {
  const { low } = ephemeralRange();
  const span = low - LOWEST;
  if (span >= 1000) {
    for (let attempt = 0; attempt < 200; attempt++) {
      const port = LOWEST + Math.floor(Math.random() * span);
      if (handedOut.has(port) || !(await bindable(port))) continue;
      handedOut.add(port);
      return port;
    }
  }
  for (let attempt = 0; ; attempt++) {
    const port = await askKernel();
    if (!handedOut.has(port) || attempt >= 100) {
      handedOut.add(port);
      return port;
    }
  }
}

export async function freePorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}
