/**
 * The web UI, end to end in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core,
 * never a downloaded browser) against a real api copy on real ZooKeeper, fed by the Marathon
 * simulator. Every change made in the page is checked over HTTP with the REST API.
 *
 * Screenshots of the main views go to a temp folder (path logged; BAMBOO_UI_SHOTS picks the folder).
 */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { runApi, type RunningApi } from '../../api/main.js';
import { validateAcl } from '../../common/core/acl.js';
import { type Config } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { createLogger, silentLogger } from '../../common/log.js';
import { FleetStore, seenRecord } from '../../common/adapters/zookeeper/fleet.js';
import { ControlStore } from '../../common/adapters/zookeeper/snapshot.js';
import type { WorkerStatus } from '../../common/adapters/zookeeper/registrations.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { jsonCall, type JsonResponse } from '../../harness/http.js';
import { waitFor } from '../../harness/process.js';
import { partition, sharedZooKeeper, uniquePath } from '../../harness/zookeeper.js';

const log = process.env.TEST_LOG ? createLogger({ level: 'debug' }) : silentLogger();

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const TOKEN = 'ui-test-token-7f3a';
const STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'";
const APP_IDS = ['/ExampleAppGroup/app1', '/shop/api', '/shop/web', '/tools/grafana', '/tools/prometheus'];

type Res = JsonResponse;

