/**
 * ZooKeeper connection state and session expiries as metrics, hooked on the Zk adapter's events
 * (`connected`, `disconnected`, `expired`), so neither process edits ZooKeeper code to be observed.
 */
import type { Metrics } from '../statsd/metrics.js';
import type { Zk } from './zk.js';

/** Starts observing; returns the function that stops. */
export function observeZk(zk: Zk, metrics: Metrics): () => void {
  const up = () => metrics.zookeeperConnected(true);
  const down = () => metrics.zookeeperConnected(false);
  const expired = () => metrics.zookeeperSessionExpired();
  zk.on('connected', up);
  zk.on('disconnected', down);
  zk.on('expired', expired);
  metrics.zookeeperConnected(zk.connected);
  return () => {
    zk.off('connected', up);
    zk.off('disconnected', down);
    zk.off('expired', expired);
  };
}
