import { randomBytes } from 'node:crypto'
import { GatewayError, type JsonRpcId } from '../errors.js'
import { parseJsonText, type JsonRpcMessage } from '../mcp/json-rpc.js'
import type { FastifyBaseLogger } from 'fastify'
import type { SessionStore } from './session-store.js'

/*
 * What one gateway replica must hear from the others (docs/scaling.md, "Between replicas"). A
 * round-robin balancer sends each request anywhere, so what concerns a stream held on one replica
 * often arrives at another:
 *   - a session ended (DELETE, admin, expiry: see session-ending.ts): every replica ends the streams
 *     it holds for it. Published to every replica;
 *   - the era bridge (docs/era-bridge.md): the client's answer to an input request the gateway put
 *     on a bridged stream (elicitation, sampling, roots). The request id the gateway gave it names
 *     the replica that asked, so the answer is published on that replica's channel only;
 *   - `notifications/cancelled` for a request in flight, and a change of the session's resource
 *     subscriptions (for its GET stream): the replica holding either is not known, so these are
 *     published to every replica, and each looks them up in what it holds;
 *   - a stream claimed (docs/streams.md): a client resumed a stream somewhere (the response still
 *     serving it elsewhere gives way, and the writer knows someone reads), or opened a newer
 *     standalone GET stream (the older one ends: one per session). Published to every replica.
 * Messages go through the session store's publish/subscribe (Redis pub/sub on a shared store), so
 * every replica sharing the store sees the same thing. Nothing is answered to a stranger: each
 * message names the session it came on (checked, principal included, before it is published), and a
 * pending entry only accepts messages of its own session.
 */

const ANSWER_ID_PREFIX = 'mcpgw.'
/** `mcpgw.<instance>.<random>`: instance and random part are base64url. */
const ANSWER_ID = /^mcpgw\.([A-Za-z0-9_-]{12})\.[A-Za-z0-9_-]{16}$/

type RelayMessage =
  | { readonly kind: 'answer', readonly session: string, readonly message: JsonRpcMessage }
  | { readonly kind: 'cancel', readonly session: string, readonly request: JsonRpcId }
  | { readonly kind: 'session changed', readonly session: string }
  | { readonly kind: 'stream claimed', readonly session: string, readonly claim: StreamClaim }

/**
 * A client now reads `stream` (it resumed it) and/or its newest standalone stream is `standalone`
 * (every other standalone stream of the session ends).
 */
export interface StreamClaim {
  readonly stream?: string | undefined
  readonly standalone?: string | undefined
  /** Who claims (a stream's name, a resume's own id): a claimant hears its own claim come back. */
  readonly by: string
  /** A reader reminding the writer it still reads; it takes nothing over. */
  readonly heartbeat?: boolean | undefined
  /** A reader that stopped reading `stream` (its client left): the writer counts it as abandoned again. */
  readonly released?: boolean | undefined
}

interface PendingAnswer {
  readonly session: string
  readonly resolve: (message: JsonRpcMessage) => void
}

/** A request to the client that the gateway waits on; `answer` settles with the client's response. */
export interface ClientRequest {
  readonly id: string
  readonly answer: Promise<JsonRpcMessage>
  /** Stops waiting (the answer, should it come, is then ignored). */
  readonly forget: () => void
}

function callKey (session: string, request: JsonRpcId): string {
  return `${session}\n${JSON.stringify(request)}`
}

export class ReplicaRelay {
  readonly #store: SessionStore
  readonly #log: FastifyBaseLogger
  readonly instanceId = randomBytes(9).toString('base64url')
  readonly #answers = new Map<string, PendingAnswer>()
  readonly #calls = new Map<string, () => void>()
  readonly #watchers = new Map<string, Set<() => void>>()
  readonly #heldStreams = new Map<string, Set<(claim: StreamClaim) => void>>()
  #joined: Promise<void> | undefined
  readonly #unsubscribe: Array<() => void> = []

  constructor (store: SessionStore, log: FastifyBaseLogger) {
    this.#store = store
    this.#log = log
  }

