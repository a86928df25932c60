import { randomBytes } from 'node:crypto'

/*
 * Event ids of resumable streams (docs/streams.md): `<stream>.<position>`, e.g. `rQ9x…Zk.17`. The
 * stream part is random (a kind letter and 16 base64url characters), the position counts the
 * stream's events from 1. An id says which stream and where in it, as the spec asks (2025-11-25,
 * Resumability and Redelivery), and nothing else: no session id, no time, no count of anything
 * outside its own stream. It is at most 34 visible ASCII characters.
 */

/** A POST's response stream ends with its response; a standalone (GET) stream lives with the session. */
export type StreamKind = 'response' | 'standalone'

const KIND_LETTER: Record<StreamKind, string> = { response: 'r', standalone: 'g' }
const EVENT_ID = /^([rg])([A-Za-z0-9_-]{16})\.([1-9][0-9]{0,14})$/

export interface ParsedEventId {
  readonly stream: string
  readonly kind: StreamKind
  readonly seq: number
}

export function newStreamName (kind: StreamKind): string {
  return KIND_LETTER[kind] + randomBytes(12).toString('base64url')
}

export function formatEventId (stream: string, seq: number): string {
  return `${stream}.${seq}`
}

/** The id a client sent back in `Last-Event-ID`; undefined for anything the gateway did not make. */
export function parseEventId (value: string | string[] | undefined): ParsedEventId | undefined {
  if (typeof value !== 'string') return undefined
  const match = EVENT_ID.exec(value)
  if (match === null) return undefined
  return { stream: `${match[1] as string}${match[2] as string}`, kind: match[1] === 'r' ? 'response' : 'standalone', seq: Number(match[3]) }
}
