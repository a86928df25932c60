import { SESSION_ID_SOURCE } from './session-id.js'

/*
 * The Redis key names of a session and of what belongs to it (docs/scaling.md, "Keys and scripts"),
 * in one place so that the session store, the expiry listener and the stream event store agree.
 * What belongs to one session sits in the session key's Cluster slot, so that one script can check
 * the session and change its belongings atomically.
 */

/** `<prefix>session:<id>` unbound; `<prefix>session:{<principal>}:<id>` bound (tagged by its principal). */
export function sessionKey (prefix: string, id: string, principal: string | undefined): string {
  return principal === undefined ? `${prefix}session:${id}` : `${prefix}session:{${principal}}:${id}`
}

/** The principal's index, or the session key itself when unbound (the session scripts always take two keys). */
export function indexKey (prefix: string, id: string, principal: string | undefined): string {
  return principal === undefined ? sessionKey(prefix, id, undefined) : `${prefix}principal:{${principal}}`
}

/**
 * What Redis Cluster hashes of `key` to pick its slot (Cluster specification, "Hash tags"): the
 * part between the first `{` and the first `}` after it, when that part is not empty; otherwise
 * the whole key.
 */
export function hashTag (key: string): string {
  const open = key.indexOf('{')
  if (open === -1) return key
  const close = key.indexOf('}', open + 1)
  return close === -1 || close === open + 1 ? key : key.slice(open + 1, close)
}

/**
 * One stored SSE stream of a session: `<prefix>stream:{<tag>}:<id>:<stream>`, `<tag>` being the
 * session key's hash tag, so the stream lives in the session's slot (a bound session's: its
 * principal; an unbound one's: the whole session key).
 */
export function streamKey (prefix: string, id: string, principal: string | undefined, stream: string): string {
  return `${streamKeyBase(prefix, id, principal)}:${stream}`
}

/** The set of a session's stream names, `<prefix>streams:{<tag>}:<id>`, in the same slot. */
export function streamIndexKey (prefix: string, id: string, principal: string | undefined): string {
  return `${prefix}streams:{${hashTag(sessionKey(prefix, id, principal))}}:${id}`
}

/**
 * What a session's streams keep, counted for the byte limits, `<prefix>streambytes:{<tag>}:<id>`: a
 * hash of stream name → bytes, and the session's total under '' (docs/streams.md, "Limits").
 */
export function streamBytesKey (prefix: string, id: string, principal: string | undefined): string {
  return `${prefix}streambytes:{${hashTag(sessionKey(prefix, id, principal))}}:${id}`
}

function streamKeyBase (prefix: string, id: string, principal: string | undefined): string {
  return `${prefix}stream:{${hashTag(sessionKey(prefix, id, principal))}}:${id}`
}

/**
 * What a stateful upstream's session needs after its gateway session has gone,
 * `<prefix>upstream:{<tag>}:<id>`, in the session's slot (docs/stateful-upstreams.md).
 */
export function upstreamSessionKey (prefix: string, id: string, principal: string | undefined): string {
  return `${prefix}upstream:{${hashTag(sessionKey(prefix, id, principal))}}:${id}`
}

/** Live upstream sessions per instance of one route: a hash of instance name (upstream/instance-key.ts) → count. */
export function upstreamCountsKey (prefix: string, route: string): string {
  return `${prefix}upstream-sessions:${route}`
}

/** The Redis channel of a store's publish/subscribe `channel`. */
export function channelName (prefix: string, channel: string): string {
  return `${prefix}bridge:${channel}`
}

function escapeForRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Reads the id and principal back from a session key of `prefix`; undefined for any other key. */
export function sessionKeyParser (prefix: string): (key: string) => { readonly id: string, readonly principal: string | undefined } | undefined {
  const pattern = new RegExp(`^${escapeForRegExp(prefix)}session:(?:\\{([^}]*)\\}:)?(${SESSION_ID_SOURCE})$`)
  return (key) => {
    const match = pattern.exec(key)
    return match === null ? undefined : { id: match[2] as string, principal: match[1] }
  }
}
