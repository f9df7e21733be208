/**
 * The simulator's app and task endpoints: `/v2/apps` (list with Marathon's filters and embeds,
 * create), `/v2/apps/{id}` (show, scale, destroy, its tasks, kill, restart) and `/v2/tasks`. They read
 * and change SimState; the lost-state faults shape what they answer.
 */
import type http from 'node:http';
import { servicePortsOf } from './definition.js';
import type { Faults } from './faults.js';
import { canonicalAppId, type AppRecord } from './records.js';
import { clientAddress, HttpError, readBody, sendJson } from './respond.js';
import type { SimState } from './state.js';
import type { AppDefinition, JsonObject, TaskState } from './types.js';
import { matchesIdFilter, matchesLabelSelector, parseEmbed, renderApp, renderTask, type Embed } from './wire.js';

/** What the app endpoints need from their server. */
export interface AppRoutesContext {
  state: SimState;
  faults: Faults;
  /** Clock of the version a DELETE answers. */
  clock: () => Date;
}

/** Serves the app and task endpoints; SimServer routes the requests here. */
export class AppRoutes {
  constructor(private readonly ctx: AppRoutesContext) {}

  /** GET /v2/apps: counts and deployments are always embedded (Marathon 1.x, kept for compatibility). */
  listApps(params: URLSearchParams): JsonObject[] {
    if (this.ctx.faults.emptyApps) return [];
    const keep = this.ctx.faults.keepApps;
    if (keep !== null) return this.listAppsUnfaulted(params).slice(0, keep);
    return this.listAppsUnfaulted(params);
  }

  private listAppsUnfaulted(params: URLSearchParams): JsonObject[] {
    const embed = parseEmbed(params.getAll('embed'));
    embed.add('counts').add('deployments');
    const id = params.get('id');
    const label = params.get('label');
    const cmd = params.get('cmd');
    return this.ctx.state
      .listApps()
      .filter((a) => (id ? matchesIdFilter(String(a.def['id']), id) : true))
      .filter((a) => (label ? matchesLabelSelector((a.def['labels'] ?? {}) as Record<string, unknown>, label) : true))
      .filter((a) => (cmd ? String(a.def['cmd'] ?? '').includes(cmd) : true))
      .map((a) => this.render(a, embed));
  }

  private render(app: AppRecord, embed: ReadonlySet<Embed>): JsonObject {
    return renderApp(app, embed, this.ctx.state.deploymentIdsOf(String(app.def['id'])));
  }

  /** Tasks of these apps as `/v2/tasks` lists them (with servicePorts), only those in one state with `?status=`. */
  listTasks(apps: AppRecord[], status: string | null): JsonObject[] {
    const wanted = status ? (`TASK_${status.toUpperCase()}` as TaskState) : null;
    return apps.flatMap((a) => {
      const servicePorts = servicePortsOf(a.def);
      return a.tasks.filter((t) => !wanted || t.state === wanted).map((t) => renderTask(t, servicePorts));
    });
  }

  private mustApp(appId: string): AppRecord {
    const app = this.ctx.state.findApp(appId);
    if (!app) throw new HttpError(404, `App '${canonicalAppId(appId)}' does not exist`);
    return app;
  }

