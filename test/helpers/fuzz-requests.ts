import fc from 'fast-check'
import { upstreamModes, type UpstreamMode } from './misbehaving-upstream.js'

/*
 * What the route fuzzer sends (docs/testing.md, "The route fuzzer"), as fast-check arbitraries of
 * symbolic requests: "a live session of bob on the bridged route", "an event id the gateway handed
 * out, three positions past its end", not concrete ids, which only exist at run time
 * (fuzz-client.ts resolves them). Every choice lists its harmless value first: fast-check shrinks
 * towards it, so a counterexample keeps only what matters.
 *
 * Header values are Latin-1 strings (what HTTP/1.1 carries); `{port}` stands for the gateway's port.
 */

export const routeKinds = ['legacy', 'auto', 'bridged', 'modern', 'stateful', 'unknown'] as const
/**
 * legacy: `upstreamEra: legacy`, forwarded; auto: `upstreamEra: auto` before a legacy server;
 * bridged: `upstreamEra: modern` before a 2026-07-28 server; modern: `auto` before that server
 * (2026-07-28 requests pass through, legacy ones are bridged once probed); stateful:
 * `upstreamSessions` with two instances; unknown: a path with no route.
 */
export type RouteKind = typeof routeKinds[number]
export const principals = ['alice', 'bob'] as const
export type Principal = typeof principals[number]

export type SessionRef =
  | { readonly kind: 'none' }
  /** A live session of `owner` (the caller's own: `caller`) on the request's route; a stranger's when `owner` is not the caller. */
  | { readonly kind: 'live', readonly owner: Principal | 'caller' }
  /** A session this run ended (DELETE), or else a well-formed id never minted. */
  | { readonly kind: 'ended' }
  /** A live session of another route of the same gateway. */
  | { readonly kind: 'other-route', readonly owner: Principal }
  | { readonly kind: 'text', readonly value: string }

export type EventRef =
  /** An id the gateway handed out (`pick` chooses which), its position moved by `shift`. */
  | { readonly kind: 'issued', readonly pick: number, readonly shift: number }
  | { readonly kind: 'text', readonly value: string }

export type MessageSpec =
  | { readonly kind: 'initialize', readonly id: number | string, readonly version: string }
  | { readonly kind: 'request', readonly id: number | string, readonly method: string, readonly name: string | undefined, readonly era: 'legacy' | 'modern' | 'modern-bad', readonly badVersion: unknown }
  | { readonly kind: 'notification', readonly method: string, readonly era: 'legacy' | 'modern' }
  | { readonly kind: 'response', readonly id: number | string }
  | { readonly kind: 'json', readonly value: unknown }

export type Framing =
  /** Content-Length and the whole body. */
  | 'exact'
  /** Chunked transfer encoding. */
  | 'chunked'
  /** The JSON text cut short (a complete HTTP body of broken JSON). */
  | 'cut-json'
  /** Content-Length announces more than is sent; the client then hangs up. */
  | 'abort-mid-body'

export type BodySpec =
  | { readonly kind: 'none' }
  | { readonly kind: 'messages', readonly messages: readonly MessageSpec[], readonly batch: boolean, readonly framing: Framing, readonly cut: number }
  | { readonly kind: 'bytes', readonly bytes: readonly number[] }
  /** Arrays nested this deep. */
  | { readonly kind: 'deep', readonly depth: number }
  /** One byte over `limits.maxBodyBytes`. */
  | { readonly kind: 'oversized' }

export interface HeaderSpec {
  readonly host?: string
  readonly xForwardedHost?: string
  readonly xForwardedProto?: string
  readonly xForwardedFor?: string
  readonly origin?: string
  readonly protocolVersion?: string
  readonly mcpMethod?: string
  readonly mcpName?: string
  readonly contentType?: string
  readonly accept?: string
  /** Makes an OPTIONS a CORS preflight. */
  readonly accessControlRequestMethod?: string
}

