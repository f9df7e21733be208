/**
 * Marathon's side of the api: the event callback (a hint that something changed; the intake fetches
 * the truth) and the operator's confirmation of a Marathon answer held by the shrink guard.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../../common/core/errors.js';
import { CALLBACK_PATH, sameSecret, scanCallbackBody } from '../edge.js';
import { oneAppNamed } from '../event-apps.js';
import type { Guards } from '../guards.js';
import { HeldChangedError, NothingHeldError } from '../shrink-guard.js';
import type { HeldAnswer } from '../shrink-policy.js';

const HELD_CONFIRM_PATH = '/api/marathon/held/confirm';

/**
 * Marathon callbacks may be this many times `Bamboo.MaxBodyBytes`: a deployment event carries the
 * whole plan (every app before and after), about 450 kB at 1,000 apps.
 */
export const CALLBACK_BODY_FACTOR = 256;

const HELD_CONFIRM_SCHEMA = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 128 } },
  required: ['id'],
} as const;

export interface MarathonDeps {
  intake: {
    onEvent(type: string, apps?: readonly string[] | null): void;
    /** Confirms the held Marathon answer `id`; throws NothingHeldError or HeldChangedError. */
    confirmHeld(id: string): Promise<HeldAnswer>;
  };
  guards: Pick<Guards, 'authWrite'>;
  /** Bamboo.CallbackSecret: when set, a callback URL must carry it. */
  callbackSecret: string;
  /** Bamboo.MaxBodyBytes; a callback may be CALLBACK_BODY_FACTOR times it. */
  maxBodyBytes: number;
}

export async function marathonRoutes(app: FastifyInstance, deps: MarathonDeps): Promise<void> {
  const { intake, guards, callbackSecret } = deps;
  const callbackLimit = deps.maxBodyBytes * CALLBACK_BODY_FACTOR;
  // A callback is refused before its body is read when the URL lacks the secret; its body is then
  // scanned as it arrives for the top-level event type and never held (EventTypeScanner), so a flood
  // of multi-megabyte callbacks costs a chunk each, and HttpRequestTimeoutMs cuts the slow ones.
  const callbackGuard = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!callbackSecret) return;
    const given = (req.query as Record<string, unknown>).secret;
    if (typeof given !== 'string' || !sameSecret(given, callbackSecret)) {
      reply.header('Connection', 'close');
      throw new ApiError('BAMBOO_FORBIDDEN', 'this Marathon callback URL lacks the callback secret (Bamboo.CallbackSecret); Marathon is given the right URL when the api subscribes');
    }
  };
  const callbackScan = async (req: FastifyRequest, reply: FastifyReply, payload: NodeJS.ReadableStream) => {
    const scanner = await scanCallbackBody(payload as Readable, callbackLimit).catch((err: unknown) => {
      reply.header('Connection', 'close');
      throw err;
    });
    if (scanner.bytes === 0) return Readable.from([]);
    if (!scanner.isObject) throw new ApiError('BAMBOO_BAD_JSON', 'a Marathon event is a JSON object; this body is not one');
    const small = Readable.from([Buffer.from(JSON.stringify({ eventType: scanner.eventType, appId: scanner.appId }))]) as Readable & { receivedEncodedLength?: number };
    // fastify compares the bytes received with Content-Length: report those of the real body.
    small.receivedEncodedLength = scanner.bytes;
    return small;
  };

  app.post(CALLBACK_PATH, { bodyLimit: callbackLimit, onRequest: callbackGuard, preParsing: callbackScan }, async (req, reply) => {
    // The payload is never trusted: it only says "something happened"; the fetch reads the truth.
    const body = req.body as { eventType?: unknown; appId?: unknown } | undefined;
    const type = body && typeof body === 'object' && typeof body.eventType === 'string' ? body.eventType.slice(0, 100) : 'unknown';
    // The app it names (top-level appId/runSpecId) lets the intake fetch that app alone.
    intake.onEvent(type, oneAppNamed(type, body?.appId));
    return reply.code(202).send({ accepted: true, eventType: type });
  });

  const requireHeldId = async (req: FastifyRequest) => {
    if (req.body === undefined || req.body === null) {
      throw new ApiError('BAMBOO_BAD_JSON', 'the request body is empty; send {"id":"<marathon.held.id from GET /status>"}');
    }
  };

  app.post(HELD_CONFIRM_PATH, { onRequest: guards.authWrite, preValidation: requireHeldId, schema: { body: HELD_CONFIRM_SCHEMA } }, async (req, reply) => {
    const { id } = req.body as { id: string };
    try {
      const held = await intake.confirmHeld(id);
      return reply.code(202).send({ confirmed: true, held });
    } catch (err) {
      if (err instanceof NothingHeldError) {
        throw new ApiError('BAMBOO_NOTHING_HELD', 'no Marathon answer is held back now (it was applied, or Marathon answered normally again); nothing to confirm. GET /status shows marathon.held');
      }
      if (err instanceof HeldChangedError) {
        throw new ApiError(
          'BAMBOO_HELD_CHANGED',
          `the Marathon answer held now is ${err.current.id}, not the one named (Marathon's answer changed since it was read); check "held" and confirm its id`,
          { held: err.current },
        );
      }
      throw err;
    }
  });
}