  /**
   * What this replica is listening for now, by kind (`mcpgw_replica_listeners`): every stream, stream
   * guard and resume registers here and must unregister, so a count that only grows is a leak.
   */
  get counts (): Readonly<Record<'session_watches' | 'stream_holds' | 'calls' | 'answers', number>> {
    let watches = 0
    for (const watchers of this.#watchers.values()) watches += watchers.size
    let holds = 0
    for (const held of this.#heldStreams.values()) holds += held.size
    return { session_watches: watches, stream_holds: holds, calls: this.#calls.size, answers: this.#answers.size }
  }

  /** Subscribes this instance's channels, once; a failure is retried by the next call. */
  async join (): Promise<void> {
    this.#joined ??= (async () => {
      for (const channel of [`instance:${this.instanceId}`, 'all']) {
        this.#unsubscribe.push(await this.#store.subscribe(channel, (text) => { this.#receive(text) }))
      }
    })().catch((error: unknown) => {
      for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe()
      this.#joined = undefined
      throw error
    })
    await this.#joined
  }

  /** Registers a request the gateway is about to send to the client of `session`. */
  askClient (session: string): ClientRequest {
    const id = `${ANSWER_ID_PREFIX}${this.instanceId}.${randomBytes(12).toString('base64url')}`
    let resolve!: (message: JsonRpcMessage) => void
    const answer = new Promise<JsonRpcMessage>((settle) => { resolve = settle })
    this.#answers.set(id, { session, resolve })
    return { id, answer, forget: () => { this.#answers.delete(id) } }
  }

  /**
   * A response the client POSTed on `session`. Resolves true when it answers one of the gateway's
   * own input requests (delivered here or published to the instance that asked), false otherwise.
   */
  async deliverAnswer (session: string, message: JsonRpcMessage): Promise<boolean> {
    const id = 'id' in message ? message.id : undefined
    const instance = typeof id === 'string' ? ANSWER_ID.exec(id)?.[1] : undefined
    if (instance === undefined) return false
    if (instance === this.instanceId) this.#answer(session, message)
    else await this.#publish(`instance:${instance}`, { kind: 'answer', session, message })
    return true
  }

  /** Registers a bridged request in flight on this instance; `cancel` ends it. Returns the unregister. */
  trackCall (session: string, request: JsonRpcId, cancel: () => void): () => void {
    const key = callKey(session, request)
    this.#calls.set(key, cancel)
    return () => { if (this.#calls.get(key) === cancel) this.#calls.delete(key) }
  }

  /** The client cancelled `request`: ended here if it runs here, else on whichever instance runs it. */
  async cancel (session: string, request: JsonRpcId): Promise<void> {
    if (this.#cancelHere(session, request)) return
    await this.#publish('all', { kind: 'cancel', session, request })
  }

  /** Calls `onChange` whenever `session` changes (subscriptions, termination), on any instance. */
  watchSession (session: string, onChange: () => void): () => void {
    const watchers = this.#watchers.get(session) ?? new Set()
    this.#watchers.set(session, watchers)
    const watcher = (): void => { onChange() }
    watchers.add(watcher)
    return () => {
      watchers.delete(watcher)
      if (watchers.size === 0 && this.#watchers.get(session) === watchers) this.#watchers.delete(session)
    }
  }

  /** Registers a stream this replica serves for `session`; `onClaimed` hears every claim on the session. */
  holdStream (session: string, onClaimed: (claim: StreamClaim) => void): () => void {
    const held = this.#heldStreams.get(session) ?? new Set()
    this.#heldStreams.set(session, held)
    held.add(onClaimed)
    return () => {
      held.delete(onClaimed)
      if (held.size === 0 && this.#heldStreams.get(session) === held) this.#heldStreams.delete(session)
    }
  }

  /**
   * Tells every replica, this one included, that a stream of `session` is claimed. Only through the
   * store's pub/sub, never short-cut here: every replica hears claims in the same order.
   */
  async claimStream (session: string, claim: StreamClaim): Promise<void> {
    await this.#publish('all', { kind: 'stream claimed', session, claim })
  }

  async sessionChanged (session: string): Promise<void> {
    await this.#publish('all', { kind: 'session changed', session })
  }

  close (): void {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe()
    this.#joined = undefined
  }

  async #publish (channel: string, message: RelayMessage): Promise<void> {
    try {
      await this.#store.publish(channel, JSON.stringify(message))
    } catch (error) {
      throw error instanceof GatewayError ? error : new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE', { cause: error })
    }
  }

  #receive (text: string): void {
    const message = parseJsonText(text) as RelayMessage | undefined
    if (message === undefined) {
      this.#log.debug({ channelMessageBytes: text.length }, 'replica relay: ignored a message that is not JSON')
      return
    }
    if (message.kind === 'answer') this.#answer(message.session, message.message)
    else if (message.kind === 'cancel') this.#cancelHere(message.session, message.request)
    else if (message.kind === 'session changed') for (const watcher of this.#watchers.get(message.session) ?? []) watcher()
    else if (message.kind === 'stream claimed') this.#claimed(message.session, message.claim)
  }

  #claimed (session: string, claim: StreamClaim): void {
    for (const held of [...(this.#heldStreams.get(session) ?? [])]) held(claim)
  }

  #answer (session: string, message: JsonRpcMessage): void {
    const id = 'id' in message && typeof message.id === 'string' ? message.id : ''
    const pending = this.#answers.get(id)
    // Another session's client cannot answer for this one, even with the right id.
    if (pending === undefined || pending.session !== session) return
    this.#answers.delete(id)
    pending.resolve(message)
  }

  #cancelHere (session: string, request: JsonRpcId): boolean {
    const cancel = this.#calls.get(callKey(session, request))
    if (cancel === undefined) return false
    cancel()
    return true
  }
}
