/**
 * How the gateway names an instance of a stateful upstream (docs/stateful-upstreams.md): its URL's
 * scheme, host and path, never credentials or a query. What a session's upstream record and the
 * per-instance counts in Redis hold, and what logs and metric labels show; unique per route (the
 * config refuses two instances with the same one).
 */
export function instanceKey (url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  } catch {
    return 'an unreadable URL'
  }
}