describe('web UI in a real browser (Chromium, api, ZooKeeper, Marathon simulator)', function () {
  this.timeout(30000);
  let conn: string;
  let sim: MarathonSimulator;
  let zk: Zk;
  let browser: Browser;
  let shots: string;
  let api: RunningApi & { cfg: Readonly<Config> };
  const contexts: BrowserContext[] = [];
  const pageErrors: string[] = [];

  before(async function () {
    this.timeout(60000);
    conn = (await sharedZooKeeper()).connectionString;
    sim = new MarathonSimulator({ heartbeatMs: 60000 });
    await sim.start();
    sim.deployApp(
      { id: '/shop/web', healthChecks: [{ protocol: 'HTTP', path: '/health', portIndex: 0 }] },
      { tasks: [{ host: '10.0.1.11', ports: [31001] }, { host: '10.0.1.12', ports: [31002], healthy: false }] },
    );
    sim.deployApp({ id: '/shop/api' }, { tasks: [{ host: '10.0.1.11', ports: [31010] }, { host: '10.0.1.13', ports: [31011] }] });
    sim.deployApp({ id: '/ExampleAppGroup/app1', instances: 3 });
    sim.deployApp({ id: '/tools/grafana' }, { tasks: [{ host: '10.0.2.21', ports: [3000] }] });
    sim.deployApp({ id: '/tools/prometheus' }, { tasks: [{ host: '10.0.2.22', ports: [9090] }] });
    zk = new Zk({ connectionString: conn, log });
    await zk.start();
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    shots = process.env.BAMBOO_UI_SHOTS ?? mkdtempSync(join(tmpdir(), 'bamboo-ui-shots-'));
    mkdirSync(shots, { recursive: true });
    console.log(`      screenshots: ${shots}`);
  });

  after(async () => {
    await browser?.close();
    await sim?.stop();
    await zk?.close();
  });

  // Each test gets its own api copy on fresh ZooKeeper paths: no rule or worker leaks between tests.
  beforeEach(async () => {
    api = await startApi();
  });

  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
    await api?.close();
    const errors = pageErrors.splice(0);
    expect(errors, 'errors thrown in the page').to.deep.equal([]);
  });

  async function startApi(over: Record<string, string | number | boolean> = {}): Promise<RunningApi & { cfg: Readonly<Config> }> {
    const cfg = loadConfig({
      env: {},
      overrides: {
        'Bamboo.Zookeeper.Host': conn,
        'Bamboo.Zookeeper.Path': uniquePath('/ui-rules'),
        'Bamboo.Zookeeper.ControlPath': uniquePath('/ui-control'),
        'Bamboo.Zookeeper.SessionTimeoutMs': 4000,
        'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
        'Marathon.Endpoint': sim.url,
        'Marathon.ResyncIntervalMs': 0,
        'Bamboo.Endpoint': 'http://127.0.0.1:9',
        ...over,
      },
    });
    const running = await runApi(cfg, log, { bind: '127.0.0.1:0', intake: { subscriptionCheckMs: 60000 } });
    try {
      await waitFor(async () => {
        const r = await fetch(`${running.url}/api/state`);
        return r.status === 200 && ((await r.json()) as { Apps: unknown[] }).Apps.length === APP_IDS.length;
      }, 'the api to store the Marathon snapshot');
    } catch (err) {
      await running.close();
      throw err;
    }
    return Object.assign(running, { cfg });
  }

  function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Res> {
    return jsonCall(method, `${api.url}${path}`, body, headers);
  }

  async function putRule(id: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Res> {
    const r = await call('PUT', `/api/services/${id}`, body, { authorization: `Bearer ${TOKEN}`, ...headers });
    expect(r.status, JSON.stringify(r.json)).to.be.oneOf([200, 201]);
    return r;
  }

  async function openUi(hash = ''): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1366, height: 820 } });
    contexts.push(context);
    // The page is loaded under a strict Content-Security-Policy: it needs no inline script or style
    // and nothing from another origin (machines have no internet), and a violation fails the test.
    await context.route(`${api.url}/`, async (route) => {
      const res = await route.fetch();
      await route.fulfill({ response: res, headers: { ...res.headers(), 'content-security-policy': STRICT_CSP } });
    });
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    // Console errors other than HTTP answers the UI expects (401, 404, 409, 400) fail the test,
    // e.g. a Content-Security-Policy violation or a module that does not load.
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource: the server responded with a status of')) pageErrors.push(msg.text());
    });
    await page.goto(`${api.url}/${hash}`);
    await page.locator('#apps tbody tr').first().waitFor({ state: 'attached' });
    return page;
  }

  const row = (page: Page, id: string) => page.locator(`#apps tbody tr[data-app="${id}"]`);
  const shownIds = (page: Page) => page.locator('#apps tbody tr').evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.app));

  async function openEditor(page: Page, id: string): Promise<void> {
    await row(page, id).locator('button.edit').click();
    await page.locator('#editor[open]').waitFor();
    await waitFor(() => page.locator('#editor-acl').isEnabled(), 'the editor to finish reading the rule');
  }

  async function refresh(page: Page): Promise<void> {
    await page.locator('#refresh').click();
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
  }

  it('lists every Marathon app with its tasks and its custom or default rule, with search and filters', async () => {
    await putRule('/shop/api', { acl: 'hdr(host) -i api.shop.example.com' });
    const page = await openUi();
    await waitFor(async () => (await shownIds(page)).length === APP_IDS.length, 'every app listed');
    expect(await shownIds(page)).to.deep.equal(APP_IDS);

    const web = row(page, '/shop/web');
    expect(await web.locator('.summary-line').textContent()).to.equal('1 of 2 serving');
    const tasks = await web.locator('li.task').allTextContents();
    expect(tasks.map((t) => t.replace(/\s+/g, ' ').trim())).to.deep.equal(['✓ 10.0.1.11:31001 serving', '✗ 10.0.1.12:31002 unhealthy']);
    expect(await web.locator('code.rule').textContent()).to.equal('path_beg -i /shop/web');
    expect(await web.locator('.badge.default').textContent()).to.equal('default');
    expect(await web.locator('button.edit').getAttribute('aria-label')).to.equal('Add rule for /shop/web');

    const shopApi = row(page, '/shop/api');
    expect(await shopApi.locator('code.rule').textContent()).to.equal('hdr(host) -i api.shop.example.com');
    expect(await shopApi.locator('.badge.custom').textContent()).to.equal('custom · v0');
    expect(await row(page, '/ExampleAppGroup/app1').locator('li.task').count()).to.equal(3);

    await screenshot(page, '1-apps');

    await page.locator('#search').fill('web');
    expect(await shownIds(page)).to.deep.equal(['/shop/web']);
    await page.locator('#search').fill('API.SHOP.example'); // rule text, any case
    expect(await shownIds(page)).to.deep.equal(['/shop/api']);
    expect(await page.locator('#count').textContent()).to.equal('1 of 5 apps');
    await page.locator('#search').fill('');
    await page.locator('#filter').selectOption('custom');
    expect(await shownIds(page)).to.deep.equal(['/shop/api']);
    await page.locator('#filter').selectOption('default');
    expect(await shownIds(page)).to.deep.equal(['/ExampleAppGroup/app1', '/shop/web', '/tools/grafana', '/tools/prometheus']);
    await page.locator('#filter').selectOption('unhealthy');
    expect(await shownIds(page)).to.deep.equal(['/shop/web']);
    await page.locator('#search').fill('nothing-matches-this');
    expect(await page.locator('#apps-empty').textContent()).to.equal('No app matches the search and filter.');

    // Every form control has a label the accessibility tree can name.
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('input, select, textarea, button')]
        .filter((el) => {
          const c = el as HTMLInputElement;
          const named = (c.labels && c.labels.length > 0) || c.getAttribute('aria-label') || (el.tagName === 'BUTTON' && el.textContent!.trim() !== '');
          return !named;
        })
        .map((el) => el.outerHTML.slice(0, 80)),
    );
    expect(unlabelled).to.deep.equal([]);
    expect(await page.locator('#health').textContent()).to.match(/API ok · ZooKeeper connected · Marathon fetched .* · snapshot v\d+ \(5 apps\)/);
  });

  it('says ZooKeeper is unreachable during an outage and keeps showing the last known apps and rules', async () => {
    const relay = await partition(conn);
    try {
      await api.close();
      api = await startApi({ 'Bamboo.Zookeeper.Host': relay.connectionString });
      await putRule('/shop/api', { acl: 'hdr(host) -i api.shop.example.com' });
      const page = await openUi();
      await waitFor(async () => (await shownIds(page)).length === APP_IDS.length, 'every app listed');
      relay.cut();
      await waitFor(async () => (await call('GET', '/api/state')).status === 503, 'the api to lose ZooKeeper', 20000);
      await page.locator('#refresh').click();
      const banner = page.locator('#banner');
      await waitFor(async () => /ZooKeeper is unreachable/.test((await banner.textContent()) ?? ''), 'the outage banner', 15000);
      expect(await banner.textContent()).to.match(/^ZooKeeper is unreachable: showing the last known apps and rules \(read at .+\); changes cannot be saved until it is back\./);
      expect(await shownIds(page)).to.deep.equal(APP_IDS);
      expect(await row(page, '/shop/api').locator('code.rule').textContent()).to.equal('hdr(host) -i api.shop.example.com');
      expect(await page.locator('#apps-empty').isHidden()).to.equal(true);
      await screenshot(page, '6-zookeeper-outage');
      relay.heal();
      await waitFor(async () => (await call('GET', '/api/state')).status === 200, 'the api to reach ZooKeeper again', 30000);
      await page.locator('#refresh').click();
      await waitFor(async () => await banner.isHidden(), 'the banner to go once ZooKeeper is back', 15000);
      expect(await shownIds(page)).to.deep.equal(APP_IDS);
    } finally {
      await relay.close();
    }
  });

  it('creates, edits and deletes a rule, and /api/services shows each step', async () => {
    const id = '/ExampleAppGroup/app1';
    const page = await openUi();

    await openEditor(page, id);
    expect(await page.locator('#editor-title').textContent()).to.equal('New rule');
    expect(await page.evaluate(() => document.activeElement?.id)).to.equal('editor-acl');
    expect(await page.locator('#editor-id').inputValue()).to.equal(id);
    await page.locator('#editor-acl').fill('hdr(host) -i app-1.example.com');
    await screenshot(page, '2-editor');
    await page.locator('#editor-save').click();
    await page.locator('#editor').waitFor({ state: 'hidden' });
    expect(await page.locator('#notice').textContent()).to.equal(`Saved the rule for ${id} (version 0).`);
    let list = await call('GET', '/api/services');
    expect(list.json).to.deep.equal({ [id]: { Id: id, Acl: 'hdr(host) -i app-1.example.com', Config: { Acl: 'hdr(host) -i app-1.example.com' } } });
    await waitFor(async () => (await row(page, id).locator('code.rule').textContent()) === 'hdr(host) -i app-1.example.com', 'the list to show the new rule');

    await openEditor(page, id);
    expect(await page.locator('#editor-title').textContent()).to.equal('Edit rule');
    expect(await page.locator('#editor-version').textContent()).to.equal('Stored rule, version 0.');
    expect(await page.locator('#editor-acl').inputValue()).to.equal('hdr(host) -i app-1.example.com');
    await page.locator('#editor-acl').fill('path_beg -i /group/app-1');
    await page.locator('#editor-acl').press('Enter');
    await page.locator('#editor').waitFor({ state: 'hidden' });
    const one = await call('GET', `/api/services/${id}`);
    expect(one.json).to.deep.equal({ Id: id, Acl: 'path_beg -i /group/app-1', Config: { Acl: 'path_beg -i /group/app-1' } });
    expect(one.headers.get('etag')).to.equal('"1"');

    await openEditor(page, id);
    await page.locator('#editor-delete').click();
    expect(await page.locator('#editor-delete').textContent()).to.equal('Confirm: delete this rule');
    await page.locator('#editor-delete').click();
    await page.locator('#editor').waitFor({ state: 'hidden' });
    expect((await call('GET', `/api/services/${id}`)).status).to.equal(404);
    list = await call('GET', '/api/services');
    expect(list.json).to.deep.equal({});
    await waitFor(async () => (await row(page, id).locator('.badge.default').count()) === 1, 'the list to show the default rule again');
    expect(await page.locator('#notice').textContent()).to.equal(`Deleted the rule for ${id}; the default rule applies.`);
  });

  it('keeps the other Config keys of a record when its rule is edited', async () => {
    const id = '/tools/grafana';
    await putRule(id, { acl: 'hdr(host) -i grafana.example.com', config: { Weight: '3', Owner: 'team-observability' } });
    const page = await openUi();
    await openEditor(page, id);
    const shown = await page.locator('#editor-config tbody tr').allTextContents();
    expect(shown).to.deep.equal(['Ownerteam-observability', 'Weight3']);
    await page.locator('#editor-acl').fill('hdr(host) -i grafana.internal.example.com');
    await page.locator('#editor-save').click();
    await page.locator('#editor').waitFor({ state: 'hidden' });
    const r = await call('GET', `/api/services/${id}`);
    expect(r.json).to.deep.equal({
      Id: id,
      Acl: 'hdr(host) -i grafana.internal.example.com',
      Config: { Acl: 'hdr(host) -i grafana.internal.example.com', Weight: '3', Owner: 'team-observability' },
    });
  });

  it('shows where each app\'s routing comes from and host conflicts, and edits routing keys in the rule dialog', async () => {
    // Two teams label the same host: the earlier app keeps it, the other is shown the conflict.
    sim.deployApp({ id: '/team-a/shop', labels: { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'shop.example.com' } }, { tasks: [{ host: '10.0.3.1', ports: [31100] }] });
    sim.deployApp({ id: '/team-b/copy', labels: { HAPROXY_0_VHOST: 'shop.example.com' } }, { tasks: [{ host: '10.0.3.2', ports: [31101] }] });
    try {
      expect((await call('POST', '/api/marathon/event_callback', { eventType: 'deployment_success' })).status).to.equal(202);
      await waitFor(async () => ((await call('GET', '/api/state')).json as { Apps: unknown[] }).Apps.length === APP_IDS.length + 2, 'the labelled apps in the snapshot');
      type Routed = { Apps: Array<{ Id: string; Routing: { source: string; conflicts: Array<{ winner: string }> } }> };
      const state = (await call('GET', '/api/state')).json as Routed;
      expect(state.Apps.find((x) => x.Id === '/team-b/copy')!.Routing.conflicts.map((c) => c.winner)).to.deep.equal(['/team-a/shop']);
      expect(state.Apps.find((x) => x.Id === '/team-a/shop')!.Routing.source).to.equal('labels');
      const page = await openUi();
      await waitFor(async () => (await shownIds(page)).length === APP_IDS.length + 2, 'every app listed');
      const a = row(page, '/team-a/shop');
      const b = row(page, '/team-b/copy');
      expect(await a.locator('code.rule').textContent()).to.equal('host shop.example.com');
      expect(await a.locator('.routing-source').textContent()).to.equal('routing: labels');
      expect(await a.locator('.conflict-line').count()).to.equal(0);
      expect(await b.locator('.routing-source').textContent()).to.equal('routing: default');
      expect(await b.locator('.conflict-line').textContent()).to.contain('host shop.example.com is held by /team-a/shop');
      expect(await row(page, '/tools/grafana').locator('.routing-source').textContent()).to.equal('routing: default');
      await page.locator('#filter').selectOption('conflicts');
      expect(await shownIds(page)).to.deep.equal(['/team-b/copy']);
      await page.locator('#filter').selectOption('labels');
      expect(await shownIds(page)).to.deep.equal(['/team-a/shop']);
      await page.locator('#filter').selectOption('all');
      await screenshot(page, '7-labels-conflict');

      // A line that is not KEY=value with a routing key is refused in the page, a bad value by the server.
      await openEditor(page, '/team-b/copy');
      await page.locator('#editor-routing').fill('VHOST=shop.example.com');
      expect(await page.locator('#editor-routing-error').textContent()).to.contain('Line 1 is not KEY=value');
      await page.locator('#editor-routing').fill('HAPROXY_0_VHOST=shop.example.com/../x');
      await page.locator('#editor-save').click();
      await waitFor(async () => ((await page.locator('#editor-error').textContent()) ?? '').includes('BAMBOO_INVALID_LABEL'), 'the server refuses the value');
      expect((await call('GET', '/api/services/team-b/copy')).status).to.equal(404);

      // An api rule by routing keys alone (empty ACL) wins the host over the other team's labels.
      await page.locator('#editor-routing').fill('HAPROXY_0_VHOST=shop.example.com\nHAPROXY_0_BALANCE=roundrobin');
      await page.locator('#editor-save').click();
      await page.locator('#editor').waitFor({ state: 'hidden' });
      const stored = await call('GET', '/api/services/team-b/copy');
      expect(stored.json).to.deep.equal({ Id: '/team-b/copy', Acl: '', Config: { Acl: '', HAPROXY_0_BALANCE: 'roundrobin', HAPROXY_0_VHOST: 'shop.example.com' } });
      await waitFor(async () => (await b.locator('.routing-source').textContent()) === 'routing: rule', 'the rule shown as the routing source');
      expect(await b.locator('code.rule').textContent()).to.equal('host shop.example.com');
      await waitFor(async () => ((await a.locator('.conflict-line').textContent().catch(() => '')) ?? '').includes('held by /team-b/copy: an api rule claims it'), 'the labelled app shown losing the host');
      const listed = await call('GET', '/api/services?routing=1');
      expect((listed.json as Record<string, { Routing: { source: string } }>)['/team-b/copy'].Routing.source).to.equal('rule');

      // The dialog reads the routing keys back, apart from the other Config keys.
      await openEditor(page, '/team-b/copy');
      expect(await page.locator('#editor-routing').inputValue()).to.equal('HAPROXY_0_BALANCE=roundrobin\nHAPROXY_0_VHOST=shop.example.com');
      expect(await page.locator('#editor-config').isHidden()).to.equal(true);
      await page.locator('#editor-cancel').click();
    } finally {
      sim.destroyApp('/team-a/shop');
      sim.destroyApp('/team-b/copy');
    }
  });

  it("shows the server's message when it rejects a rule (a pasted newline, a rule too long)", async () => {
    const id = '/shop/web';
    const page = await openUi();
    await openEditor(page, id);

    // A paste that carries a line break: the field keeps it visible and flags it at once...
    const pasted = 'path_beg -i /web\nbind :81';
    await page.keyboard.insertText(pasted);
    expect(await page.locator('#editor-acl').inputValue()).to.equal(pasted);
    expect(await page.locator('#editor-acl-error').textContent()).to.equal(
      'The rule contains a newline (U+000A) at position 16; a rule must be one printable line',
    );
    expect(await page.locator('#editor-acl').getAttribute('aria-invalid')).to.equal('true');
    // ...and Save shows what the server itself answers to that text.
    const server = await call('PUT', `/api/services/${id}`, { acl: pasted });
    expect(server.status).to.equal(400);
    await page.locator('#editor-save').click();
    await waitFor(() => page.locator('#editor-error').isVisible(), 'the server error');
    expect(await page.locator('#editor-error').textContent()).to.equal(`Not saved: ${server.json.message} (BAMBOO_INVALID_ACL)`);
    expect(server.json.message).to.contain('newline');

    const long = `path_beg -i /${'a'.repeat(1100)}`;
    await page.locator('#editor-acl').fill(long);
    expect(await page.locator('#editor-acl-error').textContent()).to.equal('The rule is 1113 characters long; at most 1024 are allowed');
    const serverLong = await call('PUT', `/api/services/${id}`, { acl: long });
    await page.locator('#editor-save').click();
    await waitFor(async () => (await page.locator('#editor-error').textContent())!.includes('1113'), 'the server error for the long rule');
    expect(await page.locator('#editor-error').textContent()).to.equal(`Not saved: ${serverLong.json.message} (BAMBOO_INVALID_ACL)`);
    expect(await page.locator('#editor').getAttribute('open')).to.equal('');

    expect((await call('GET', `/api/services/${id}`)).status).to.equal(404);
  });

  it("shows HAProxy's own reason when HAProxy rejects a rule, and saves nothing", async () => {
    const id = '/shop/web';
    const page = await openUi();
    await openEditor(page, id);
    // One printable line, so the page's own check has nothing to say: only HAProxy knows.
    const typo = 'hdrr(host) -i shop.example.com';
    await page.locator('#editor-acl').fill(typo);
    expect(await page.locator('#editor-acl-error').textContent()).to.equal('');
    await page.locator('#editor-save').click();
    await waitFor(() => page.locator('#editor-error').isVisible(), 'the server error');
    const text = (await page.locator('#editor-error').textContent())!;
    expect(text).to.match(/^Not saved: HAProxy rejects this rule: unknown fetch method 'hdrr' in ACL expression 'hdrr\(host\)'; nothing was stored \(BAMBOO_ACL_REJECTED_BY_HAPROXY\)$/);
    expect(await page.locator('#editor').getAttribute('open')).to.equal('');
    expect((await call('GET', `/api/services/${id}`)).status).to.equal(404);
  });

  it('shows a conflict with the current value, and saving again after it works', async () => {
    const id = '/tools/prometheus';
    await putRule(id, { acl: 'path_beg -i /prometheus' });
    const page = await openUi();
    await openEditor(page, id);
    expect(await page.locator('#editor-version').textContent()).to.equal('Stored rule, version 0.');

    // Someone else changes the rule behind the editor's back.
    await putRule(id, { acl: 'hdr(host) -i prom.example.com' });
    await page.locator('#editor-acl').fill('hdr(host) -i metrics.example.com');
    await page.locator('#editor-save').click();
    await page.locator('#editor-conflict').waitFor();
    expect(await page.locator('#conflict-current').textContent()).to.equal('hdr(host) -i prom.example.com');
    expect(await page.locator('#conflict-mine').textContent()).to.equal('hdr(host) -i metrics.example.com');
    expect(await page.locator('#editor-conflict dt').first().textContent()).to.equal('Current value (version 1)');
    expect((await call('GET', `/api/services/${id}`)).json.Acl).to.equal('hdr(host) -i prom.example.com');
    await screenshot(page, '3-editor-conflict');

    await page.locator('#conflict-retry').click();
    await page.locator('#editor').waitFor({ state: 'hidden' });
    let r = await call('GET', `/api/services/${id}`);
    expect(r.json.Acl).to.equal('hdr(host) -i metrics.example.com');
    expect(r.headers.get('etag')).to.equal('"2"');

    // The other way on: take the current value into the editor, then save from there.
    await openEditor(page, id);
    await putRule(id, { acl: 'hdr(host) -i prometheus.example.com' });
    await page.locator('#editor-acl').fill('path_beg -i /mine');
    await page.locator('#editor-save').click();
    await page.locator('#editor-conflict').waitFor();
    await page.locator('#conflict-take').click();
    expect(await page.locator('#editor-acl').inputValue()).to.equal('hdr(host) -i prometheus.example.com');
    expect(await page.locator('#editor-version').textContent()).to.equal('Stored rule, version 3.');
    expect(await page.locator('#editor-conflict').isHidden()).to.equal(true);
    await page.locator('#editor-acl').fill('hdr(host) -i prometheus.example.com -i prom.example.com');
    await page.locator('#editor-save').click();
    await page.locator('#editor').waitFor({ state: 'hidden' });
    r = await call('GET', `/api/services/${id}`);
    expect(r.json.Acl).to.equal('hdr(host) -i prometheus.example.com -i prom.example.com');
    expect(r.headers.get('etag')).to.equal('"4"');
  });

  it('asks for the token when the server answers 401, keeps it for the tab only, then saves', async () => {
    await api.close();
    api = await startApi({ 'Bamboo.AuthToken': TOKEN });
    const id = '/shop/web';
    const page = await openUi();
    const authHeaders: Array<string | undefined> = [];
    page.on('request', (req) => {
      if (req.method() === 'PUT') authHeaders.push(req.headers()['authorization']);
    });

    await openEditor(page, id);
    await page.locator('#editor-acl').fill('hdr(host) -i www.shop.example.com');
    await page.locator('#editor-acl').press('Enter');
    await page.locator('#auth[open]').waitFor();
    expect(await page.locator('#auth-title').textContent()).to.equal('Token needed');
    expect(await page.evaluate(() => document.activeElement?.id)).to.equal('auth-token');
    await page.locator('#auth-token').fill('wrong-token');
    await page.locator('#auth-token').press('Enter');
    await waitFor(async () => (await page.locator('#auth-title').textContent()) === 'Token refused', 'the refused-token prompt');
    await page.locator('#auth-token').fill(TOKEN);
    await page.locator('#auth-token').press('Enter');
    await page.locator('#editor').waitFor({ state: 'hidden' });

    expect(authHeaders).to.deep.equal([undefined, 'Bearer wrong-token', `Bearer ${TOKEN}`]);
    expect((await call('GET', `/api/services/${id}`)).json.Acl).to.equal('hdr(host) -i www.shop.example.com');
    expect(await page.evaluate(() => [sessionStorage.getItem('bamboo.token'), localStorage.length, document.cookie])).to.deep.equal([TOKEN, 0, '']);
    expect(await page.locator('#token-state').isVisible()).to.equal(true);

    // The next change uses the kept token without asking.
    await openEditor(page, id);
    await page.locator('#editor-delete').click();
    await page.locator('#editor-delete').click();
    await page.locator('#editor').waitFor({ state: 'hidden' });
    expect((await call('GET', `/api/services/${id}`)).status).to.equal(404);
    expect(await page.locator('#auth').getAttribute('open')).to.equal(null);

    // Reads never carry the token (so /api/state stays redacted for the page).
    const reads: Array<string | undefined> = [];
    page.on('request', (req) => {
      if (req.method() === 'GET' && req.url().includes('/api/')) reads.push(req.headers()['authorization']);
    });
    await refresh(page);
    await waitFor(() => reads.length >= 3, 'a refresh');
    expect(reads.every((h) => h === undefined)).to.equal(true);
  });

  it('shows a Marathon answer held by the shrink guard in a banner, whose button confirms it through the API with the token', async () => {
    await api.close();
    api = await startApi({ 'Bamboo.AuthToken': TOKEN, 'Marathon.ShrinkGuardHoldMs': 600000 });
    const page = await openUi();
    expect(await page.locator('#held').isVisible()).to.equal(false);
    const confirms: Array<{ body: unknown; auth: string | undefined }> = [];
    page.on('request', (req) => {
      if (req.url().endsWith('/api/marathon/held/confirm')) confirms.push({ body: JSON.parse(req.postData() ?? 'null'), auth: req.headers()['authorization'] });
    });
    try {
      // Marathon (or something answering for it) suddenly has no apps: held, the page still lists them.
      sim.faults.emptyApps = true;
      await call('POST', '/api/marathon/event_callback', { eventType: 'status_update_event' });
      const held = await waitFor(async () => (await call('GET', '/status')).json.marathon.held, 'the empty answer to be held');
      await refresh(page);
      await page.locator('#held').waitFor({ state: 'visible' });
      const text = (await page.locator('#held-text').textContent()) ?? '';
      // 9 tasks, one of them reported unhealthy: 8 can take traffic.
      expect(text).to.contain('Marathon answers an empty app list (5 apps / 8 tasks → 0 apps / 0 tasks) since');
      expect(text).to.contain('HAProxy keeps serving the previous snapshot');
      expect(text).to.contain('It applies by itself at');
      expect(await shownIds(page)).to.deep.equal(APP_IDS);
      await screenshot(page, 'held-answer');

      // Two clicks (the first arms the button), then the token the server asks for.
      await page.locator('#held-confirm').click();
      expect(await page.locator('#held-confirm').textContent()).to.equal('Confirm: apply 0 apps / 0 tasks now');
      expect(confirms).to.deep.equal([]);
      await page.locator('#held-confirm').click();
      await page.locator('#auth[open]').waitFor();
      await page.locator('#auth-token').fill(TOKEN);
      await page.locator('#auth-token').press('Enter');
      await waitFor(async () => (await call('GET', '/status')).json.snapshot.apps === 0, 'the confirmed answer to apply');
      expect(confirms).to.deep.equal([{ body: { id: held.id }, auth: undefined }, { body: { id: held.id }, auth: `Bearer ${TOKEN}` }]);
      await refresh(page);
      await page.locator('#held').waitFor({ state: 'hidden' });
    } finally {
      sim.faults.emptyApps = false;
    }
  });

  it("shows each worker's snapshot, last outcome and quarantined apps, and which rules are not applied everywhere", async () => {
    await putRule('/shop/api', { acl: 'hdr(host) -i api.shop.example.com' });
    await putRule('/shop/web', { acl: 'path_beg -i /web' });
    await putRule('/shop/web', { acl: 'path_beg -i /shop' }); // version 1, not yet on haproxy-b
    // A Marathon change (a same-size scale still gives the app a new version) and its event make the
    // api store a second snapshot, so that one worker can be a snapshot behind.
    const control = new ControlStore(zk, api.cfg.Bamboo.Zookeeper.ControlPath);
    const first = await control.snapshotVersion();
    sim.scaleApp('/ExampleAppGroup/app1', 3);
    expect((await call('POST', '/api/marathon/event_callback', { eventType: 'deployment_success' })).status).to.equal(202);
    const snapshotVersion = await waitFor(async () => ((await control.snapshotVersion()) > first ? control.snapshotVersion() : 0), 'a second snapshot');
    const now = Date.now();
    const worker = (w: Partial<WorkerStatus> & { name: string }): WorkerStatus => ({
      host: 'lb.example.com', snapshotVersion, configHash: 'c0ffee'.repeat(10), rulesApplied: {}, lastOutcome: 'noop', lastReason: '',
      lastOutcomeAt: now - 4000, lastAppliedAt: now - 4000, quarantined: [], startedAt: now - 3_600_000, mode: 'reload', ...w,
    });
    const records = [
      worker({ name: 'haproxy-a', host: 'lb-1.example.com', groups: ['external', 'internal'], rulesApplied: { '/shop/api': 0, '/shop/web': 1 }, lastOutcome: 'reloaded', lastReason: 'rules changed: /shop/web' }),
      worker({
        name: 'haproxy-b', host: 'lb-2.example.com', snapshotVersion: first, rulesApplied: { '/shop/api': 0, '/shop/web': 0 },
        lastOutcome: 'invalid', lastReason: 'haproxy -c failed for /tools/grafana; quarantined it', lastOutcomeAt: now - 120_000, quarantined: ['/tools/grafana'],
      }),
    ];
    await zk.mkdirp(control.workersPath);
    for (const w of records) await zk.create(`${control.workersPath}/${w.name}`, Buffer.from(JSON.stringify(w)), 'ephemeral');
    try {
      const page = await openUi('#fleet');
      await page.locator('#workers tbody tr').nth(1).waitFor();
      expect(await page.locator('#view-apps').isHidden()).to.equal(true);
      expect(await page.locator('#nav-fleet').getAttribute('aria-current')).to.equal('page');
      expect(await page.locator('#fleet-summary').textContent()).to.equal(`Latest snapshot version ${snapshotVersion} · 2 rules stored · 2 workers, 1 up to date`);

      const a = page.locator('#workers tr[data-worker="haproxy-a"]');
      const b = page.locator('#workers tr[data-worker="haproxy-b"]');
      const text = async (l: ReturnType<Page['locator']>) => (await l.innerText()).replace(/\s+/g, ' ').trim();
      expect(await text(a.locator('th'))).to.equal('haproxy-a lb-1.example.com · reload groups external, internal up to date');
      expect(await text(a.locator('td').nth(0))).to.equal(`version ${snapshotVersion} latest config c0ffeec0ffee`);
      expect(await text(a.locator('td').nth(1))).to.match(/^reloaded \d s ago rules changed: \/shop\/web$/);
      expect(await text(a.locator('td').nth(2))).to.equal('none');
      expect(await text(a.locator('td').nth(3))).to.equal('✓ all applied');
      expect(await text(b.locator('th'))).to.equal('haproxy-b lb-2.example.com · reload every group behind');
      expect(await text(b.locator('td').nth(0))).to.equal(`version ${first} latest is ${snapshotVersion} config c0ffeec0ffee`);
      expect(await text(b.locator('td').nth(1))).to.equal('invalid 2 min ago haproxy -c failed for /tools/grafana; quarantined it');
      expect(await text(b.locator('td').nth(2))).to.equal('⚠ /tools/grafana');
      expect(await text(b.locator('td').nth(3))).to.equal('○ 1 not yet applied: /shop/web');
      expect(await text(page.locator('#rollout-table tbody'))).to.equal('/shop/web path_beg -i /shop v1 haproxy-b');
      await screenshot(page, '4-fleet');

      await page.locator('#nav-apps').click();
      await page.locator('#view-apps').waitFor();
      expect(await text(row(page, '/shop/web').locator('td').nth(2))).to.equal('○ not yet applied on 1 of 2: haproxy-b applied on haproxy-a');
      expect(await text(row(page, '/shop/api').locator('td').nth(2))).to.equal('✓ applied on all 2');
      expect(await text(row(page, '/tools/grafana').locator('td').nth(2))).to.equal('⚠ quarantined on haproxy-b');
      await screenshot(page, '5-apps-with-fleet');
      await page.locator('#filter').selectOption('pending');
      expect(await shownIds(page)).to.deep.equal(['/shop/web']);
    } finally {
      for (const w of records) await zk.remove(`${control.workersPath}/${w.name}`).catch(() => undefined);
    }
  });

  it('marks a worker that stopped reporting as stale, and shows a gone one with when it was last seen and what it last ran', async () => {
    await api.close();
    api = await startApi({ 'Fleet.StaleAfterMs': 1000 });
    const control = new ControlStore(zk, api.cfg.Bamboo.Zookeeper.ControlPath);
    const snapshotVersion = await control.snapshotVersion();
    const now = Date.now();
    const status = (name: string, w: Partial<WorkerStatus> = {}): WorkerStatus => ({
      name, host: `${name}.example.com`, snapshotVersion, configHash: 'ab12'.repeat(16), rulesApplied: {}, lastOutcome: 'reloaded', lastReason: 'config changed',
      lastOutcomeAt: now - 300_000, lastAppliedAt: now - 300_000, quarantined: [], startedAt: now - 3_600_000, mode: 'managed', ...w,
    });
    // A worker whose status record is never rewritten (no heartbeat): stale once the api watched it for 1 s.
    await zk.mkdirp(control.workersPath);
    await zk.create(control.paths.worker('edge-frozen'), Buffer.from(JSON.stringify(status('edge-frozen'))), 'ephemeral');
    // A worker that stopped: only its last-seen record is left. Its name is shown as text.
    const goneName = 'edge <b>gone</b>';
    await new FleetStore(zk, control.paths).writeSeen(goneName, seenRecord(status(goneName, { quarantined: ['/tools/grafana'] }), now, now));
    try {
      await waitFor(async () => (await call('GET', '/api/workers')).json?.workers?.[0]?.state === 'stale', 'the api to call the silent worker stale', 10000, 100);
      const page = await openUi('#fleet');
      const gone = page.locator('#workers tr[data-state="gone"]');
      await gone.waitFor();
      const text = async (l: ReturnType<Page['locator']>) => (await l.innerText()).replace(/\s+/g, ' ').trim();
      expect(await page.locator('#fleet-summary').textContent()).to.equal(`Latest snapshot version ${snapshotVersion} · 0 rules stored · 1 workers, 1 up to date · 1 stale · 1 gone in the last 24 h`);
      expect(await gone.getAttribute('data-worker')).to.equal(goneName);
      expect(await text(gone.locator('th'))).to.match(/^edge <b>gone<\/b> edge <b>gone<\/b>\.example\.com · managed gone last seen (just now|\d s ago) · stopped$/);
      expect(await gone.locator('b').count(), 'the name is text, not markup').to.equal(0);
      expect(await text(gone.locator('td').nth(0))).to.equal(`version ${snapshotVersion} config ab12ab12ab12`);
      expect(await text(gone.locator('td').nth(1))).to.equal('reloaded 5 min ago config changed');
      expect(await text(gone.locator('td').nth(2))).to.equal('⚠ 1 app');
      expect(await text(gone.locator('td').nth(3))).to.equal('not running');
      const frozen = page.locator('#workers tr[data-worker="edge-frozen"]');
      expect(await text(frozen.locator('th'))).to.match(/^edge-frozen edge-frozen\.example\.com · managed every group up to date stale no report since (just now|\d s ago)$/);
      // The gone worker is not one the rules wait for.
      expect(await page.locator('#rollout').textContent()).to.equal('✓ Every rule is applied on every worker.');
      await screenshot(page, '6-fleet-stale-gone');
    } finally {
      await zk.remove(control.paths.worker('edge-frozen')).catch(() => undefined);
    }
  });

  it('shows next to the rule that a worker quarantines it: HAProxy\'s reason, the failing version, since when and what routes the app now', async () => {
    await putRule('/shop/api', { acl: 'hdr(host) -i api.shop.example.com' });
    // Version 1: a rule HAProxy rejects, as one stored around the api's check would be.
    await putRule('/shop/api', { acl: 'hdr(host) -i api2.shop.example.com' });
    await putRule('/tools/grafana', { acl: 'hdr(host) -i grafana.example.com' });
    const control = new ControlStore(zk, api.cfg.Bamboo.Zookeeper.ControlPath);
    const snapshotVersion = await control.snapshotVersion();
    const now = Date.now();
    const reason = "parsing [/etc/haproxy/haproxy.cfg:61] : error detected while parsing switching rule : ACL keyword 'hdr' : unknown converter 'nosuchconv'.";
    const worker = (w: Partial<WorkerStatus> & { name: string }): WorkerStatus => ({
      host: 'lb.example.com', snapshotVersion, configHash: 'c0ffee'.repeat(10), rulesApplied: {}, lastOutcome: 'reloaded', lastReason: '',
      lastOutcomeAt: now - 4000, lastAppliedAt: now - 4000, quarantined: [], startedAt: now - 3_600_000, mode: 'managed', ...w,
    });
    const records = [
      worker({
        name: 'haproxy-a', rulesApplied: { '/shop/api': 0 }, quarantined: ['/shop/api', '/tools/grafana'],
        quarantine: [
          { appId: '/shop/api', level: 'rules', error: reason, fallback: 'last-good', ruleVersion: 1, lastGoodVersion: 0, since: now - 120_000 },
          { appId: '/tools/grafana', level: 'rules', error: "unknown fetch method 'hdrr'", fallback: 'default', ruleVersion: 0, since: now - 7_200_000 },
        ],
      }),
      worker({ name: 'haproxy-b', rulesApplied: { '/shop/api': 1 } }),
    ];
    await zk.mkdirp(control.workersPath);
    for (const w of records) await zk.create(`${control.workersPath}/${w.name}`, Buffer.from(JSON.stringify(w)), 'ephemeral');
    try {
      const page = await openUi();
      const text = async (l: ReturnType<Page['locator']>) => (await l.innerText()).replace(/\s+/g, ' ').trim();
      const note = row(page, '/shop/api').locator('td').nth(1).locator('li[data-quarantined-on="haproxy-a"]');
      await note.waitFor();
      expect(await text(row(page, '/shop/api').locator('td').nth(1))).to.equal(
        `hdr(host) -i api2.shop.example.com custom · v1 ⚠ v1 quarantined on haproxy-a since 2 min ago: ${reason} · routes by its last good rule v0 routing: rule`,
      );
      expect(await note.locator('time').getAttribute('datetime')).to.equal(new Date(now - 120_000).toISOString());
      // An app that never had a good rule on that worker.
      expect(await text(row(page, '/tools/grafana').locator('td').nth(1))).to.equal(
        "hdr(host) -i grafana.example.com custom · v0 ⚠ v0 quarantined on haproxy-a since 2 h ago: unknown fetch method 'hdrr' · routes by the default rule routing: rule",
      );
      // Apps no worker quarantines show their rule alone.
      expect(await row(page, '/shop/web').locator('td').nth(1).locator('li').count()).to.equal(0);
      expect(await text(row(page, '/shop/api').locator('td').nth(2))).to.equal('⚠ quarantined on haproxy-a');
      await screenshot(page, '6-apps-quarantine');
    } finally {
      for (const w of records) await zk.remove(`${control.workersPath}/${w.name}`).catch(() => undefined);
    }
  });

  it('shows rule text as text, never as markup', async () => {
    const acl = 'hdr(host) -i <img src=x onerror="window.__pwned=1"><b>bold</b>';
    await putRule('/shop/api', { acl });
    const page = await openUi();
    expect(await row(page, '/shop/api').locator('code.rule').textContent()).to.equal(acl);
    await openEditor(page, '/shop/api');
    expect(await page.locator('#editor-acl').inputValue()).to.equal(acl);
    expect(await page.evaluate(() => [(window as unknown as { __pwned?: number }).__pwned, document.querySelectorAll('main img, main b, dialog img').length])).to.deep.equal([undefined, 0]);
  });

  it('can be used with the keyboard alone, with a visible focus', async () => {
    const id = '/tools/prometheus';
    const page = await openUi();
    const active = () => page.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      return { id: el?.id ?? '', key: el?.dataset.focusKey ?? '', outline: el ? getComputedStyle(el).outlineStyle : '' };
    });
    const tabTo = async (want: (a: { id: string; key: string }) => boolean, label: string) => {
      for (let i = 0; i < 40; i++) {
        await page.keyboard.press('Tab');
        if (want(await active())) return;
      }
      throw new Error(`Tab never reached ${label}`);
    };
    await tabTo((a) => a.id === 'search', 'the search field');
    expect((await active()).outline).to.not.equal('none');
    await page.keyboard.type('prometheus');
    expect(await shownIds(page)).to.deep.equal([id]);
    await tabTo((a) => a.key === `edit:${id}`, 'the row button');
    expect((await active()).outline).to.not.equal('none');
    await page.keyboard.press('Enter');
    await page.locator('#editor[open]').waitFor();
    await waitFor(async () => (await active()).id === 'editor-acl', 'the focus in the rule field');
    await page.keyboard.type('path_beg -i /metrics');
    await page.keyboard.press('Enter');
    await page.locator('#editor').waitFor({ state: 'hidden' });
    expect((await call('GET', `/api/services/${id}`)).json.Acl).to.equal('path_beg -i /metrics');
    await waitFor(async () => (await active()).key === `edit:${id}`, 'the focus back on the row button');

    await page.keyboard.press('Enter');
    await page.locator('#editor[open]').waitFor();
    await page.keyboard.press('Escape');
    await page.locator('#editor').waitFor({ state: 'hidden' });
    await waitFor(async () => (await active()).key === `edit:${id}`, 'the focus back after Escape');
  });

  it("checks a rule in the page as the server does (the page's copy of common/core/acl.ts)", async () => {
    const page = await openUi();
    const cases = ['path_beg -i /app', '', '   ', 'a'.repeat(1024), 'a'.repeat(1025), 'x\ny', 'x\ry', 'tab\there', 'nul\u0000', 'del\u007f', 'c1\u0085', 'ls\u2028', 'ünïcödé -i é'];
    const inPage = await page.evaluate(async (inputs) => {
      const v = (await import('/ui/validate.js' as string)) as { checkAcl: (s: string) => { code: string } | null };
      return inputs.map((s) => v.checkAcl(s)?.code ?? 'OK');
    }, cases);
    expect(inPage).to.deep.equal(cases.map((s) => {
      const r = validateAcl(s);
      return r.ok ? 'OK' : r.code;
    }));
  });

  it("shows an app's history (who, from where, the rule before and after), and its Revert button puts the rule before back through the API", async () => {
    const OPS = 'ops-token-0123456789abc';
    await api.close();
    api = await startApi({ 'Bamboo.AuthTokens': JSON.stringify({ ops: OPS, deploy: TOKEN }) });
    const id = '/shop/api';
    expect((await call('PUT', `/api/services/${id}`, { acl: 'path_beg -i /shop/api' }, { authorization: `Bearer ${OPS}` })).status).to.equal(201);
    expect((await call('PUT', `/api/services/${id}`, { acl: 'hdr(host) -i wrong.example.com' }, { authorization: `Bearer ${TOKEN}` })).status).to.equal(200);
    const page = await openUi();

    await row(page, id).locator('button.history').click();
    await page.locator('#history[open]').waitFor();
    // The audit trail tells who did what from where: the page asks for the token to read it.
    await page.locator('#auth[open]').waitFor();
    await page.locator('#auth-token').fill(TOKEN);
    await page.locator('#auth-token').press('Enter');
    const entries = page.locator('#history-list li.audit-entry');
    await waitFor(async () => (await entries.count()) === 2, 'the two changes of the rule');
    const newest = entries.nth(0);
    expect(await newest.locator('.audit-who').textContent()).to.equal('deploy');
    expect(await newest.locator('.audit-from').textContent()).to.equal('127.0.0.1');
    expect(await newest.locator('.audit-before code').textContent()).to.equal('path_beg -i /shop/api');
    expect(await newest.locator('.audit-after code').textContent()).to.equal('hdr(host) -i wrong.example.com');
    expect(await entries.nth(1).locator('.audit-who').textContent()).to.equal('ops');
    expect(await entries.nth(1).locator('.audit-before').textContent()).to.contain('no rule');
    await screenshot(page, '6-history');

    await newest.locator('button.revert').click();
    await waitFor(async () => (await page.locator('#history-status').textContent())?.startsWith('Reverted') ?? false, 'the revert').catch(async (err) => {
      throw new Error(`${err.message}; status ${await page.locator('#history-status').textContent()}; error ${await page.locator('#history-error').textContent()}`);
    });
    const now = await call('GET', `/api/services/${id}`);
    expect(now.json.Acl).to.equal('path_beg -i /shop/api');
    expect(now.headers.get('etag')).to.equal('"2"');
    const trail = await call('GET', `/api/audit?app=${encodeURIComponent(id)}`, undefined, { authorization: `Bearer ${OPS}` });
    expect(trail.json.entries[0]).to.deep.include({ op: 'revert', who: 'deploy', versionBefore: 1, versionAfter: 2 });
    // The history is read again after the revert, which shows in it as the newest change.
    await waitFor(async () => (await entries.count()) === 3, 'the revert in the history');
    expect(await entries.nth(0).locator('.audit-head strong').textContent()).to.equal('reverted');

    await page.locator('#history-close').click();
    await page.locator('#history').waitFor({ state: 'hidden' });
    await waitFor(async () => (await row(page, id).locator('code.rule').textContent()) === 'path_beg -i /shop/api', 'the list to show the reverted rule');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-focus-key'))).to.equal(`history:${id}`);
  });

  it('serves the UI files from api/ui only, and nothing else under /ui/', async () => {
    const raw = (path: string, method = 'GET') =>
      new Promise<{ status: number; type: string; body: string; allow?: string }>((resolve, reject) => {
        const u = new URL(api.url);
        const req = httpRequest({ host: u.hostname, port: u.port, path, method }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body, allow: res.headers.allow as string | undefined }));
        });
        req.on('error', reject);
        req.end();
      });
    const index = await raw('/');
    expect(index.status).to.equal(200);
    expect(index.body).to.contain('<script type="module" src="/ui/app.js"></script>');
    expect(index.body).to.not.match(/https?:\/\//); // nothing from the internet
    for (const [file, type] of [['app.js', 'text/javascript'], ['validate.js', 'text/javascript'], ['style.css', 'text/css']]) {
      const r = await raw(`/ui/${file}`);
      expect(r.status, file).to.equal(200);
      expect(r.type, file).to.contain(type);
      expect(r.body, file).to.not.match(/https?:\/\/(?!www\.w3\.org)/);
    }
    for (const path of ['/ui/../package.json', '/ui/..%2Fpackage.json', '/ui/%2e%2e/package.json', '/ui/', '/ui/nope.js', '/ui//etc/passwd']) {
      const r = await raw(path);
      expect(r.status, path).to.equal(404);
      expect(JSON.parse(r.body).code, path).to.equal('BAMBOO_NOT_FOUND');
    }
    const post = await raw('/ui/app.js', 'POST');
    expect(post.status).to.equal(405);
    expect(post.allow).to.equal('GET, HEAD');
  });
});
