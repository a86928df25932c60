import { randomBytes } from 'node:crypto'

/*
 * Session ids (MCP 2025-11-25, Basic › Transports › Session Management): globally unique, cryptographically random, visible ASCII
 * only. 24 random bytes (192 bits) in base64url give 32 characters from [A-Za-z0-9_-]; then a dot
 * and the creation time in base36 milliseconds. All inside 0x21-0x7E, safe in a header, a log field
 * and a Redis key. The creation time lets any replica tell, when Redis reports a session's key as
 * expired, whether its idle timeout or its max lifetime ended it (docs/operating.md, metrics): the key's data
 * is gone by then. It reveals nothing a client did not already know.
 */
const SESSION_ID_BYTES = 24

const sessionIdPattern = /^[A-Za-z0-9_-]{32}\.[0-9a-z]{8,10}$/

/** The id pattern without anchors, for finding ids inside Redis keys. */
export const SESSION_ID_SOURCE = '[A-Za-z0-9_-]{32}\\.[0-9a-z]{8,10}'

export function mintSessionId (createdAt: number = Date.now()): string {
  return `${randomBytes(SESSION_ID_BYTES).toString('base64url')}.${createdAt.toString(36)}`
}

/**
 * An id we could have minted. Anything else (too long, foreign characters) is answered 404 without
 * touching the store: it cannot exist there, and hostile ids never reach Redis.
 */
export function isWellFormedSessionId (id: string): boolean {
  return sessionIdPattern.test(id)
}

/** When the session was minted (ms since the epoch, by the minting gateway's clock). */
export function sessionIdCreatedAt (id: string): number {
  return parseInt(id.slice(id.indexOf('.') + 1), 36)
}

/** What logs show of an id: enough to correlate lines, far too little to use (8 of 32 random characters). */
export function shortSessionId (id: string): string {
  return `${id.slice(0, 8)}…`
}
