import { GatewayError } from '../errors.js'
import { storeCommand, type RedisClient } from '../sessions/redis-client.js'
import { channelName, sessionKey, streamBytesKey, streamIndexKey, streamKey } from '../sessions/redis-keys.js'
import { checkedBatch, KEPT_EVENT_OVERHEAD_BYTES, KEPT_STREAM_OVERHEAD_BYTES, NOT_KEPT, type AppendOutcome, type StoredEvent, type StreamEventStore, type StreamEventStoreLimits, type StreamOwner } from './stream-event-store.js'

/*
 * Stored SSE streams in Redis (docs/scaling.md, "Keys and scripts"). One Redis Stream per response
 * stream, `<prefix>stream:{<tag>}:<id>:<stream>`, whose entry ids are `0-<seq>`: the event's
 * position is the entry id, so a resumption reads with XRANGE from an exclusive start and Redis
 * refuses an event stored out of order. Entries have short fields: `k` kind, `d` data, and `t` the
 * SSE event type when there is one. Beside them, `<prefix>streams:{<tag>}:<id>`, a sorted set of
 * the session's stream names scored by when each expires (Redis TIME), so that the session's end
 * finds every stream, and a long session's index holds only streams still kept. `<tag>` is the
 * session key's hash tag: streams, index and session share one Cluster slot, and each script below
 * reads or writes them atomically. Beside them too, `<prefix>streambytes:{<tag>}:<id>`, what the
 * session's streams keep, counted for the byte limits. Every key carries the retention as its TTL,
 * renewed by each append.
 *
 * Appends are told on the channel `<prefix>bridge:stream:{<tag>}:<id>:<stream>` (the stream key
 * without its prefix, through the session store's publish/subscribe), with an empty message: a
 * watcher reads again, whoever appended.
 */

/**
 * KEYS: session, stream, index, bytes. ARGV: max events, retention (ms), stream name, channel, the
 * stream's and the session's byte limits (0: none), the overhead counted per event and per stream,
 * then per event: seq, kind, data, type ('' for none). Returns 1 stored; 0 the session does not
 * exist; -1 the first seq is not above the stream's last one; 2 the session's byte limit, 3 the
 * stream's (or the stream was cut by one before); 4 no such stream and the batch does not start
 * one (seq 1): nothing of the batch stored.
 *
 * The byte counts live in the session's `bytes` hash: a field per stream (negative once the stream
 * was cut: nothing more is kept of it) and the session's total under ''. A new stream gives back
 * what the streams past their retention counted. A refusal on a stream already kept stores an end
 * marker (NOT_KEPT) where the refused events begin, so that a resume stops there at once. An end
 * marker alone is never refused. One call per batch: the TTL, the index and the publish are paid
 * once per batch, the index only once per stream (renew keeps it after that).
 */
const APPEND_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local retention = tonumber(ARGV[2])
local streamLimit = tonumber(ARGV[5])
local sessionLimit = tonumber(ARGV[6])
local counted = streamLimit > 0 or sessionLimit > 0
local first = 9
local isNew = redis.call('EXISTS', KEYS[2]) == 0
if isNew and ARGV[first] ~= '1' then return 4 end
local now = 0
if isNew then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
  if #expired > 0 then
    local freed = 0
    for _, name in ipairs(expired) do
      freed = freed + math.abs(tonumber(redis.call('HGET', KEYS[4], name)) or 0)
      redis.call('HDEL', KEYS[4], name)
    end
    if freed > 0 then redis.call('HINCRBY', KEYS[4], '', -freed) end
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  end
end
local cost = 0
if counted then
  local kept = tonumber(redis.call('HGET', KEYS[4], ARGV[3])) or 0
  if kept < 0 then return 3 end
  for index = first, #ARGV, 4 do cost = cost + #ARGV[index + 1] + #ARGV[index + 2] + #ARGV[index + 3] + tonumber(ARGV[7]) end
  if isNew then cost = cost + tonumber(ARGV[8]) end
  local endOnly = #ARGV == first + 3 and ARGV[first + 1] == 'end'
  local refused = 0
  if not endOnly and streamLimit > 0 and kept + cost > streamLimit then refused = 3
  elseif not endOnly and sessionLimit > 0 and (tonumber(redis.call('HGET', KEYS[4], '')) or 0) + cost > sessionLimit then refused = 2 end
  if refused ~= 0 then
    if not isNew then
      redis.pcall('XADD', KEYS[2], 'MAXLEN', '=', ARGV[1], '0-' .. ARGV[first], 'k', 'end', 'd', '${NOT_KEPT}')
      redis.call('HSET', KEYS[4], ARGV[3], -math.max(kept, 1))
      redis.call('PEXPIRE', KEYS[2], retention)
      redis.call('PUBLISH', ARGV[4], '')
    end
    return refused
  end
