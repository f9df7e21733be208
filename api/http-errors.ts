/**
 * How the api answers what goes wrong: every error, from fastify, ZooKeeper, a route or Node's HTTP
 * parser, becomes a coded ApiError (common/core/errors.ts) in one JSON shape (docs/api.md).
 */
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply } from 'fastify';
import { ApiError } from '../common/core/errors.js';
import type { Logger } from '../common/log.js';
import type { Metrics } from '../common/adapters/statsd/metrics.js';
import { ZkUnavailableError } from '../common/adapters/zookeeper/zk-errors.js';

/** One ajv error as a sentence naming the field. */
function describeValidation(err: FastifyError): ApiError {
  const first = err.validation?.[0];
  const ctx = err.validationContext ?? 'body';
  if (!first) return new ApiError('BAMBOO_INVALID_BODY', err.message);
  const path = first.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const where = path ? `${ctx === 'body' ? '' : ctx + ' '}"${path}"` : ctx === 'body' ? 'the body' : ctx;
  const params = first.params as Record<string, unknown>;
  let message: string;
  switch (first.keyword) {
    case 'additionalProperties':
      message = ctx === 'body' && !path
        ? `unknown field ${JSON.stringify(String(params.additionalProperty))}: a service record has "id", "acl" and "config"`
        : `${where} has an unknown field ${JSON.stringify(String(params.additionalProperty))}`;
      break;
    case 'type':
      message = !path && ctx === 'body'
        ? 'the body must be a JSON object like {"id":"/group/app","acl":"path_beg -i /app"}'
        : `${where} must be a ${String(params.type)}`;
      break;
    case 'enum':
      message = `${where} must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
      break;
    case 'maxProperties':
      message = `${where} has too many keys (at most ${String(params.limit)})`;
      break;
    case 'maxLength':
      message = `${where} is too long (at most ${String(params.limit)} characters)`;
      break;
    default:
      message = `${where} ${first.message ?? 'is invalid'}`;
  }
  if (ctx === 'querystring' || ctx === 'params' || ctx === 'headers') return new ApiError('BAMBOO_INVALID_PARAMETER', message);
  if (/^config(\.|$)/i.test(path)) return new ApiError('BAMBOO_INVALID_CONFIG', message);
  return new ApiError('BAMBOO_INVALID_BODY', message);
}

/** Any error -> the ApiError answered (`method`: the request's, to word ZooKeeper failures of writes). */
export function toApiError(err: unknown, method = 'GET'): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ZkUnavailableError) {
    // A write whose connection broke after it was sent may have been applied: ZooKeeper cannot say.
    const write = method !== 'GET' && method !== 'HEAD';
    const outcome = write && err.inFlight
      ? 'the connection broke while the change was on its way, so it may have been applied: read the record back (GET, ETag) or retry with If-Match'
      : 'nothing was changed';
    return new ApiError('BAMBOO_ZK_UNAVAILABLE', `${err.message}; ${outcome}. Retry later; GET /status shows when ZooKeeper is back`);
  }
  const e = err as FastifyError;
  if (e?.validation) return describeValidation(e);
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('BAMBOO_BODY_TOO_LARGE', 'the request body is larger than Bamboo.MaxBodyBytes allows; a service record is a few hundred bytes');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('BAMBOO_UNSUPPORTED_MEDIA_TYPE', 'the body must be JSON (Content-Type: application/json)');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('BAMBOO_BAD_JSON', 'the request body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError('BAMBOO_BAD_JSON', `the request body is not valid JSON (${e.message}); send a JSON object`);
    case 'FST_ERR_BAD_URL':
      return new ApiError('BAMBOO_INVALID_PARAMETER', 'the URL has a malformed percent-escape; encode "%" as %25');
    default:
      break;
  }
  if (e?.statusCode === 413) return new ApiError('BAMBOO_BODY_TOO_LARGE', 'the request body is too large');
  if (e?.statusCode === 415) return new ApiError('BAMBOO_UNSUPPORTED_MEDIA_TYPE', 'the body must be JSON');
  if (e?.statusCode === 400) return new ApiError('BAMBOO_INVALID_BODY', String(e.message ?? 'bad request'));
  return new ApiError('BAMBOO_INTERNAL', 'an unexpected error happened; it was logged. Retry, and report it if it persists');
}

/** Answers `err` in the coded JSON shape, counting it. */
export function sendError(reply: FastifyReply, err: ApiError, metrics: Pick<Metrics, 'apiError'>): FastifyReply {
  metrics.apiError(err.code);
  for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
  return reply.code(err.status).type('application/json; charset=utf-8').send(JSON.stringify(err.body()));
}

/**
 * A request Node's HTTP parser refuses (raw spaces or non-ASCII bytes in the URL, headers over
 * 16 KiB) never reaches a route; this answers it on the raw socket in the same coded shape.
 */
export function clientErrorHandler(metrics: Pick<Metrics, 'apiError'>, log: Logger): (err: Error, socket: Socket) => void {
  return (err, socket) => {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ECONNRESET' || socket.destroyed) return;
    if (e.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      socket.destroy(err); // nobody is waiting for an answer
      return;
    }
    const api =
      e.code === 'HPE_HEADER_OVERFLOW'
        ? new ApiError('BAMBOO_HEADERS_TOO_LARGE', 'the request headers are larger than 16 KiB; send fewer or shorter headers')
        : new ApiError('BAMBOO_BAD_REQUEST', `the request is not valid HTTP (${e.code ?? 'parse error'}); percent-encode spaces, control characters and non-ASCII bytes in the URL`);
    metrics.apiError(api.code);
    log.debug({ code: api.code, parser: e.code }, 'request rejected before routing');
    const body = JSON.stringify(api.body());
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${api.status} ${STATUS_CODES[api.status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy(err);
  };
}
