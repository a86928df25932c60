import type { FastifyBaseLogger } from 'fastify'
import type { OutgoingHttpHeaders } from 'node:http'
import { GatewayError, jsonRpcErrorBody, type GatewayErrorCode, type JsonRpcId } from '../errors.js'
import type { ReplicaRelay, StreamClaim } from '../sessions/replica-relay.js'
import { formatEventId, newStreamName, type StreamKind } from './event-id.js'
import type { OutgoingEvent, SseResponse } from './sse-response.js'
import type { AppendOutcome, StoredEvent, StreamEventStore, StreamOwner } from './stream-event-store.js'
import type { RegisteredStream, StreamRegistry } from './stream-registry.js'

/*
 * One SSE stream the gateway relays for a legacy session, from the upstream (or the era bridge) to
 * the client, kept in the event store as it goes (docs/streams.md). Each event gets the id
 * `<stream>.<position>` and is appended without waiting (the store pipelines); the client gets it at
 * once while it is attached.
 *
 * A client that leaves does not end the call (2025-11-25: a disconnection is not a cancellation):
 * the writer reads on and the events are kept, for the client to resume on any replica. What ends
 * it: the upstream's end, the session's end (an append finds the session gone), an explicit
 * cancellation, a newer standalone stream of the same session (one GET stream per session), or
 * `streams.retention` passing with no client reading (`stopped` then aborts, and the writer closes
 * its upstream request). Without an event store (`streams.resumable: false`) a client that leaves
 * ends the stream at once, as before.
 *
 * Bounded (docs/streams.md, "Limits"): a stream whose client left counts against the replica's
 * limits of such streams (stream-registry.ts); the store keeps at most the byte limits of a stream
 * and of its session, and the events past them go on live only. A stream stopped by a limit or by
 * the replica's shutdown answers its pending request with an error event first (kept too, so that a
 * resume elsewhere gets it), and tells the upstream the request is cancelled.
 */

export interface RecordedStreamOptions {
  /** undefined: not resumable (no ids, nothing kept). */
  readonly events: StreamEventStore | undefined
  readonly owner: StreamOwner
  readonly kind: StreamKind
  readonly client: SseResponse
  /** Start with an empty event that has an id (2025-11-25 sessions only: older clients may choke on it). */
  readonly priming: boolean
  readonly relay: ReplicaRelay
  /** streams.retention: how long the stream runs on while no client reads it. */
  readonly retention: number
  readonly log: FastifyBaseLogger
  /**
   * Whether the session still exists, sliding its idle timeout (asked when a session change is heard
   * from any replica, and every `sessionBeat` while the stream runs: a call that streams is activity).
   */
  readonly sessionLive: () => Promise<boolean>
  /**
   * Milliseconds between two slides of the session's idle timeout (a third of it, at least a
   * second); 0: not this stream's to slide (a GET stream's guard does it).
   */
  readonly sessionBeat: number
  /** Told how the stream ended: `complete` or a StopReason. */
  readonly onEnded?: ((end: string) => void) | undefined
  /** This replica's streams, and the limits on those nobody reads. */
  readonly registry: StreamRegistry
  /** Told when a byte limit stopped keeping the stream (`mcpgw_stream_limits_total`). */
  readonly onKeepLimit?: ((limit: 'bytes_per_stream' | 'bytes_per_session') => void) | undefined
  /**
   * A response stream's requests (a batch's: each of them): answered with an error event when a
   * limit or the shutdown stops the stream.
   */
  readonly requestIds?: readonly JsonRpcId[] | undefined
  /** Tells the upstream that a request is cancelled (`notifications/cancelled`); waited for only by settled(). */
  readonly cancelUpstream?: ((requestId: JsonRpcId) => Promise<void>) | undefined
}

/** Why the writer should stop reading its upstream. */
export type StopReason = 'client gone' | 'session ended' | 'cancelled' | 'taken over' | 'abandoned' | 'store unavailable' | 'abandoned limit' | 'shutdown'

/** Stops that end the stream at once with an error event for its pending request. */
const ANSWERED_STOPS: Partial<Record<StopReason, GatewayErrorCode>> = {
  'abandoned limit': 'MCPGW_ABANDONED_STREAMS_EXCEEDED',
  shutdown: 'MCPGW_RELAY_SHUT_DOWN'
}

/**
 * Stops after which the upstream is told the request is cancelled: closing the connection is not a
 * cancellation (2025-11-25). Not after the client's own `notifications/cancelled` (forwarded
 * already), nor for a standalone stream that a newer one took over (it has no request).
 */
const UNCANCELLED_STOPS: ReadonlySet<StopReason> = new Set(['cancelled', 'taken over'])

