/** Free loopback ports for test servers (machines are shared: never assume a fixed port is free). */
import { createServer } from 'node:net';

/**
 * Every port handed out by this process. A port is free when it is handed out but is bound only later
 * by whoever asked for it (often a child process), so the kernel may offer it again meanwhile: the demo
 * once gave one api copy's HTTP port that the other copy was about to bind for ZeroMQ.
 */
const handedOut = new Set<number>();

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

/** Asks the kernel for a free TCP port on 127.0.0.1 that this process has not handed out before. */
export async function freePort(): Promise<number> {
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
