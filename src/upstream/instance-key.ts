/**
 * How the gateway names an instance of a stateful upstream (docs/stateful-upstreams.md): its URL's
 * scheme, host and path, never credentials or a query. What a session's upstream record and the
 * per-instance counts in Redis hold, and what logs and metric labels show; unique per route (the
 * config refuses two instances with the same one).
 */
export function instanceKey (url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${normalizePercentEncoding(parsed.pathname)}`
  } catch {
    return 'an unreadable URL'
  }
}

/**
 * One spelling per path (RFC 3986 §6.2.2.2): unreserved characters percent-encoded are decoded, any
 * other percent-encoding is upper-cased, so `/m%63p` and `/mcp` name one instance.
 */
function normalizePercentEncoding (path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (encoded, hex: string) => {
    const character = String.fromCharCode(parseInt(hex, 16))
    return /[A-Za-z0-9\-._~]/.test(character) ? character : encoded.toUpperCase()
  })
}