export interface RelayedEvent {
  readonly data: string
  readonly type?: string | undefined
  /** The upstream's own id and retry: passed on only when the gateway keeps no events. */
  readonly id?: string | undefined
  readonly retry?: number | undefined
}

export class RecordedStream implements RegisteredStream {
  readonly name: string
  readonly #options: RecordedStreamOptions
  readonly #stopped = new AbortController()
  #seq = 0
  #recording: boolean
  #started = false
  #ended = false
  #abandonTimer: NodeJS.Timeout | undefined
  /** Runs while a resuming client reads: if its reminders stop, the stream counts as abandoned again. */
  #readerTimer: NodeJS.Timeout | undefined
  /** Who resumed it last (a claim's `by`): only its release counts. */
  #reader: string | undefined
  /** The stream's sign of life: the session slid, the kept stream renewed. */
  #beatTimer: NodeJS.Timeout | undefined
  /** When the kept stream was last renewed. */
  #renewedAt = 0
  #releaseHold: (() => void) | undefined
  #unwatchSession: (() => void) | undefined
  /** A standalone stream heard its own claim back: claims heard from now on are newer than its own. */
  #established = false
  /** Kept until an append failed: what follows is not kept, but the end is tried once more. */
  #broken = false
  /** The last append asked of the store (appends to one stream are answered in order). */
  #lastAppend: Promise<unknown> = Promise.resolve()
  /** The upstream being told the request is cancelled, once it is. */
  #cancelling: Promise<void> = Promise.resolve()

  constructor (options: RecordedStreamOptions) {
    this.#options = options
    this.name = newStreamName(options.kind)
    this.#recording = options.events !== undefined
  }

  /** Aborts with a StopReason when the writer should stop reading its upstream. */
  get stopped (): AbortSignal {
    return this.#stopped.signal
  }

  get resumable (): boolean {
    return this.#options.events !== undefined
  }

  get owner (): StreamOwner {
    return this.#options.owner
  }