end
for index = first, #ARGV, 4 do
  local added
  if ARGV[index + 3] ~= '' then
    added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '=', ARGV[1], '0-' .. ARGV[index], 'k', ARGV[index + 1], 'd', ARGV[index + 2], 't', ARGV[index + 3])
  else
    added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '=', ARGV[1], '0-' .. ARGV[index], 'k', ARGV[index + 1], 'd', ARGV[index + 2])
  end
  if type(added) == 'table' and added.err then
    if index == first and string.find(added.err, 'equal or smaller', 1, true) then return -1 end
    return added
  end
end
redis.call('PEXPIRE', KEYS[2], retention)
if counted then
  redis.call('HINCRBY', KEYS[4], ARGV[3], cost)
  redis.call('HINCRBY', KEYS[4], '', cost)
  redis.call('PEXPIRE', KEYS[4], retention)
end
if isNew then
  redis.call('ZADD', KEYS[3], string.format('%.0f', now + retention), ARGV[3])
  redis.call('PEXPIRE', KEYS[3], retention)
end
redis.call('PUBLISH', ARGV[4], '')
return 1
`

/** KEYS: stream, index, bytes. ARGV: retention, stream name. Returns 0 when the stream does not exist, else 1. */
const RENEW_SCRIPT = `
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', KEYS[2], string.format('%.0f', now + tonumber(ARGV[1])), ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return 1
`

/**
 * KEYS: stream. ARGV: after, limit, byte budget (0: none). Returns the entries with ids above
 * `0-<after>`, oldest first (XRANGE's { id, { field, value, ... } } each), or nil when the stream
 * does not exist, or when nothing follows `after` and nothing ever will (`after` is past the last
 * entry, or the last entry is an end marker): an empty answer means "nothing new yet".
 */
const READ_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local limit = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local page
if budget == 0 then
  page = redis.call('XRANGE', KEYS[1], '(0-' .. ARGV[1], '+', 'COUNT', limit)
else
  -- A few entries at a time: large entries never make Redis copy more than a few past the budget.
  page = {}
  local bytes = 0
  local after = '(0-' .. ARGV[1]
  while #page < limit and bytes < budget do
    local entries = redis.call('XRANGE', KEYS[1], after, '+', 'COUNT', math.min(8, limit - #page))
    if #entries == 0 then break end
    for _, entry in ipairs(entries) do
      if #page > 0 and bytes >= budget then break end
      table.insert(page, entry)
      after = '(' .. entry[1]
      for index = 2, #entry[2], 2 do bytes = bytes + #entry[2][index] end
    end
  end
end
if #page == 0 then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  if last ~= nil and (tonumber(string.sub(last[1], 3)) < tonumber(ARGV[1]) or last[2][2] == 'end') then return false end
end
return page
`

/**
 * KEYS: index, bytes. ARGV: length of the key prefix in bytes. The stream keys are the index key with `streams:`
 * made `stream:`, then `:<name>`: the same hash tag, so the same slot. Returns how many streams
 * were deleted.
 */
const REMOVE_SESSION_SCRIPT = `
local prefix = tonumber(ARGV[1])
local base = string.sub(KEYS[1], 1, prefix + 6) .. string.sub(KEYS[1], prefix + 8) .. ':'
local removed = 0
for _, stream in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  removed = removed + redis.call('DEL', base .. stream)
end
redis.call('DEL', KEYS[1], KEYS[2])
return removed
`

/** The append script's answers (-1 is thrown). */
const APPEND_OUTCOMES: Readonly<Record<number, AppendOutcome>> = { 1: 'stored', 0: 'session gone', 2: 'session full', 3: 'stream full', 4: 'stream gone' }

/** An XRANGE entry: its id and its fields and values in turn. */
type StreamEntry = [string, string[]]

interface StreamScripts {
  appendStreamEvent (session: string, stream: string, index: string, bytes: string, ...args: Array<string | number>): Promise<number>
  readStreamEvents (stream: string, after: number, limit: number, maxBytes: number): Promise<StreamEntry[] | null>
  renewStream (stream: string, index: string, bytes: string, retention: number, name: string): Promise<number>
  removeSessionStreams (index: string, bytes: string, prefixLength: number): Promise<number>
}

type RedisWithStreamScripts = RedisClient & StreamScripts

export interface RedisStreamEventStoreOptions {
  /** The session store's client: the scripts check the session key, in the same slot. */
  readonly client: RedisClient
  readonly keyPrefix: string
  readonly limits: StreamEventStoreLimits
  /** The session store's publish/subscribe, so that every watch shares its one subscriber connection. */
  readonly subscribe: (channel: string, listener: (message: string) => void) => Promise<() => void>
}

export class RedisStreamEventStore implements StreamEventStore {
  readonly #redis: RedisWithStreamScripts
  readonly #prefix: string
  readonly #limits: StreamEventStoreLimits
  readonly #subscribe: RedisStreamEventStoreOptions['subscribe']

