/**
 * Scenario 7, edge changes side by side (issue 19): on the demo stack grown to N apps (managed
 * HAProxy, HTTPS on), three kinds of change are made in turn, round after round, and each is timed
 * until HAProxy serves it:
 *
 * - **certificate**: the certificate of `secure.demo.local` is renewed in HAProxy.CertDir (a new
 *   serial, written to a dot file and renamed over the old bundle, as certbot and lego replace files);
 *   the clock stops at the first new TLS connection (SNI `secure.demo.local`) that receives the new
 *   serial;
 * - **label**: one bench app gets a new `HAPROXY_0_VHOST` through the Marathon simulator (a
 *   configuration change: api_post_event, deployment); the clock stops at the first request with that
 *   Host that the app answers;
 * - **rule**: another bench app gets a host rule through the api's REST API (`PUT`); the clock stops
 *   at the first request with that Host that the app answers.
 *
 * Each change starts on an idle worker (past its minimum reload interval), so pacing is not what is
 * measured. The HAProxy master's reload count is read around every change: a certificate renewal
 * goes through the Runtime API and should reload nothing.
 */
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect } from 'node:tls';
import { httpGet } from '../../harness/http.js';
import { withOverrides, type Ctx } from '../lib/context.js';
import { startDemoStack, type DemoStack } from '../lib/stack.js';
import { round, summarize } from '../lib/stats.js';

export interface EdgeParams {
  apps: number;
  samples: number;
  warmup: number;
}

export function edgeParams(ctx: Ctx): EdgeParams {
  return withOverrides(ctx, 'edge', ctx.smoke ? { apps: 20, samples: 2, warmup: 0 } : { apps: 1000, samples: 15, warmup: 1 });
}

const TIMEOUT_MS = 60000;

/** The serial number of the certificate a new TLS connection to HAProxy gets for `servername` ("" on failure). */
function servedSerial(port: number, servername: string): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, timeout: 2000 }, () => {
      const serial = sock.getPeerCertificate().serialNumber ?? '';
      sock.destroy();
      resolve(serial.toUpperCase());
    });
    sock.on('error', () => resolve(''));
    sock.on('timeout', () => {
      sock.destroy();
      resolve('');
    });
  });
}

/** Polls `probe` with no pause (each poll is a new connection) until it is true; the moment it was. */
async function pollUntil(probe: () => Promise<boolean>, what: string): Promise<{ at: number; polls: number }> {
  const deadline = performance.now() + TIMEOUT_MS;
  let polls = 0;
  for (;;) {
    polls++;
    const ok = await probe().catch(() => false);
    const at = performance.now();
    if (ok) return { at, polls };
    if (at > deadline) throw new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what}`);
  }
}

export async function edgeScenario(ctx: Ctx, p: EdgeParams) {
  const stack = await startDemoStack(ctx.zk, p.apps, ctx.log);
  try {
    return await measure(ctx, stack, p);
  } finally {
    await stack.stop().catch((err: unknown) => ctx.log(`stopping the stack: ${(err as Error).message}`));
  }
}

async function measure(ctx: Ctx, stack: DemoStack, p: EdgeParams) {
  const https = stack.demo.https;
  if (!https) throw new Error('the demo stack runs without HTTPS (no openssl command): the certificate change cannot be measured');
  const [labelApp, ruleApp] = [stack.appIds[1], stack.appIds[2]];
  const labels = (stack.sim.app(labelApp)?.['labels'] ?? {}) as Record<string, string>;
  const routedBy = (host: string) => async () => (await httpGet(`${stack.haproxy}/`, { host, timeoutMs: 2000 })).body.startsWith('old ');
  const samples = { cert: [] as number[], label: [] as number[], rule: [] as number[] };
  const reloads = { cert: [] as number[], label: [] as number[], rule: [] as number[] };
  const polls = { cert: [] as number[], label: [] as number[], rule: [] as number[] };
  const timed = async (kind: keyof typeof samples, counted: boolean, change: () => Promise<void>, served: () => Promise<boolean>, what: string) => {
    await stack.settle(600);
    const r0 = await stack.reloads();
    const t0 = performance.now();
    await change();
    const done = await pollUntil(served, what);
    if (!counted) return;
    samples[kind].push(done.at - t0);
    polls[kind].push(done.polls);
    await stack.settle(600);
    reloads[kind].push((await stack.reloads()) - r0);
  };

  for (let k = 0; k < p.warmup + p.samples; k++) {
    const counted = k >= p.warmup;
    // Certificate: made before the clock starts (openssl is not what is measured).
    const issued = https.ca.issue([https.host]);
    const tmp = join(https.certDir, '.secure.pem.new');
    await writeFile(tmp, issued.bundle, { mode: 0o600 });
    await timed('cert', counted, () => rename(tmp, join(https.certDir, 'secure.pem')), async () => (await servedSerial(https.port, https.host)) === issued.serial, `serial ${issued.serial} served`);

    const labelHost = `label-${k}.edge.bench`;
    if (await routedBy(labelHost)()) throw new Error(`${labelHost} is routed before its label`);
    await timed('label', counted, async () => void stack.sim.setLabels(labelApp, { ...labels, HAPROXY_0_VHOST: labelHost }), routedBy(labelHost), `${labelHost} routed by its label`);

    const ruleHost = `rule-${k}.edge.bench`;
    if (await routedBy(ruleHost)()) throw new Error(`${ruleHost} is routed before its rule`);
    await timed(
      'rule',
      counted,
      async () => {
        const res = await fetch(`${stack.apis[k % stack.apis.length]}/api/services/${ruleApp}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ acl: `hdr(host) -i ${ruleHost}` }),
        });
        await res.text();
        if (res.status !== 200 && res.status !== 201) throw new Error(`rule write: HTTP ${res.status}`);
      },
      routedBy(ruleHost),
      `${ruleHost} routed by its rule`,
    );
    if (counted) ctx.log(`edge: round ${k - p.warmup + 1}/${p.samples}: certificate ${round(samples.cert.at(-1)!)} ms, label ${round(samples.label.at(-1)!)} ms, rule ${round(samples.rule.at(-1)!)} ms`);
  }
  const status = await stack.status();
  return {
    apps: stack.size,
    samples: p.samples,
    certRenewedToServedMs: summarize(samples.cert),
    labelChangeToRoutedMs: summarize(samples.label),
    ruleWriteToRoutedMs: summarize(samples.rule),
    reloadsPerChange: { cert: summarize(reloads.cert, 2), label: summarize(reloads.label, 2), rule: summarize(reloads.rule, 2) },
    pollsPerChange: { cert: summarize(polls.cert), label: summarize(polls.label), rule: summarize(polls.rule) },
    workerOutcomes: status.outcomes,
  };
}
