/**
 * How a config error shows the value it refuses. Errors are printed at start-up and land in logs,
 * so a value that may be a secret (a password, a token, a URL with credentials) is only described
 * by its kind, never shown.
 */

export function describeValue (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  return typeof value === 'object' ? 'a mapping' : `${typeof value} ${JSON.stringify(value)}`
}

/** Like describeValue, without the value itself. */
export function describeSecretValue (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'string') return value === '' ? 'an empty string' : 'a string'
  return typeof value === 'object' ? 'a mapping' : `a ${typeof value}`
}

/** `redis://user:password@host` → `redis://***@host`; up to the last `@`, since a password may hold a `/`. */
export function redactUrl (text: string): string {
  return text.replace(/\/\/.*@/, '//***@')
}
