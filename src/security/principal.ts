import { createHash, createPublicKey, type KeyObject } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose'
import type { SessionBinding } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'

/*
 * Who is calling (docs/security.md; MCP Security Best Practices, "Session Hijacking": bind a session to the caller's
 * identity so that a stolen or guessed id is useless to anyone else). The principal is a hash: no
 * token or header value is ever stored in Redis. With `jwt` it is the verified token's claim (a
 * stable identity), so a refreshed token for the same subject keeps its sessions.
 */

/** 24 base64url characters of SHA-256: 144 bits, safe in a Redis hash tag ({ } never appear). */
export function hashPrincipal (kind: 'header' | 'jwt', value: string): string {
  return createHash('sha256').update(`${kind}\u0000${value}`).digest('base64url').slice(0, 24)
}

export type PrincipalResolver = (headers: IncomingHttpHeaders) => Promise<string> | string

const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']
const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512']
const REALM = 'Bearer realm="mcp-session-gateway"'

function unauthorized (detail: string, invalidToken: boolean): GatewayError {
  const challenge = invalidToken ? `${REALM}, error="invalid_token", error_description="${detail.replace(/["\\]/g, '')}"` : REALM
  return new GatewayError('MCPGW_UNAUTHORIZED', { detail, headers: { 'www-authenticate': challenge } })
}

function bearerToken (headers: IncomingHttpHeaders): string | undefined {
  const value = headers.authorization
  const match = typeof value === 'string' ? /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(value) : null
  return match?.[1]
}

/** Why a token failed, in words safe to send back (never the token itself). */
function verificationFailure (error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'the token has expired'
  if (error instanceof joseErrors.JWTClaimValidationFailed && error.reason === 'missing') return `the token has no ${error.claim} claim`
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `the token's ${error.claim} claim is not accepted`
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature is invalid'
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'the token algorithm is not accepted'
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'no key matches the token'
  return 'the token is not a valid JWT'
}

/**
 * null when sessions are not bound: the route then skips identity entirely. `log` hears, once, at
 * start-up, of a JWT binding that checks neither issuer nor audience.
 */
export function createPrincipalResolver (binding: SessionBinding, log?: FastifyBaseLogger): PrincipalResolver | null {
  switch (binding.kind) {
    case 'none':
      return null
    case 'header': {
      const name = binding.header
      return (headers) => {
        const value = headers[name]
        // Absent is an identity too ("no token"): it never matches a session made with one.
        return hashPrincipal('header', Array.isArray(value) ? value.join(', ') : value ?? '')
      }
    }
    case 'jwt': {
      let key: JWTVerifyGetKey | KeyObject | Uint8Array
      let algorithms: string[]
      if (binding.jwksUrl !== undefined) {
        key = createRemoteJWKSet(new URL(binding.jwksUrl))
        algorithms = ASYMMETRIC_ALGORITHMS
      } else if (binding.publicKey !== undefined) {
        key = createPublicKey(binding.publicKey)
        algorithms = ASYMMETRIC_ALGORITHMS
      } else {
        key = new TextEncoder().encode(binding.secret)
        algorithms = HMAC_ALGORITHMS
      }
      const options = {
        algorithms,
        // A token that never expires stays usable forever once leaked (docs/security.md).
        ...(binding.requireExp ? { requiredClaims: ['exp'] } : {}),
        ...(binding.issuer === undefined ? {} : { issuer: binding.issuer }),
        ...(binding.audience === undefined ? {} : { audience: binding.audience })
      }
      const unchecked = (['issuer', 'audience'] as const).filter((claim) => binding[claim] === undefined)
      if (unchecked.length > 0) {
        // A token the same key signed for another service is then accepted here too (RFC 8725,
        // JWT Best Current Practices, 3.8 "Validate Issuer and Subject", 3.9 "Use and Validate Audience").
        log?.warn({ unchecked: unchecked.map((claim) => `sessions.binding.jwt.${claim}`) },
          'JWT binding without issuer or audience: tokens issued for other audiences are accepted; set both')
      }
      return async (headers) => {
        const token = bearerToken(headers)
        if (token === undefined) throw unauthorized('missing bearer token', false)
        let payload: Record<string, unknown>
        try {
          payload = (await jwtVerify(token, key as Parameters<typeof jwtVerify>[1], options)).payload
        } catch (error) {
          // A JWKS that cannot be fetched is our dependency failing, not the caller's fault.
          if (error instanceof joseErrors.JWKSTimeout || !(error instanceof joseErrors.JOSEError)) {
            throw new GatewayError('MCPGW_IDENTITY_PROVIDER_UNAVAILABLE', { cause: error })
          }
          throw unauthorized(verificationFailure(error), true)
        }
        const identity = payload[binding.claim]
        if (identity === undefined) throw unauthorized(`the token has no ${binding.claim} claim`, true)
        // Only a JSON string names a principal (`sub` is a StringOrURI, RFC 7519 §4.1.2; docs/security.md).
        // A number would merge identities: 64-bit subjects that round to one JavaScript number, and
        // 123 and "123", would be one principal, sharing and ending each other's sessions.
        if (typeof identity !== 'string') throw unauthorized(`the token's ${binding.claim} claim is not a string`, true)
        // An empty identity would be one principal shared by every token that has one.
        if (identity === '') throw unauthorized(`the token's ${binding.claim} claim is empty`, true)
        return hashPrincipal('jwt', identity)
      }
    }
  }
}
