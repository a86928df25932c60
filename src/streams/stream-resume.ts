import type { FastifyBaseLogger } from 'fastify'
import { randomBytes } from 'node:crypto'
import type { ReplicaRelay } from '../sessions/replica-relay.js'
import { formatEventId, type ParsedEventId } from './event-id.js'
import { heartbeatInterval } from './recorded-stream.js'
import type { SseResponse } from './sse-response.js'
import { NOT_KEPT, storedEventBytes, type StoredEvent, type StreamEventStore, type StreamOwner } from './stream-event-store.js'

/*
 * A client comes back with `GET` + `Last-Event-ID` (MCP 2025-11-25, Resumability and Redelivery;
 * docs/streams.md), on any replica. The session (and its principal) was checked before: a stream is
 * looked up only under that session, so an id of another session's stream finds nothing. What was
 * kept after that id is replayed, from that stream only; then the stream is followed live, across
 * replicas: the replica holding the upstream appends, this one is told of each append by the store
 * (Redis pub/sub) and reads what is new. Nothing polls.
 *
 * A response stream ends here with its end (its final response went out). A standalone stream was
 * claimed first, so its holder ends it: once its end has been read (or after a short wait when its
 * holder is gone) the caller continues with a fresh standalone stream on the same response.
 */

export interface ResumeOptions {
  readonly events: StreamEventStore
  readonly relay: ReplicaRelay
  readonly owner: StreamOwner
  readonly lastEventId: ParsedEventId
  readonly client: SseResponse
  /** streams.retention: a response stream quiet for this long is no longer kept anywhere. */
  readonly retention: number
  /** Aborts when the session ends. */
  readonly sessionEnded: AbortSignal
  readonly log: FastifyBaseLogger
}

/** What a resume came to: `unknown` when the store holds no such stream (nothing was sent). */
export type ResumeOutcome = 'unknown' | 'ended' | 'interrupted'

/**
 * Events read per round trip while replaying, and their data bytes: a page is cut once it holds
 * that much (at least one event), so that large events never make one huge Redis reply.
 */
const PAGE = 100
const PAGE_BYTES = 256 * 1024
/** How long a claimed standalone stream's holder has to end it. */
const STANDALONE_HANDOVER_MS = 1_000

