/**
 * Who may do what: writes need a valid credential once any is configured and are rate limited per
 * credential; unredacted values need a credential always. Route hooks built on api/edge.ts.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../common/core/errors.js';
import { ANONYMOUS, type Authenticator, type WriteLimiter } from './edge.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Who sent the request: the name of the credential its bearer token matched (a name from
     * Bamboo.AuthTokens, or `default` for Bamboo.AuthToken), or `anonymous`. Writes are attributed
     * to it (the rule-change log line carries it as `credential`).
     */
    credential: string;
  }
}

/** The checks routes put in front of their handlers; each throws a coded ApiError. */
export interface Guards {
  /** onRequest hook of every write: a credential when required, then the write rate limit. */
  authWrite(req: FastifyRequest): Promise<void>;
  /** Secret values (unredacted state) need a valid credential, always. */
  requireCredential(req: FastifyRequest): void;
  /** Reads that tell who did what (the audit trail): a credential once any is configured, no rate limit. */
  authRead(req: FastifyRequest): Promise<void>;
}

export function createGuards(auth: Pick<Authenticator, 'enabled'>, limiter: Pick<WriteLimiter, 'take'>): Guards {
  function unauthorised(req: FastifyRequest): ApiError {
    const given = req.headers.authorization !== undefined;
    return new ApiError(
      'BAMBOO_UNAUTHORIZED',
      given ? 'the bearer token is not valid; send Authorization: Bearer <token> with a token of Bamboo.AuthTokens (or Bamboo.AuthToken)' : 'this request needs Authorization: Bearer <token> (a token of Bamboo.AuthTokens, or Bamboo.AuthToken)',
      {},
      { 'WWW-Authenticate': given ? 'Bearer realm="bamboo", error="invalid_token"' : 'Bearer realm="bamboo"' },
    );
  }

  /** Writes need a valid credential once any is configured (without any, see checkExposure). */
  function requireAuth(req: FastifyRequest): void {
    if (!auth.enabled || req.credential !== ANONYMOUS) return;
    throw unauthorised(req);
  }

  /** Secret values (unredacted state) need a valid credential, always: without any configured, nobody gets them. */
  function requireCredential(req: FastifyRequest): void {
    if (!auth.enabled) {
      throw new ApiError('BAMBOO_FORBIDDEN', 'unredacted values need a credential and none is configured; set Bamboo.AuthTokens (or Bamboo.AuthToken) and send it as a bearer token');
    }
    if (req.credential === ANONYMOUS) throw unauthorised(req);
  }

  /** One token bucket per credential name (anonymous: per client address). */
  function limitWrite(req: FastifyRequest): void {
    const key = req.credential === ANONYMOUS ? `${ANONYMOUS}@${req.ip}` : req.credential;
    const wait = limiter.take(key);
    if (wait === 0) return;
    throw new ApiError(
      'BAMBOO_RATE_LIMITED',
      `too many rule writes from ${req.credential === ANONYMOUS ? 'this client address' : `credential ${JSON.stringify(req.credential)}`}; retry in ${wait} s (Bamboo.WriteRateBurst, Bamboo.WriteRatePerMinute)`,
      { retryAfter: wait },
      { 'Retry-After': String(wait) },
    );
  }

  return {
    authWrite: async (req) => {
      requireAuth(req);
      limitWrite(req);
    },
    requireCredential,
    authRead: async (req) => requireAuth(req),
  };
}