  /** Resolves once the store answered every append asked of it so far, and the upstream a cancellation (failures included). */
  async settled (): Promise<void> {
    await Promise.all([this.#lastAppend.catch(() => undefined), this.#cancelling])
  }

  /** Opens the client's response; the stream is announced to every replica (resumes, takeovers). */
  start (statusCode?: number, headers?: OutgoingHttpHeaders): void {
    const { client, relay, owner } = this.#options
    this.#started = true
    this.#options.registry.add(this)
    if (!client.started) client.start(statusCode, headers)
    this.#releaseHold = relay.holdStream(owner.sessionId, (claim) => { this.#claimed(claim) })
    // Whatever ends the session, on any replica, ends this stream now, not at its next event.
    this.#unwatchSession = relay.watchSession(owner.sessionId, () => {
      this.#options.sessionLive().then((live) => { if (!live) this.stop('session ended') }, (error: unknown) => {
        this.#options.log.debug({ code: (error as { code?: unknown }).code }, 'session check of an open stream failed')
      })
    })
    // Claims, and cancellations, made on other replicas reach this one only once it listens.
    relay.join().catch((error: unknown) => {
      this.#options.log.debug({ code: (error as { code?: unknown }).code }, 'cannot hear other replicas now: resumes elsewhere will not end this response')
    })
    client.detached.addEventListener('abort', () => { this.#clientDetached(client.detached.reason) }, { once: true })
    if (!client.attached) this.#clientDetached(client.detached.reason)
    if (this.#options.kind === 'standalone') {
      // One standalone stream per session: any older one, on any replica, ends (never a 409).
      relay.claimStream(owner.sessionId, { standalone: this.name, by: this.name }).catch((error: unknown) => {
        this.#options.log.debug({ code: (error as { code?: unknown }).code }, 'could not tell the other replicas of a new GET stream')
      })
    }
    if (this.#options.priming && this.resumable) {
      const seq = this.#next({ kind: 'priming', data: '' })
      void client.send({ id: formatEventId(this.name, seq), data: '' })
    } else {
      // An SSE comment: the response head leaves now, not with the first event; clients skip it.
      client.comment('stream open')
    }
    // While the writer runs, however quiet the call, its session does not idle out (a call that
    // streams is activity, as a GET stream is) and the kept stream's retention counts from its last
    // sign of life.
    this.#renewedAt = Date.now()
    const { sessionBeat, retention } = this.#options
    this.#beatTimer = setInterval(() => { this.#beat() }, sessionBeat > 0 ? Math.min(sessionBeat, heartbeatInterval(retention)) : heartbeatInterval(retention))
    this.#beatTimer.unref()
  }

  /** One event: kept, and sent to the client while it reads. Resolves once the client can take more. */
  async event (event: RelayedEvent): Promise<void> {
    await this.events([event])
  }

  /**
   * Events that arrived together (one upstream read): kept in one append, sent in one write.
   * Returns undefined when the client can take more at once, else a promise (see SseResponse.sendAll).
   */
  events (events: readonly RelayedEvent[]): Promise<void> | undefined {
    if (this.#ended || events.length === 0) return undefined
    if (!this.resumable) return this.#options.client.sendAll(events)
    const kept: StoredEvent[] = []
    const outgoing: OutgoingEvent[] = []
    for (const { data, type: relayedType } of events) {
      this.#seq += 1
      // `message` is the default type: not kept (it would cost bytes in every stored event).
      const type = relayedType === 'message' ? undefined : relayedType
      kept.push({ seq: this.#seq, kind: 'message', data, type })
      outgoing.push({ id: formatEventId(this.name, this.#seq), data, type })
    }
    this.#keep(kept)
    return this.#options.client.sendAll(outgoing)
  }

  /**
   * The stream is complete (or cut): kept as ended, so that a resuming client stops there too. A
   * stream never started only ends its client's response. Harmless twice.
   */
  end (): void {
    if (this.#ended) return
    this.#ended = true
    if (!this.#started) {
      this.#options.client.end()
      return
    }
    if (this.#recording) this.#next({ kind: 'end', data: '' })
    else if (this.#broken) this.#endBroken()
    this.#options.client.end()
    this.#release()
    this.#options.registry.remove(this)
    this.#options.onEnded?.(this.#stopped.signal.aborted ? String(this.#stopped.signal.reason) : 'complete')
  }

  /**
   * Stops the writer (the session ended, a cancellation …): the client's response ends now, even
   * one stalled on a client that reads nothing, and the writer closes its upstream. A limit or the
   * shutdown also answers the pending request and ends the stream at once (ANSWERED_STOPS).
   */
  stop (reason: StopReason): void {
    if (this.#stopped.signal.aborted) return
    this.#stopped.abort(reason)
    const answer = ANSWERED_STOPS[reason]
    if (answer !== undefined && !this.#ended) {
      const requestIds = this.#options.requestIds ?? []
      if (requestIds.length > 0) void this.events(requestIds.map((requestId) => ({ data: JSON.stringify(jsonRpcErrorBody(new GatewayError(answer), requestId)) })))
      this.end()
    }
    this.#options.client.end()
    const cancel = this.#options.cancelUpstream
    if (cancel !== undefined && !UNCANCELLED_STOPS.has(reason)) this.#cancelling = Promise.all((this.#options.requestIds ?? []).map(cancel)).then(() => undefined)
  }

  #next (event: Omit<StoredEvent, 'seq'>): number {
    this.#seq += 1
    this.#keep([{ ...event, seq: this.#seq }])
    return this.#seq
  }

  /** Appends without waiting (the store pipelines); a failure stops keeping this stream. */
  #keep (kept: readonly StoredEvent[]): void {
    if (!this.#recording) return
    const events = this.#options.events as StreamEventStore
    this.#lastAppend = events.append(this.#options.owner, this.name, kept).then((outcome) => { this.#appended(outcome) }, (error: unknown) => {
      if (!this.#recording) return
      // A gap would replay later events without this one: nothing more is kept of this stream.
      this.#recording = false
      this.#broken = true
      this.#options.log.warn({ code: (error as { code?: unknown }).code, stream: this.name }, 'event store unavailable: this stream can no longer be resumed')
      if (!this.#options.client.attached) this.stop('store unavailable')
    })
  }

  #appended (outcome: AppendOutcome): void {
    if (outcome === 'session gone') {
      this.stop('session ended')
      return
    }
    if (outcome === 'stored' || !this.#recording) return
    // The store keeps no more of it (it marked where it stopped); the stream goes on live.
    this.#recording = false
    if (outcome === 'stream gone') {
      this.#options.log.info({ stream: this.name }, 'the store no longer keeps this stream (it expired): what follows is relayed but not kept')
    } else {
      this.#options.onKeepLimit?.(outcome === 'stream full' ? 'bytes_per_stream' : 'bytes_per_session')
      this.#options.log.info({ stream: this.name, limit: outcome }, 'a stream reached its byte limit (docs/streams.md, "Limits"): what follows is relayed but not kept')
    }
    if (!this.#options.client.attached) this.stop('client gone')
  }

  /**
   * A stream no longer kept (an append failed) is marked ended, if the store takes it now, so that a
   * client resuming it stops there instead of waiting for events that were never kept.
   */
  #endBroken (): void {
    this.#lastAppend = (this.#options.events as StreamEventStore).append(this.#options.owner, this.name, { seq: this.#seq + 1, kind: 'end', data: '' })
  }

  #beat (): void {
    if (this.#options.sessionBeat > 0) {
      this.#options.sessionLive().then((live) => { if (!live) this.stop('session ended') }, (error: unknown) => {
        this.#options.log.debug({ code: (error as { code?: unknown }).code }, 'session check of an open stream failed')
      })
    }
    if (Date.now() - this.#renewedAt >= heartbeatInterval(this.#options.retention)) this.#renew()
  }

  #renew (): void {
    if (!this.#recording || this.#seq === 0) return
    this.#renewedAt = Date.now()
    ;(this.#options.events as StreamEventStore).renew(this.#options.owner, this.name).then((kept) => {
      // Removed: its session has ended (an expired stream of a running writer cannot be: it renews it).
      if (!kept) this.stop('session ended')
    }, (error: unknown) => {
      this.#options.log.debug({ code: (error as { code?: unknown }).code, stream: this.name }, 'could not renew a kept stream now')
    })
  }

  #clientDetached (reason: unknown): void {
    if (this.#ended || reason === 'ended') return
    if (reason === 'taken over') return
    if (!this.#recording) {
      this.stop('client gone')
      return
    }
    this.#runOnAbandoned()
  }

  /** Nobody reads the stream: it runs on for a client to resume, within the replica's limits. */
  #runOnAbandoned (): void {
    if (!this.#options.registry.abandoned(this)) {
      this.stop('abandoned limit')
      return
    }
    this.#armAbandonTimer()
  }

  /**
   * A resuming client reads the stream: it is not abandoned while its reminders come (every
   * heartbeatInterval); two missed ones and it counts as abandoned again.
   */
  #readerAlive (): void {
    this.#options.registry.adopted(this)
    if (this.#readerTimer !== undefined) {
      this.#readerTimer.refresh()
      return
    }
    this.#readerTimer = setTimeout(() => { this.#readerGone() }, 2 * heartbeatInterval(this.#options.retention))
    this.#readerTimer.unref()
  }

  /** The resuming reader left (it said so, or its reminders stopped): abandoned again, within the limits. */
  #readerGone (): void {
    clearTimeout(this.#readerTimer)
    this.#readerTimer = undefined
    if (!this.#ended && !this.#stopped.signal.aborted && !this.#options.client.attached) this.#runOnAbandoned()
  }

  /** Nobody reads: after retention, the writer gives up. A client that resumes (re-)claims it. */
  #armAbandonTimer (): void {
    clearTimeout(this.#abandonTimer)
    this.#abandonTimer = setTimeout(() => { this.stop('abandoned') }, this.#options.retention)
    this.#abandonTimer.unref()
  }

  #claimed (claim: StreamClaim): void {
    if (this.#ended) return
    if (claim.by === this.name) {
      this.#established = true
      return
    }
    if (claim.stream === this.name) {
      if (claim.released === true) {
        // Its latest reader left (an older one leaving, taken over by a newer, changes nothing).
        if (claim.by === this.#reader) this.#readerGone()
        return
      }
      // Someone still reads it: the writer goes on.
      this.#armAbandonTimer()
      this.#readerAlive()
      if (claim.heartbeat === true) return
      this.#reader = claim.by
      // A client reads this stream elsewhere now: this response (if still open) gives way.
      this.#options.client.takeOver()
      // A resumed standalone stream continues as a new one there, once this one has ended.
      if (this.#options.kind === 'standalone') this.stop('taken over')
      return
    }
    // One standalone stream per session: a newer GET takes over. Newer means claimed after this one,
    // in the one order every replica hears claims in (the store's pub/sub); an older claim heard
    // late is ignored, so two GETs racing leave exactly the later one.
    if (this.#options.kind === 'standalone' && claim.standalone !== undefined && this.#established) {
      this.#options.client.takeOver()
      this.stop('taken over')
    }
  }

  #release (): void {
    clearTimeout(this.#abandonTimer)
    clearTimeout(this.#readerTimer)
    clearInterval(this.#beatTimer)
    this.#unwatchSession?.()
    this.#unwatchSession = undefined
    this.#releaseHold?.()
    this.#releaseHold = undefined
  }
}

/**
 * How often a running stream shows it is alive (renewing its retention; a resuming reader reminds the
 * writer that it reads): three times per retention, so that one missed beat costs nothing.
 */
export function heartbeatInterval (retention: number): number {
  return Math.max(50, Math.floor(retention / 3))
}