export async function resumeStream (options: ResumeOptions): Promise<ResumeOutcome> {
  const { events, owner, lastEventId, client } = options
  let wake: (() => void) | undefined
  let appended = false
  const onAppended = (): void => {
    appended = true
    wake?.()
  }
  // Listening before the first read: nothing appended in between is missed.
  const unwatch = await events.watch(owner, lastEventId.stream, onAppended)
  let heartbeat: NodeJS.Timeout | undefined
  let releaseHold: (() => void) | undefined
  let released: (() => Promise<void>) | undefined
  try {
    let page = await events.read(owner, lastEventId.stream, lastEventId.seq, PAGE, PAGE_BYTES)
    // Not held: no such stream, an id past what was kept (nothing more will come: a reader of it
    // would only wait, and take over the real reader), or the point where the store stopped keeping.
    if (page === null || isNotKeptEnd(page[0])) return 'unknown'
    const first = page.find((event) => event.kind !== 'priming')
    if (first !== undefined && first.seq > lastEventId.seq + 1) {
      options.log.warn({ missed: first.seq - lastEventId.seq - 1 }, 'a resumed stream lost events to streams.maxEvents: the client gets what is kept')
    }
    const standalone = lastEventId.kind === 'standalone'
    client.start()
    client.continuesFromId()
    // The response head leaves now, even with nothing to replay yet; clients skip comments.
    if (page.length === 0) client.comment('stream resumed')
    // One reader per stream: a later resume of it, on any replica, ends this one (claims are heard in
    // one order everywhere; this reader only gives way to claims made after its own).
    const me = randomBytes(9).toString('base64url')
    let established = false
    releaseHold = options.relay.holdStream(owner.sessionId, (claim) => {
      if (claim.by === me) established = true
      else if (established && claim.stream === lastEventId.stream && claim.heartbeat !== true) client.takeOver()
    })
    // The writer learns that someone reads (it keeps going), and a response still open elsewhere gives way.
    const claim = async (kind: 'claim' | 'heartbeat' | 'released'): Promise<void> => {
      await options.relay.claimStream(owner.sessionId, { stream: lastEventId.stream, by: me, heartbeat: kind === 'heartbeat', released: kind === 'released' }).catch((error: unknown) => {
        options.log.debug({ code: (error as { code?: unknown }).code }, 'could not tell the other replicas of a resumed stream')
      })
    }
    // Told when this reader stops, whatever stops it: the writer's limits on calls nobody reads
    // apply again at once (docs/streams.md, "Limits"), not after the reminders stop coming.
    released = async () => { await claim('released') }
    await claim('claim')
    heartbeat = setInterval(() => { void claim('heartbeat') }, heartbeatInterval(options.retention))
    heartbeat.unref()
    const quietLimit = standalone ? STANDALONE_HANDOVER_MS : options.retention
    let after = lastEventId.seq
    for (;;) {
      for (const event of page) {
        after = event.seq
        if (event.kind === 'end') return isNotKeptEnd(event) ? 'interrupted' : 'ended'
        if (event.kind === 'message') await client.send(toOutgoing(lastEventId.stream, event))
        if (!client.attached) return 'interrupted'
      }
      // A full page (by count or by bytes) may have more behind it: read on before waiting.
      if (page.length < PAGE && page.reduce((bytes, event) => bytes + storedEventBytes(event), 0) < PAGE_BYTES) {
        const reason = await nextAppend(() => appended, (resume) => { wake = resume }, client, options.sessionEnded, quietLimit)
        appended = false
        // A standalone stream's holder had its moment to end it: it is gone, the caller goes on.
        if (reason === 'quiet' && standalone) return 'ended'
        if (reason !== 'appended' && reason !== 'quiet') return 'interrupted'
        // Quiet for a whole retention: the read below tells a quiet call (its writer keeps it) from a
        // stream no one keeps any more (its writer died with its replica).
      }
      const next = await events.read(owner, lastEventId.stream, after, PAGE, PAGE_BYTES)
      // Gone from the store meanwhile (expired, or the session ended): nothing more will come.
      if (next === null) return 'interrupted'
      page = next
    }
  } finally {
    clearInterval(heartbeat)
    releaseHold?.()
    unwatch()
    void released?.()
  }
}

/** The end marker where the store stopped keeping a stream that went on live (a byte limit). */
function isNotKeptEnd (event: StoredEvent | undefined): boolean {
  return event?.kind === 'end' && event.data === NOT_KEPT
}

function toOutgoing (stream: string, event: StoredEvent): { id: string, data: string, type?: string } {
  return { id: formatEventId(stream, event.seq), data: event.data, ...(event.type === undefined ? {} : { type: event.type }) }
}

type WaitOutcome = 'appended' | 'quiet' | 'client gone' | 'session ended'

/** Waits for the next append, the client leaving, the session ending, or `quietLimit` of silence. */
async function nextAppend (alreadyAppended: () => boolean, setWake: (wake: (() => void) | undefined) => void, client: SseResponse, sessionEnded: AbortSignal, quietLimit: number): Promise<WaitOutcome> {
  if (alreadyAppended()) return 'appended'
  if (!client.attached) return 'client gone'
  if (sessionEnded.aborted) return 'session ended'
  return await new Promise<WaitOutcome>((resolve) => {
    const finish = (outcome: WaitOutcome): void => {
      clearTimeout(timer)
      setWake(undefined)
      client.detached.removeEventListener('abort', onGone)
      sessionEnded.removeEventListener('abort', onEnded)
      resolve(outcome)
    }
    const onGone = (): void => { finish('client gone') }
    const onEnded = (): void => { finish('session ended') }
    const timer = setTimeout(() => { finish('quiet') }, quietLimit)
    setWake(() => { finish('appended') })
    client.detached.addEventListener('abort', onGone, { once: true })
    sessionEnded.addEventListener('abort', onEnded, { once: true })
  })
}