  /** Routes /v2/apps/{id}[/tasks[/{taskId}] | /restart]; ids contain slashes, clients may double them. */
  async appRoute(req: http.IncomingMessage, res: http.ServerResponse, path: string, params: URLSearchParams, method: string): Promise<void> {
    let rest: string;
    try {
      rest = decodeURIComponent(path.slice('/v2/apps'.length));
    } catch {
      throw new HttpError(400, 'Invalid path encoding');
    }
    const state = this.ctx.state;
    const taskMatch = /^(.*)\/tasks\/([^/]+)$/.exec(rest);
    if (taskMatch && state.findApp(taskMatch[1] as string)) {
      if (method !== 'DELETE') throw new HttpError(405, 'HTTP 405 Method Not Allowed');
      const app = this.mustApp(taskMatch[1] as string);
      const task = app.tasks.find((t) => t.id === taskMatch[2]);
      if (!task) throw new HttpError(404, `Task '${taskMatch[2]}' does not exist`);
      const rendered = renderTask(task);
      const scale = params.get('scale') === 'true';
      const out = state.killTask(task.id, { scale });
      if (scale) return sendJson(res, this.ctx.faults, 200, { version: String(app.def['version'] ?? ''), deploymentId: out.deploymentId });
      return sendJson(res, this.ctx.faults, 200, { task: rendered });
    }
    if (rest.endsWith('/tasks') && state.findApp(rest.slice(0, -'/tasks'.length))) {
      if (method !== 'GET') throw new HttpError(405, 'HTTP 405 Method Not Allowed');
      const app = this.mustApp(rest.slice(0, -'/tasks'.length));
      return sendJson(res, this.ctx.faults, 200, { tasks: this.listTasks([app], params.get('status')) });
    }
    if (rest.endsWith('/restart') && method === 'POST' && state.findApp(rest.slice(0, -'/restart'.length))) {
      const { deploymentId } = state.rollingRestart(rest.slice(0, -'/restart'.length));
      const app = this.mustApp(rest.slice(0, -'/restart'.length));
      return sendJson(res, this.ctx.faults, 200, { version: String(app.def['version'] ?? ''), deploymentId });
    }
    switch (method) {
      case 'GET': {
        // GET /v2/apps/{id} always embeds tasks, counts, deployments and lastTaskFailure (AppsResource.show).
        const embed = parseEmbed(params.getAll('embed'));
        for (const e of ['counts', 'tasks', 'deployments', 'lastTaskFailure'] as const) embed.add(e);
        // A Marathon that lost its state (emptyApps, keepApps) knows the lost apps no more one by one.
        const f = this.ctx.faults;
        const lost = f.emptyApps || (f.keepApps !== null && state.listApps().findIndex((a) => a === state.findApp(rest)) >= f.keepApps);
        if (lost || f.unknownApps.has(canonicalAppId(rest))) throw new HttpError(404, `App '${canonicalAppId(rest)}' does not exist`);
        return sendJson(res, this.ctx.faults, 200, { app: this.render(this.mustApp(rest), embed) });
      }
      case 'PUT': {
        const body = (await readBody(req)) as JsonObject;
        if (!state.findApp(rest)) return this.createApp(req, res, path, { ...body, id: rest });
        const keys = Object.keys(body).filter((k) => k !== 'id');
        if (keys.length !== 1 || keys[0] !== 'instances' || typeof body['instances'] !== 'number') {
          throw new HttpError(400, 'marathon-sim only supports {"instances": n} updates; use the simulator controls for other changes');
        }
        const { deploymentId } = state.scaleApp(rest, body['instances'], { clientIp: clientAddress(req) });
        return sendJson(res, this.ctx.faults, 200, { version: String(this.mustApp(rest).def['version']), deploymentId });
      }
      case 'DELETE': {
        this.mustApp(rest);
        const { deploymentId } = state.destroyApp(rest);
        return sendJson(res, this.ctx.faults, 200, { version: this.ctx.clock().toISOString(), deploymentId });
      }
      default:
        throw new HttpError(405, 'HTTP 405 Method Not Allowed');
    }
  }

  /** POST /v2/apps (or PUT of an unknown id): 201 with the app and its deployment. */
  async createApp(req: http.IncomingMessage, res: http.ServerResponse, path: string, given?: JsonObject): Promise<void> {
    const body = given ?? ((await readBody(req)) as JsonObject);
    if (typeof body['id'] !== 'string' || body['id'].replace(/\//g, '') === '') throw new HttpError(422, 'Object is not valid: id must be given');
    if (this.ctx.state.findApp(body['id'])) throw new HttpError(409, `An app with id [${canonicalAppId(body['id'])}] already exists.`);
    const { deploymentId, appId } = this.ctx.state.deployApp(body as AppDefinition, { clientIp: clientAddress(req), uri: path });
    const app = this.mustApp(appId);
    const out = { ...renderApp(app, new Set<Embed>(['counts']), []), deployments: [{ id: deploymentId }] };
    sendJson(res, this.ctx.faults, 201, out, { Location: `/v2/apps${appId}`, 'Marathon-Deployment-Id': deploymentId });
  }
}
