import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { callbackFields, EventTypeScanner, topLevelEventType } from '../../api/edge.js';
import { appsNamed, oneAppNamed } from '../../api/event-apps.js';
import { validAppId } from '../../common/core/marathon-api.js';
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

// The intake fetches only the apps an event names (api/event-apps.ts): the callback route reads the
// top-level appId/runSpecId by scanning, the stream parses the (light) payload.
describe('apps named by Marathon events (per-app fetches)', () => {
  const dir = join(FIXTURES, 'events');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

  it('reads the same top-level app id as JSON.parse from every event fixture, in any chunking', () => {
    for (const f of files) {
      const text = readFileSync(join(dir, f), 'utf8');
      const parsed = JSON.parse(text) as { appId?: unknown; runSpecId?: unknown };
      const raw = parsed.appId !== undefined ? parsed.appId : parsed.runSpecId;
      const want = typeof raw === 'string' ? raw : null;
      const bytes = Buffer.from(text);
      for (const size of [1, 7, bytes.length]) {
        const s = new EventTypeScanner();
        for (let i = 0; i < bytes.length; i += size) s.push(bytes.subarray(i, i + size));
        expect(s.appId, `${f} in ${size}-byte chunks`).to.equal(want);
      }
      expect(callbackFields(text.trim()).appId, f).to.equal(want);
    }
  });

  it('names the app of task, instance and health events, and of the deployment steps', () => {
    const named = (f: string) => {
      const text = readFileSync(join(dir, f), 'utf8');
      const p = JSON.parse(text) as { eventType: string };
      return appsNamed(p.eventType, p);
    };
    const one = files.filter((f) => /^(status_update_event|instance_changed_event|health_status_changed_event|instance_health_changed_event)__/.test(f));
    expect(one.length).to.be.greaterThan(3);
    for (const f of one) {
      const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { appId?: string; runSpecId?: string };
      const id = p.appId ?? p.runSpecId!;
      // Fixtures from Marathon 0.x carry ids like "/app" and a few are not canonical: those fetch the whole list.
      expect(named(f), f).to.deep.equal(validAppId(id) ? [id] : null);
    }
    expect(named('deployment_info__StopApplication__real-marathon-1.6_gestalt-dcos.json')).to.have.length.greaterThan(0);
    expect(named('deployment_info__empty-plan__real-marathon-1.6_gestalt-dcos.json'), 'a plan without steps').to.equal(null);
    expect(appsNamed('group_change_success', { groupId: '/' }), 'a group change: its deployment names the apps').to.deep.equal([]);
    expect(appsNamed('event_stream_attached', {})).to.equal(null);
  });

  it('names nothing it cannot rely on: a malformed id, a relative path, another type, too many apps', () => {
    expect(oneAppNamed('status_update_event', '/web/api')).to.deep.equal(['/web/api']);
    for (const bad of ['web', '/web/../other', '/web//x', '/we b', '', 5, null, `/${'a'.repeat(600)}`]) {
      expect(oneAppNamed('status_update_event', bad), String(bad)).to.equal(null);
    }
    expect(oneAppNamed('api_post_event', '/web'), 'only the one-app events take a top-level id').to.equal(null);
    const actions = Array.from({ length: 60 }, (_, i) => ({ action: 'ScaleApplication', app: `/a${i}` }));
    expect(appsNamed('deployment_info', { currentStep: { actions } })).to.equal(null);
    expect(appsNamed('deployment_info', { currentStep: { actions: [{ action: 'ScaleApplication', app: '/a/../b' }] } })).to.equal(null);
  });
});
