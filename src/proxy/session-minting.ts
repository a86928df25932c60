import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Readable } from 'node:stream'
import { inspectInitializeResponse } from '../mcp/initialize-response.js'
import type { UpstreamAnswer } from '../upstream/upstream-client.js'
import type { JsonRpcRequest } from '../mcp/json-rpc.js'
import { isJsonObject } from '../mcp/json-rpc.js'
import { mintSessionId } from '../sessions/session-id.js'
import type { SessionData } from '../sessions/session-store.js'
import { SESSION_HEADER } from '../upstream/upstream-headers.js'
import type { RouteContext } from './route-context.js'

/**
 * Stores a new session for a successful initialize and marks the reply with its id. Called only
 * once the upstream (or, bridged, its `server/discover`) has answered with a result: a session id
 * is minted on the response carrying the InitializeResult, never before (MCP 2025-11-25, Basic ›
 * Transports › Session Management). `stateful`: the upstream session behind it, on a stateful route.
 */
export async function mintSession (context: RouteContext, request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest, protocolVersion: string, stateful?: Pick<SessionData, 'upstream'>): Promise<void> {
  const params = isJsonObject(initialize.params) ? initialize.params : {}
  const sessionId = mintSessionId()
  await context.store.create(sessionId, {
    route: context.route.path,
    protocolVersion,
    clientInfo: params.clientInfo ?? null,
    clientCapabilities: params.capabilities ?? null,
    principal: request.mcp.principal,
    ...stateful
  })
  request.mcp.sessionId = sessionId
  request.mcp.outcome = 'session created'
  context.checkpoint('initialize: minted')
  context.sessionsCreated.inc()
  reply.header(SESSION_HEADER, sessionId)
}

/** On a stateful route: the upstream session behind a new gateway session, and how to end it when none comes of it. */
export interface StatefulMint {
  readonly data: Pick<SessionData, 'upstream'>
  discard (): void
}

/**
 * Reads a 2xx answer to a forwarded initialize up to what decides it (JSON or SSE,
 * mcp/initialize-response.ts) and mints the session only for a result. Resolves with the whole body
 * to send on. `stateful`: the upstream session behind the new one, and how to end it when the
 * answer carries no result.
 */
export async function mintForAnswer (context: RouteContext, request: FastifyRequest, reply: FastifyReply, answer: UpstreamAnswer, initialize: JsonRpcRequest, stateful?: StatefulMint): Promise<Readable> {
  const inspected = await inspectInitializeResponse(answer.body, answer.headers['content-type'], initialize.id, context.upstream.maxResponseBytes)
  if (!inspected.outcome.minted) {
    request.mcp.outcome = `not minted: ${inspected.outcome.reason}`
    stateful?.discard()
    return inspected.body
  }
  try {
    await mintSession(context, request, reply, initialize, inspected.outcome.protocolVersion, stateful?.data)
  } catch (error) {
    // What the upstream opened is discarded by the caller, with anything else that failed.
    inspected.body.destroy()
    throw error
  }
  return inspected.body
}
