// Container HEALTHCHECK: GET /healthz (liveness) on this container's Bamboo process; exit 0 when it
// answers 2xx. Liveness, not /status or /readyz: a ZooKeeper outage must not mark every container
// unhealthy (and get it restarted by an orchestrator), since a restart cannot bring ZooKeeper back.
// The port comes from BIND (":8000", "0.0.0.0:8001", "[::]:8000", "8000"), else the role's default
// (api 8000, worker 8001). A wildcard or empty host is probed on 127.0.0.1.
const role = process.env.BAMBOO_ROLE || 'api';
const bind = (process.env.BIND || '').trim();
const defaultPort = role === 'worker' ? 8001 : 8000;

function target(b) {
  let host = '';
  let port = '';
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(b);
  if (m) {
    host = m[1] ?? m[2] ?? '';
    port = m[3];
  } else if (/^\d+$/.test(b)) {
    port = b;
  }
  if (host === '' || host === '0.0.0.0' || host === '::' || host === '*') host = '127.0.0.1';
  if (host.includes(':')) host = `[${host}]`;
  return `http://${host}:${port || defaultPort}/healthz`;
}

const url = target(bind);
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(Number(process.env.HEALTHCHECK_TIMEOUT_MS || 2500)) });
  if (res.status >= 200 && res.status < 300) process.exit(0);
  console.error(`healthcheck: ${url} answered ${res.status}`);
} catch (err) {
  console.error(`healthcheck: ${url}: ${err.cause?.code ?? err.message}`);
}
process.exit(1);
