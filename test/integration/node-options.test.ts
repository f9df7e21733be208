import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { MEMORY_NODE_FLAGS, withMemoryFlags } from '../../cli/node-options.js';

describe('memory flags for the api and worker processes (cli/node-options.ts)', () => {
  it('adds the heap flags to NODE_OPTIONS, after what is there', () => {
    expect(withMemoryFlags(undefined)).to.equal(MEMORY_NODE_FLAGS.join(' '));
    expect(withMemoryFlags('--enable-source-maps')).to.equal(['--enable-source-maps', ...MEMORY_NODE_FLAGS].join(' '));
  });

  it("keeps an operator's own value of a flag", () => {
    const out = withMemoryFlags('--max-old-space-size=4096');
    expect(out.split(' ').filter((f) => f.startsWith('--max-old-space-size'))).to.deep.equal(['--max-old-space-size=4096']);
    expect(out).to.include('--max-semi-space-size=2');
  });

  it('gives a node process the heap limit it names', () => {
    // Node accepts the flags in NODE_OPTIONS (not every V8 flag is allowed there).
    const limitMB = Number(
      execFileSync(process.execPath, ['-e', 'process.stdout.write(String(require("v8").getHeapStatistics().heap_size_limit / 1048576))'], {
        env: { PATH: process.env.PATH, NODE_OPTIONS: withMemoryFlags(undefined) },
        encoding: 'utf8',
      }),
    );
    expect(limitMB).to.be.within(1024, 1100);
  });

  it('is what the systemd units and the Docker image set', () => {
    const value = MEMORY_NODE_FLAGS.join(' ');
    for (const unit of ['bamboo-api.service', 'bamboo-worker.service']) {
      expect(readFileSync(new URL(`../../deploy/systemd/${unit}`, import.meta.url), 'utf8'), unit).to.include(`Environment="NODE_OPTIONS=${value}"`);
    }
    expect(readFileSync(new URL('../../deploy/docker/Dockerfile', import.meta.url), 'utf8')).to.include(`NODE_OPTIONS="${value}"`);
  });
});