  constructor (options: RedisStreamEventStoreOptions) {
    const redis = options.client as RedisWithStreamScripts
    // Several stores over one client define the same scripts once.
    if (typeof redis.appendStreamEvent !== 'function') {
      redis.defineCommand('appendStreamEvent', { numberOfKeys: 4, lua: APPEND_SCRIPT })
      redis.defineCommand('readStreamEvents', { numberOfKeys: 1, lua: READ_SCRIPT })
      redis.defineCommand('renewStream', { numberOfKeys: 3, lua: RENEW_SCRIPT })
      redis.defineCommand('removeSessionStreams', { numberOfKeys: 2, lua: REMOVE_SESSION_SCRIPT })
    }
    this.#redis = redis
    this.#prefix = options.keyPrefix
    this.#limits = options.limits
    this.#subscribe = options.subscribe
  }

  /**
   * The script is issued before this function first awaits: appends called one after another go
   * out in that order on the one connection to the stream's master (ioredis keeps a connection's
   * order, auto-pipelined or not). An event whose seq is not above the stream's last one (a
   * duplicate, or one overtaken) rejects with MCPGW_INTERNAL_ERROR and stores nothing.
   */
  async append (owner: StreamOwner, stream: string, appended: StoredEvent | readonly StoredEvent[]): Promise<AppendOutcome> {
    const events = checkedBatch(appended)
    const { sessionId, principal } = owner
    const key = streamKey(this.#prefix, sessionId, principal, stream)
    const { maxEvents, retention, maxBytesPerStream, maxBytesPerSession } = this.#limits
    const args: Array<string | number> = [maxEvents, retention, stream, channelName(this.#prefix, this.#channel(key)),
      maxBytesPerStream, maxBytesPerSession, KEPT_EVENT_OVERHEAD_BYTES, KEPT_STREAM_OVERHEAD_BYTES]
    for (const event of events) args.push(event.seq, event.kind, event.data, event.type ?? '')
    const outcome = await storeCommand(() => this.#redis.appendStreamEvent(sessionKey(this.#prefix, sessionId, principal), key,
      streamIndexKey(this.#prefix, sessionId, principal), streamBytesKey(this.#prefix, sessionId, principal), ...args))
    if (outcome === -1) throw new GatewayError('MCPGW_INTERNAL_ERROR', { detail: 'a stored event\'s seq must be above the stream\'s last one' })
    return APPEND_OUTCOMES[outcome] ?? 'stored'
  }

  async renew (owner: StreamOwner, stream: string): Promise<boolean> {
    const { sessionId, principal } = owner
    return await storeCommand(() => this.#redis.renewStream(streamKey(this.#prefix, sessionId, principal, stream), streamIndexKey(this.#prefix, sessionId, principal),
      streamBytesKey(this.#prefix, sessionId, principal), this.#limits.retention, stream)) === 1
  }

  async read (owner: StreamOwner, stream: string, after: number, limit: number, maxBytes = 0): Promise<StoredEvent[] | null> {
    const from = Number.isSafeInteger(after) && after > 0 ? after : 0
    const entries = await storeCommand(() => this.#redis.readStreamEvents(streamKey(this.#prefix, owner.sessionId, owner.principal, stream), from, Math.max(0, Math.floor(limit)), Math.max(0, Math.floor(maxBytes))))
    return entries === null ? null : entries.map(eventFromEntry)
  }

  async watch (owner: StreamOwner, stream: string, onAppended: () => void): Promise<() => void> {
    const unsubscribe = await this.#subscribe(this.#channel(streamKey(this.#prefix, owner.sessionId, owner.principal, stream)), () => { onAppended() })
    let watching = true
    return () => {
      if (!watching) return
      watching = false
      unsubscribe()
    }
  }

  /** The publish/subscribe channel of a stream: its key without the prefix (the channel's name gets the prefix again). */
  #channel (key: string): string {
    return key.slice(this.#prefix.length)
  }

  async removeSession (owner: StreamOwner): Promise<void> {
    // Lua counts bytes, not UTF-16 units.
    await storeCommand(() => this.#redis.removeSessionStreams(streamIndexKey(this.#prefix, owner.sessionId, owner.principal),
      streamBytesKey(this.#prefix, owner.sessionId, owner.principal), Buffer.byteLength(this.#prefix)))
  }
}

function eventFromEntry ([id, fields]: StreamEntry): StoredEvent {
  const values: Record<string, string> = {}
  for (let index = 0; index + 1 < fields.length; index += 2) values[fields[index] as string] = fields[index + 1] as string
  const kind = values.k === 'priming' || values.k === 'end' ? values.k : 'message'
  const event = { seq: Number(id.slice(id.indexOf('-') + 1)), kind, data: values.d ?? '' } as const
  return values.t === undefined ? event : { ...event, type: values.t }
}
