import { expect } from 'chai';
import { FleetMonitor } from '../../api/fleet.js';
import type { FleetListing, FleetNode, SeenRecord } from '../../common/adapters/zookeeper/fleet.js';
import { parseSeenRecord } from '../../common/adapters/zookeeper/fleet.js';
import { silentLogger } from '../../common/log.js';
import type { WorkerStatus } from '../../common/adapters/zookeeper/registrations.js';

// The api's classification of the fleet on injected clocks, over an in-memory listing: stale is
// decided on the monotonic clock from what this copy watched, gone records expire by their mtime.
describe('fleet view: live, stale and gone (in-memory listing, fake clocks)', () => {
  const HOUR = 3_600_000;
  function setup(staleAfterMs = 1000, goneRetentionMs = HOUR) {
    const clock = { wall: 10 * HOUR, mono: 0 };
    const listing: FleetListing = { live: [], seen: [] };
    const pruned: Array<[string, number]> = [];
    let pruneAnswer = true;
    const gauges = new Map<string, number>();
    const store = {
      list: async (): Promise<FleetListing> => ({ live: [...listing.live], seen: [...listing.seen] }),
      prune: async (node: string, version: number) => {
        pruned.push([node, version]);
        if (pruneAnswer) listing.seen = listing.seen.filter((n) => n.node !== node);
        return pruneAnswer;
      },
    };
    const monitor = new FleetMonitor(store, { staleAfterMs, goneRetentionMs, now: () => clock.wall, monotonicNow: () => clock.mono }, { gauge: (n, v) => gauges.set(n, v) }, silentLogger());
    const live = (name: string, version: number, mtime = clock.wall): FleetNode<WorkerStatus> => ({ node: name, name, stat: { version, mtime }, record: { name } as WorkerStatus });
    const seen = (name: string, mtime: number, version = 3, stoppedAt?: number): FleetNode<SeenRecord> => ({
      node: name, name, stat: { version, mtime }, record: { name, configHash: 'h', ...(stoppedAt ? { stoppedAt } : {}) } as SeenRecord,
    });
    const states = async () => {
      const v = await monitor.read();
      return { present: Object.fromEntries(v.present.map((p) => [p.status?.name, p.state])), gone: v.gone.map((g) => `${g.name}:${g.how}`), counts: v.counts };
    };
    return { clock, listing, pruned, gauges, monitor, live, seen, states, setPrune: (b: boolean) => (pruneAnswer = b) };
  }

  it('calls a worker stale once this copy has watched its record not change for StaleAfterMs, and live again when it changes', async () => {
    const t = setup(1000);
    t.listing.live = [t.live('a', 1), t.live('b', 1)];
    expect((await t.states()).present, 'first seen: the benefit of the doubt').to.deep.equal({ a: 'live', b: 'live' });
    t.clock.mono += 800;
    t.listing.live = [t.live('a', 2), t.live('b', 1)];
    expect((await t.states()).present).to.deep.equal({ a: 'live', b: 'live' });
    t.clock.mono += 400; // b unchanged for 1200 ms, a changed 400 ms ago
    const s = await t.states();
    expect(s.present).to.deep.equal({ a: 'live', b: 'stale' });
    expect(s.counts).to.deep.equal({ live: 1, stale: 1, gone: 0 });
    expect(t.gauges.get('fleet.workers.stale')).to.equal(1);
    t.listing.live = [t.live('a', 2), t.live('b', 2)];
    expect((await t.states()).present).to.deep.equal({ a: 'live', b: 'live' });
  });

  it('does not call live workers stale when the wall clock steps: staleness is on the monotonic clock', async () => {
    const t = setup(1000);
    t.listing.live = [t.live('a', 1)];
    await t.states();
    t.clock.wall += HOUR; // an NTP step; the record's mtime is an hour behind now
    t.clock.mono += 500;
    expect((await t.states()).present).to.deep.equal({ a: 'live' });
  });

  it('lists a worker with only a last-seen record as gone (stopped or lost), and never one that has a status record', async () => {
    const t = setup();
    t.listing.live = [t.live('back', 0)];
    t.listing.seen = [t.seen('stopped', t.clock.wall - 60_000, 3, t.clock.wall - 60_000), t.seen('crashed', t.clock.wall - 120_000), t.seen('back', t.clock.wall - 2 * HOUR)];
    const s = await t.states();
    expect(s.gone).to.deep.equal(['stopped:stopped', 'crashed:lost']);
    expect(s.counts).to.deep.equal({ live: 1, stale: 0, gone: 2 });
    expect(t.pruned, 'a worker that came back keeps its record, however old').to.deep.equal([]);
    expect(t.gauges.get('fleet.workers.gone')).to.equal(2);
  });

  it('removes last-seen records older than the retention, conditional on the version read, and does not list them', async () => {
    const t = setup(1000, HOUR);
    t.listing.seen = [t.seen('old', t.clock.wall - HOUR - 1, 7), t.seen('recent', t.clock.wall - HOUR + 1000)];
    expect((await t.states()).gone).to.deep.equal(['recent:lost']);
    expect(t.pruned).to.deep.equal([['old', 7]]);
    // Rewritten meanwhile (the remove's version no longer matches) or removed by another copy: not listed either.
    t.setPrune(false);
    t.listing.seen = [t.seen('old', t.clock.wall - 2 * HOUR, 8)];
    expect((await t.states()).gone).to.deep.equal([]);
  });

  it('reads back only the known fields of a last-seen record, of the right types', () => {
    const rec = parseSeenRecord(Buffer.from(JSON.stringify({ name: 'w', configHash: 7, snapshotVersion: 'x', lastReason: 'r'.repeat(2000), stoppedAt: 5, extra: { big: true } })))!;
    expect(rec.configHash).to.equal('');
    expect(rec.snapshotVersion).to.equal(-1);
    expect(rec.lastReason.length).to.equal(500);
    expect(rec.stoppedAt).to.equal(5);
    expect(rec).to.not.have.property('extra');
    expect(parseSeenRecord(Buffer.from('not json'))).to.equal(null);
    expect(parseSeenRecord(Buffer.from('[1]'))).to.equal(null);
  });
});
