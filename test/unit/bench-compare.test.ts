/** bench/compare.ts: two results files aligned figure by figure, and what moved. */
import { expect } from 'chai';
import { compare, flatten } from '../../bench/compare.js';

const summary = (median: number) => ({ n: 10, min: median, p10: median, median, p90: median, p99: median, max: median, mean: median });

describe('bench/compare.ts', () => {
  it('flattens summaries to their median, aligns array elements by their key, and leaves raw samples out', () => {
    const flat = flatten({
      scenarios: {
        latency: { result: { sizes: [{ apps: 100, eventToRoutedMs: summary(20) }, { apps: 1000, eventToRoutedMs: summary(80), events: 100 }] } },
        samples: { result: { perEvent: Array.from({ length: 30 }, (_, i) => ({ routed: i })), rows: [{ cpu: 1 }, { cpu: 2 }] } },
        broken: {},
      },
    });
    expect(Object.fromEntries(flat)).to.deep.equal({
      'latency.sizes[apps=100].apps': 100,
      'latency.sizes[apps=100].eventToRoutedMs': 20,
      'latency.sizes[apps=1000].apps': 1000,
      'latency.sizes[apps=1000].eventToRoutedMs': 80,
      'latency.sizes[apps=1000].events': 100,
      'samples.rows[0].cpu': 1,
      'samples.rows[1].cpu': 2,
    });
  });

  it('reports only what both runs have and what moved beyond the threshold, a rate being better when higher', () => {
    const before = new Map([['a.ms', 100], ['b.ms', 100], ['c.getPerS', 1000], ['d.ms', 0.2], ['only.before', 5]]);
    const after = new Map([['a.ms', 110], ['b.ms', 150], ['c.getPerS', 1500], ['d.ms', 0.9], ['only.after', 5]]);
    const { common, moved } = compare(before, after, 20);
    expect(common).to.equal(4);
    expect(moved.map((m) => [m.path, m.better])).to.deep.equal([['b.ms', false], ['c.getPerS', true]]);
  });
});
