import { expect } from 'chai';
import { Writable } from 'node:stream';
import { createLogger } from '../../common/log.js';
import { memoryFigures, startMemoryLog } from '../../common/memory-log.js';

/** A logger at `level` whose JSON lines are collected. */
function capture(level: string): { lines: Array<Record<string, unknown>>; log: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, log: createLogger({ level, destination, format: 'json' }) };
}

describe('memory log (common/memory-log.ts)', () => {
  it('reads the resident set, its peak, the heap in use and the heap limit', () => {
    const m = memoryFigures();
    expect(m.rssMB).to.be.above(0);
    expect(m.peakRssMB).to.be.at.least(m.rssMB);
    expect(m.heapUsedMB).to.be.above(0).and.at.most(m.heapTotalMB);
    expect(m.heapLimitMB).to.be.above(m.heapTotalMB);
  });

  it('logs the figures at debug level, and sets no timer at a higher level', async () => {
    expect(startMemoryLog(capture('info').log, 5)).to.equal(null);
    const { lines, log } = capture('debug');
    const stop = startMemoryLog(log, 5);
    expect(stop).to.be.a('function');
    const deadline = Date.now() + 10000;
    while (!lines.some((l) => l.msg === 'memory') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    stop!();
    const line = lines.find((l) => l.msg === 'memory');
    expect(line, 'a memory line').to.be.an('object');
    expect(line).to.include.keys('rssMB', 'peakRssMB', 'heapUsedMB', 'heapTotalMB', 'heapLimitMB', 'externalMB');
  });
});
