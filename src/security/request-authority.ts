import type { FastifyRequest } from 'fastify'
import { isIPv6 } from 'node:net'
import { GatewayError } from '../errors.js'

/*
 * The authority a client used to reach the gateway (docs/security.md, "The request's authority"),
 * read once at the edge from `Host`, or behind `listen.trustProxy` from `X-Forwarded-Host` and
 * `X-Forwarded-Proto` (Fastify's `request.host` and `request.protocol` already pick those). Every
 * later use reads this one result: the Host allowlist, the public URL, the OAuth metadata and the
 * `resource_metadata` of rewritten challenges. A value the gateway cannot use whole is refused with
 * 400 before anything else happens, rather than passed along: a host with userinfo (`x@host`, which
 * URL parsers read as credentials and skip), an empty host, a bad port, spaces, underscores, a bare
 * IPv6 address, or a scheme other than http and https.
 */

export interface RequestAuthority {
  readonly scheme: 'http' | 'https'
  /** Lower case: a DNS name, an IPv4 address or a bracketed IPv6 literal, as URL serialises it. */
  readonly hostname: string
  /** `hostname[:port]` as the gateway writes it back. */
  readonly host: string
  /** `scheme://host`. */
  readonly origin: string
}

/** RFC 1123 host names: letters, digits and inner hyphens per label, labels joined by dots; one trailing dot allowed. */
const DNS_NAME = /^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i
const PORT = /^[0-9]{1,5}$/
/** Longer than any usable name, IPv6 literal and port together. */
const MAX_AUTHORITY_LENGTH = 300

function refused (detail: string): GatewayError {
  return new GatewayError('MCPGW_INVALID_AUTHORITY', { detail })
}

/** Splits `host[:port]`, checking each part; throws MCPGW_INVALID_AUTHORITY. */
function splitAuthority (value: string): { readonly name: string, readonly port: string | undefined } {
  if (value.startsWith('[')) {
    const close = value.indexOf(']')
    const literal = close === -1 ? '' : value.slice(1, close)
    if (!isIPv6(literal) || literal.includes('%')) throw refused('an IPv6 host must be a bracketed IPv6 address without a zone')
    const rest = value.slice(close + 1)
    if (rest !== '' && !rest.startsWith(':')) throw refused('only a port may follow an IPv6 host')
    return { name: `[${literal}]`, port: rest === '' ? undefined : rest.slice(1) }
  }
  const colon = value.indexOf(':')
  if (colon !== -1 && value.indexOf(':', colon + 1) !== -1) throw refused('an IPv6 host must be in brackets')
  const name = colon === -1 ? value : value.slice(0, colon)
  if (!DNS_NAME.test(name)) throw refused('the host is not a host name or an IP address (letters, digits, hyphens and dots only)')
  return { name, port: colon === -1 ? undefined : value.slice(colon + 1) }
}

/**
 * The authority of a request whose effective host and protocol are `host` and `protocol` (Fastify's
 * `request.host` and `request.protocol`). Throws MCPGW_INVALID_AUTHORITY (400) for anything else
 * than a host name or IP address with an optional port 1-65535, over http or https. The detail says
 * what was wrong, never the value itself.
 */
export function parseRequestAuthority (host: string | undefined, protocol: string | undefined): RequestAuthority {
  const scheme = protocol?.toLowerCase()
  if (scheme !== 'http' && scheme !== 'https') throw refused('the forwarded protocol is neither http nor https')
  if (host === undefined || host === '') throw refused('the request names no host')
  if (host.length > MAX_AUTHORITY_LENGTH) throw refused('the host is too long')
  if (host.includes('@')) throw refused('the host carries userinfo')
  const { name, port } = splitAuthority(host)
  if (port !== undefined && (!PORT.test(port) || Number(port) < 1 || Number(port) > 65535)) throw refused('the port is not a number from 1 to 65535')
  // URL serialises what passed: lower case, IPv4 shorthands and IPv6 literals in one spelling, so
  // that the allowlist compares what a browser would compare.
  let hostname: string
  try {
    hostname = new URL(`http://${name}`).hostname
  } catch {
    // A name whose last label is a number is read as an IPv4 address (WHATWG URL), and this one is not.
    throw refused('the host is not a host name or an IP address (letters, digits, hyphens and dots only)')
  }
  const authority = port === undefined ? hostname : `${hostname}:${Number(port)}`
  return { scheme, hostname, host: authority, origin: `${scheme}://${authority}` }
}

/**
 * The request's authority, parsed once: the first caller (the CORS answer to a preflight, or the
 * route's first hook) parses it, later ones read it. Throws MCPGW_INVALID_AUTHORITY as the parse does.
 */
export function authorityOf (request: FastifyRequest): RequestAuthority {
  request.mcp.authority ??= parseRequestAuthority(request.host, request.protocol)
  return request.mcp.authority
}
