import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { topLevelEventType } from '../../api/edge.js';
import { FIXTURES } from '../builders.js';

// The callback route reads a Marathon event's type by scanning, not parsing: it must agree with
// JSON.parse on every real event, and never take a nested "eventType" for the event's.
describe('topLevelEventType (Marathon callback bodies)', () => {
  const dir = join(FIXTURES, 'events');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

  it('reads the same type as JSON.parse from every event fixture', () => {
    expect(files.length).to.be.greaterThan(20);
    for (const f of files) {
      const text = readFileSync(join(dir, f), 'utf8');
      const parsed = JSON.parse(text) as { eventType?: unknown };
      const want = typeof parsed.eventType === 'string' ? parsed.eventType : null;
      expect(topLevelEventType(text.trim()), f).to.equal(want);
    }
  });

  it('skips nested members, strings that look like keys, and escapes', () => {
    const body = JSON.stringify({
      plan: { apps: [{ labels: { eventType: 'nested' }, cmd: 'echo "eventType": "in a string" \\\\' }] },
      note: 'a "quoted" \\"eventType\\" text',
      eventType: 'deployment_info',
    });
    expect(topLevelEventType(body)).to.equal('deployment_info');
    expect(topLevelEventType('{"a":{"eventType":"x"}}')).to.equal(null);
    expect(topLevelEventType('{"eventType":"with \\"quote\\""}')).to.equal('with "quote"');
    expect(topLevelEventType('{"eventType": 5}')).to.equal(null);
    expect(topLevelEventType('{"eventType":"unterminated')).to.equal(null);
  });

  it('reads a 450 kB deployment event (every app of 1,000 listed) in one pass', () => {
    const apps = Array.from({ length: 1000 }, (_, i) => ({ id: `/bench/app-${i}`, env: { A: 'x'.repeat(300) }, labels: { eventType: 'no' } }));
    const body = JSON.stringify({ plan: { original: { apps }, target: { apps } }, eventType: 'deployment_info', timestamp: '2024-01-01T00:00:00.000Z' });
    expect(body.length).to.be.greaterThan(450_000);
    expect(topLevelEventType(body)).to.equal('deployment_info');
  });
});