export interface FuzzRequest {
  readonly gateway: string
  readonly route: RouteKind
  readonly method: string
  /** Appended to the route path. */
  readonly pathSuffix: string
  /** Who the caller is: a principal's credentials, none, or a forged one. */
  readonly as: Principal | 'none' | 'forged'
  readonly session: SessionRef
  readonly lastEventId: EventRef | undefined
  readonly headers: HeaderSpec
  /** Fill `Mcp-Protocol-Version`, `Mcp-Method`, `Mcp-Name` from a 2026-07-28 body (when not set above). */
  readonly mirrorModernHeaders: boolean
  readonly body: BodySpec
  readonly upstreamMode: UpstreamMode
  /** `x-fuzz-delay` of a slow answer. */
  readonly delay: number
  /** read: to the end (bounded); drop: hang up once the headers came. */
  readonly client: 'read' | 'drop'
}

export type FuzzAction =
  | { readonly kind: 'request', readonly request: FuzzRequest }
  /** Sent at the same time. */
  | { readonly kind: 'together', readonly requests: readonly FuzzRequest[] }
  /**
   * The gateway closes (and starts again) while a slow request is in flight; `request` is sent on
   * the same connection, pipelined, once closing has begun.
   */
  | { readonly kind: 'restart', readonly gateway: string, readonly request: FuzzRequest }

const latin1 = (min: number, max: number, maxLength: number): fc.Arbitrary<string> =>
  fc.array(fc.integer({ min, max }), { maxLength }).map((codes) => String.fromCharCode(...codes.map((code) => code === 0x7f ? 0x7e : code)))

/** Hostile values for any header that names a host (Host, X-Forwarded-Host, Origin's host). */
const hostileHost: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('127.0.0.1:{port}', 'localhost:{port}', 'localhost', 'gw.example', 'gw.example:{port}', 'LOCALHOST:{port}') },
  // userinfo: a URL parser reads the host after the @, a host-name pattern does not
  { weight: 3, arbitrary: fc.constantFrom('x@127.0.0.1:{port}', 'x@localhost:{port}', 'user:pass@localhost', 'x@gw.example') },
  { weight: 2, arbitrary: fc.constantFrom('a_b', 'a_b:{port}', 'under_score.example', 'a b', 'local host', 'localhost ', ' ') },
  { weight: 2, arbitrary: fc.constantFrom('', '127.0.0.1:99999', '127.0.0.1:-1', 'localhost:abc', 'localhost:', ':{port}', '127.1', '0x7f.0.0.1', 'localhost.', 'evil.example') },
  { weight: 2, arbitrary: fc.constantFrom('[::1]', '[::1]:{port}', '[::1', '[fe80::1%eth0]', '::1', '[::ffff:127.0.0.1]:{port}') },
  { weight: 1, arbitrary: fc.constantFrom('h\u00e9llo.example', Buffer.from('hällo.example', 'utf8').toString('latin1'), 'a/b', 'a?b', 'a#b', 'a\\b', `${'a'.repeat(63)}.${'b'.repeat(63)}.example`) },
  { weight: 1, arbitrary: fc.constantFrom('a'.repeat(300), 'x'.repeat(9000), 'y'.repeat(17000)) },
  { weight: 1, arbitrary: latin1(0x20, 0xff, 24) }
)

const versions = fc.constantFrom('2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05', '2026-07-28', 'banana', '', '2025-11-25 ', '2099-01-01', '1', '2026-07-28,2025-11-25')

const names = fc.oneof(
  fc.constantFrom('echo', 'whoami', 'test://r', 'demo://greeting', '', ' ', 'a b', 'a_b', 'x@host', 'é', 'ツール', '=?base64?ZWNobw==?=', '=?base64?%%?=', 'n'.repeat(200)),
  latin1(0x20, 0x7e, 12)
)

const rpcMethods = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('tools/list', 'tools/call', 'resources/read') },
  { weight: 3, arbitrary: fc.constantFrom('prompts/get', 'ping', 'logging/setLevel', 'resources/subscribe', 'resources/unsubscribe', 'server/discover',
    'subscriptions/listen', 'completion/complete', 'initialize', 'notifications/initialized') },
  { weight: 1, arbitrary: latin1(0x21, 0x7e, 12) }
)

