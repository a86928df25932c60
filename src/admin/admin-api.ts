import type { FastifyInstance, FastifyRequest } from 'fastify'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { SessionBinding } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'
import { hashPrincipal } from '../security/principal.js'
import type { SessionEnding } from '../sessions/session-ending.js'
import { SESSION_ID_SOURCE } from '../sessions/session-id.js'
import { LIST_CURSOR_PATTERN, type SessionRecord, type SessionStore } from '../sessions/session-store.js'

/*
 * Admin API (docs/operating.md), registered only when `admin.token` is set: otherwise these paths are 404
 * like any unknown path. Every call needs `Authorization: Bearer <admin.token>`, compared in
 * constant time (over SHA-256 digests, so the length of the token leaks nothing either).
 *
 *   GET    /admin/sessions?cursor&limit&route&principal   one page of live sessions
 *   GET    /admin/sessions/:id                            one session
 *   DELETE /admin/sessions/:id                            end it (the client then gets 404)
 *   DELETE /admin/sessions?principal=...                  end everything a principal holds
 *
 * `principal` is the identity as the binding sees it (the JWT claim value, or the header value) and
 * is hashed the same way; listings show the hash, which is all Redis holds.
 *
 * Inputs are checked by route schemas before anything reaches the store: an id must have the shape
 * of a session id (src/sessions/session-id.ts), a cursor the shape every store hands out, a limit
 * 1 to 1000; anything else is a 400 (MCPGW_INVALID_REQUEST, from the gateway's error handler).
 *
 * Registered as an encapsulated plugin on purpose (not fastify-plugin-wrapped): its token hook must
 * guard these routes and no others.
 */

export interface AdminApiOptions {
  readonly token: string
  readonly store: SessionStore
  /** Admin ends go the way every end goes: counted, and told to every replica. */
  readonly sessionEnding: SessionEnding
  readonly binding: SessionBinding
}

const DEFAULT_PAGE_SIZE = 100
const MAX_PAGE_SIZE = 1000

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

function view (session: SessionRecord): Record<string, unknown> {
  return {
    id: session.id,
    route: session.route,
    protocolVersion: session.protocolVersion,
    principal: session.principal ?? null,
    clientInfo: session.clientInfo,
    clientCapabilities: session.clientCapabilities,
    createdAt: new Date(session.createdAt).toISOString()
  }
}

interface ListQuery { cursor?: string, limit?: number, route?: string, principal?: string }

/** Longest route or principal accepted in a query: far beyond any real one, short enough for a log line. */
const MAX_QUERY_TEXT = 1024

const sessionIdParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: `^${SESSION_ID_SOURCE}$` } },
  required: ['id']
} as const

const principalProperty = { type: 'string', minLength: 1, maxLength: MAX_QUERY_TEXT } as const

const listQuerystring = {
  type: 'object',
  properties: {
    cursor: { type: 'string', pattern: LIST_CURSOR_PATTERN },
    limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE },
    route: { type: 'string', minLength: 1, maxLength: MAX_QUERY_TEXT },
    principal: principalProperty
  },
  additionalProperties: false
} as const

const terminatePrincipalQuerystring = {
  type: 'object',
  properties: { principal: principalProperty },
  required: ['principal'],
  additionalProperties: false
} as const

export async function adminApi (fastify: FastifyInstance, options: AdminApiOptions): Promise<void> {
  const expected = digest(options.token)
  const { store, sessionEnding, binding } = options

  fastify.addHook('onRequest', async function requireAdminToken (request) {
    const header = request.headers.authorization
    const presented = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice('Bearer '.length) : ''
    if (!timingSafeEqual(digest(presented), expected)) {
      throw new GatewayError('MCPGW_ADMIN_UNAUTHORIZED', { headers: { 'www-authenticate': 'Bearer realm="mcp-session-gateway-admin"' } })
    }
  })

  function principalOf (raw: string | undefined): string | undefined {
    if (raw === undefined || raw === '') return undefined
    if (binding.kind === 'none') throw new GatewayError('MCPGW_INVALID_REQUEST', { detail: 'sessions are not bound to principals (sessions.binding)' })
    return hashPrincipal(binding.kind, raw)
  }

  fastify.get('/admin/sessions', { schema: { querystring: listQuerystring } }, async function listSessions (request: FastifyRequest<{ Querystring: ListQuery }>) {
    const limit = request.query.limit ?? DEFAULT_PAGE_SIZE
    const page = await store.list({ cursor: request.query.cursor, limit, route: request.query.route, principal: principalOf(request.query.principal) })
    return { sessions: page.sessions.map(view), nextCursor: page.nextCursor ?? null }
  })

  fastify.get('/admin/sessions/:id', { schema: { params: sessionIdParams } }, async function getSession (request: FastifyRequest<{ Params: { id: string } }>) {
    const session = await store.get(request.params.id)
    if (session === null) throw new GatewayError('MCPGW_ADMIN_SESSION_NOT_FOUND')
    return view(session)
  })

  fastify.delete('/admin/sessions/:id', { schema: { params: sessionIdParams } }, async function terminateSession (request: FastifyRequest<{ Params: { id: string } }>, reply) {
    if (!await sessionEnding.byAdmin(request.params.id)) throw new GatewayError('MCPGW_ADMIN_SESSION_NOT_FOUND')
    request.mcp.outcome = 'session terminated by admin'
    return reply.code(204).send()
  })

  fastify.delete('/admin/sessions', { schema: { querystring: terminatePrincipalQuerystring } }, async function terminatePrincipal (request: FastifyRequest<{ Querystring: { principal: string } }>) {
    const principal = principalOf(request.query.principal)
    if (principal === undefined) throw new GatewayError('MCPGW_INVALID_REQUEST', { detail: 'DELETE /admin/sessions needs ?principal=' })
    const terminated = await sessionEnding.byAdminForPrincipal(principal)
    request.mcp.outcome = `${terminated} sessions terminated by admin`
    return { terminated }
  })
}
