import { randomBytes } from 'node:crypto'

/*
 * Session ids (SPEC-NOTES, legacy rule 2): globally unique, cryptographically random, visible ASCII
 * only. 24 random bytes (192 bits) in base64url give 32 characters from [A-Za-z0-9_-], all inside
 * 0x21-0x7E and safe in a header, a log field and a Redis key.
 */
const SESSION_ID_BYTES = 24
export const SESSION_ID_LENGTH = 32

const sessionIdPattern = /^[A-Za-z0-9_-]{32}$/

export function mintSessionId (): string {
  return randomBytes(SESSION_ID_BYTES).toString('base64url')
}

/**
 * An id we could have minted. Anything else (too long, foreign characters) is answered 404 without
 * touching the store: it cannot exist there, and hostile ids never reach Redis.
 */
export function isWellFormedSessionId (id: string): boolean {
  return sessionIdPattern.test(id)
}

/** What logs show of an id: enough to correlate lines, far too little to use (8 of 32 characters). */
export function shortSessionId (id: string): string {
  return `${id.slice(0, 8)}…`
}
