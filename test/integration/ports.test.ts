/**
 * Ports handed out to test servers and the demo (harness/ports.ts): below the kernel's ephemeral range,
 * so a socket bound to port 0 meanwhile (a backend, a status server, another process) never takes one.
 */
import { expect } from 'chai';
import { createServer, type Server } from 'node:net';
import { ephemeralRange, freePort, freePorts } from '../../harness/ports.js';

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

describe('free ports for test servers (harness/ports.ts)', () => {
  it("reads the kernel's ephemeral range, with the IANA range when it cannot", () => {
    expect(ephemeralRange('32768\t60999\n')).to.deep.equal({ low: 32768, high: 60999 });
    expect(ephemeralRange('garbage')).to.deep.equal({ low: 49152, high: 65535 });
    expect(ephemeralRange('5000 10')).to.deep.equal({ low: 49152, high: 65535 });
  });

  it('hands out distinct bindable ports below the ephemeral range, which port-0 binds never take', async () => {
    const { low } = ephemeralRange();
    const ports = await freePorts(50);
    expect(new Set(ports).size).to.equal(50);
    for (const p of ports) expect(p).to.be.within(10000, low - 1);
    // While the handed-out ports are not bound yet, 200 sockets bound to port 0 take none of them.
    const zeros: Server[] = [];
    try {
      for (let i = 0; i < 200; i++) zeros.push(await listen(0));
      const taken = zeros.map((s) => (s.address() as { port: number }).port);
      expect(taken.filter((p) => ports.includes(p))).to.deep.equal([]);
    } finally {
      for (const s of zeros) s.close();
    }
    // And each handed-out port binds.
    const bound = await Promise.all(ports.map((p) => listen(p)));
    for (const s of bound) s.close();
  });

  it('never hands out the same port twice in one process', async () => {
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) {
      const p = await freePort();
      expect(seen.has(p), `port ${p} handed out twice`).to.equal(false);
      seen.add(p);
    }
  });
});