const ids = fc.oneof(fc.nat({ max: 1000 }), fc.constantFrom('a', '', 'x'.repeat(300)))

/** Mostly absent (the well-formed request's value), sometimes `arbitrary`: hostile values stay a perturbation. */
function sometimes<T> (arbitrary: fc.Arbitrary<T>, absentWeight = 3): fc.Arbitrary<T | undefined> {
  return fc.oneof({ withCrossShrink: true }, { weight: absentWeight, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary })
}

const messageSpec: fc.Arbitrary<MessageSpec> = fc.oneof(
  { withCrossShrink: true },
  { weight: 10, arbitrary: fc.record({
    kind: fc.constant('request' as const),
    id: ids,
    method: rpcMethods,
    name: fc.oneof({ weight: 3, arbitrary: fc.constantFrom('echo', 'whoami', 'test://r') }, { weight: 2, arbitrary: names }, { weight: 1, arbitrary: fc.constant(undefined) }),
    era: fc.oneof({ withCrossShrink: true }, { weight: 5, arbitrary: fc.constant('legacy' as const) }, { weight: 3, arbitrary: fc.constant('modern' as const) }, { weight: 1, arbitrary: fc.constant('modern-bad' as const) }),
    badVersion: fc.constantFrom<unknown>('2099-01-01', 7, null, '2026-07-28 ', '')
  }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('initialize' as const), id: ids, version: versions }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('notification' as const), method: fc.constantFrom('notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'notifications/roots/list_changed'), era: fc.constantFrom('legacy' as const, 'modern' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('response' as const), id: ids }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('json' as const), value: fc.jsonValue({ maxDepth: 3 }) }) }
)

const bodySpec: fc.Arbitrary<BodySpec> = fc.oneof(
  { withCrossShrink: true },
  { weight: 16, arbitrary: fc.record({
    kind: fc.constant('messages' as const),
    messages: fc.oneof({ weight: 4, arbitrary: messageSpec.map((message) => [message]) }, { weight: 1, arbitrary: fc.array(messageSpec, { minLength: 1, maxLength: 3 }) }),
    batch: fc.oneof({ withCrossShrink: true }, { weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    framing: fc.oneof({ withCrossShrink: true }, { weight: 8, arbitrary: fc.constant<Framing>('exact') }, { weight: 1, arbitrary: fc.constantFrom<Framing>('chunked', 'cut-json', 'abort-mid-body') }),
    cut: fc.nat({ max: 200 })
  }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('bytes' as const), bytes: fc.array(fc.nat({ max: 255 }), { maxLength: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deep' as const), depth: fc.constantFrom(63, 64, 65, 5000) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'oversized' as const }) }
)

const headerSpec: fc.Arbitrary<HeaderSpec> = fc.record({
  host: sometimes(hostileHost, 2),
  xForwardedHost: sometimes(hostileHost, 2),
  xForwardedProto: sometimes(fc.constantFrom('https', 'http', 'HTTPS', 'ftp', '', 'https, http', 'h\u00e9')),
  xForwardedFor: sometimes(fc.constantFrom('203.0.113.7', '203.0.113.7, 10.0.0.1', 'unknown', '', '::1', '[::1]:80', 'x'.repeat(500))),
  origin: sometimes(fc.constantFrom('http://localhost:{port}', 'http://127.0.0.1:{port}', 'http://app.example', 'https://app.example', 'http://evil.example', 'null', '', 'http://x@localhost', 'http://a_b', 'http://[::1]:{port}', 'http://localhost:{port}/path', 'h\u00e9llo')),
  protocolVersion: sometimes(versions),
  mcpMethod: sometimes(rpcMethods, 5),
  mcpName: sometimes(names.map((name) => Buffer.from(name, 'utf8').toString('latin1')), 5),
  contentType: sometimes(fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '', 'application/json\u00e9', 'APPLICATION/JSON'), 5),
  accept: sometimes(fc.constantFrom('application/json, text/event-stream', 'application/json', 'text/event-stream', '*/*', '', 'text/html'), 5),
  accessControlRequestMethod: sometimes(fc.constantFrom('POST', 'GET', 'DELETE', 'PUT', ''), 5)
})

const sessionRef: fc.Arbitrary<SessionRef> = fc.oneof(
  { withCrossShrink: true },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('live' as const), owner: fc.oneof({ weight: 4, arbitrary: fc.constant<Principal | 'caller'>('caller') }, { weight: 1, arbitrary: fc.constantFrom(...principals) }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'ended' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('other-route' as const), owner: fc.constantFrom(...principals) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('text' as const), value: fc.oneof(fc.constantFrom('', ' ', 'x'.repeat(300), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345', '\u00e9\u00e9'), latin1(0x20, 0xff, 40)) }) }
)

const eventRef: fc.Arbitrary<EventRef> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('issued' as const), pick: fc.nat(), shift: fc.constantFrom(0, -1, 1, 2, 1000, -1000, 2 ** 40) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('text' as const), value: fc.oneof(fc.constantFrom('', 'upstream-1', 'rAAAAAAAAAAAAAAAA.1', 'gAAAAAAAAAAAAAAAA.0', 'r.1', 'g' + 'A'.repeat(16) + '.99999999999999999'), latin1(0x20, 0xff, 40)) }) }
)

/** The interesting misbehaviours more often: a challenge (its header is rewritten), streams, resets. */
const upstreamMode: fc.Arbitrary<UpstreamMode> = fc.oneof(
  { withCrossShrink: true },
  { weight: 6, arbitrary: fc.constantFrom<UpstreamMode>('normal', 'json', 'sse') },
  { weight: 4, arbitrary: fc.constant<UpstreamMode>('unauthorized') },
  { weight: 4, arbitrary: fc.constantFrom(...upstreamModes) }
)

/** One symbolic request to one of `gateways`. */
export function fuzzRequest (gateways: readonly string[]): fc.Arbitrary<FuzzRequest> {
  return fc.record({
    gateway: fc.constantFrom(...gateways),
    route: fc.constantFrom(...routeKinds),
    method: fc.oneof(
      { weight: 10, arbitrary: fc.constantFrom('POST', 'POST', 'POST', 'GET', 'GET', 'DELETE') },
      { weight: 1, arbitrary: fc.constantFrom('OPTIONS', 'HEAD', 'PUT', 'PATCH', 'TRACE', 'PROPFIND', 'CONNECTX') }
    ),
    pathSuffix: fc.oneof({ withCrossShrink: true }, { weight: 8, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('?x=1', '/', '/..', '%2F', '/extra') }),
    as: fc.oneof({ withCrossShrink: true }, { weight: 6, arbitrary: fc.constantFrom<FuzzRequest['as']>('alice', 'bob') }, { weight: 1, arbitrary: fc.constantFrom<FuzzRequest['as']>('none', 'forged') }),
    session: sessionRef,
    lastEventId: sometimes(eventRef, 2),
    headers: headerSpec,
    mirrorModernHeaders: fc.oneof({ withCrossShrink: true }, { weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    body: bodySpec,
    upstreamMode: upstreamMode,
    delay: fc.constantFrom(300, 50, 1200, 2500),
    client: fc.constantFrom<FuzzRequest['client']>('read', 'read', 'read', 'drop')
  })
}

export function fuzzAction (gateways: readonly string[]): fc.Arbitrary<FuzzAction> {
  const request = fuzzRequest(gateways)
  return fc.oneof(
    { weight: 120, arbitrary: request.map((one) => ({ kind: 'request' as const, request: one })) },
    { weight: 18, arbitrary: fc.array(request, { minLength: 2, maxLength: 3 }).map((requests) => ({ kind: 'together' as const, requests })) },
    // Rare: a restart costs a second or two.
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), gateway: fc.constantFrom(...gateways), request }) }
  )
}

/** A run: a short sequence of actions against the gateways. */
export function fuzzRun (gateways: readonly string[], maxActions: number): fc.Arbitrary<FuzzAction[]> {
  return fc.array(fuzzAction(gateways), { minLength: 1, maxLength: maxActions })
}
