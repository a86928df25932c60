/**
 * Durations in the config are written the way operators think: `500ms`, `90s`, `30m`, `24h`.
 * A bare number is refused on purpose: `30` could mean seconds or milliseconds, and a wrong guess
 * silently shortens every session.
 */
const unitMilliseconds = {
  ms: 1,
  s: 1000,
  m: 60 * 1000,
  h: 60 * 60 * 1000
} as const

const durationPattern = /^(\d+)(ms|s|m|h)$/

/** What the JSON Schema tells an editor a duration looks like (surrounding blanks are forgiven). */
export const DURATION_TEXT_PATTERN = /^\s*\d+(ms|s|m|h)\s*$/

/** Returns the duration in milliseconds, or undefined when the text is not a duration. */
export function parseDuration (text: string): number | undefined {
  const match = durationPattern.exec(text.trim())
  if (match === null) return undefined
  const amount = Number(match[1])
  const unit = match[2] as keyof typeof unitMilliseconds
  const milliseconds = amount * unitMilliseconds[unit]
  return Number.isSafeInteger(milliseconds) ? milliseconds : undefined
}

/** The inverse of parseDuration, in the largest unit that is exact: 1_800_000 → `30m`. */
export function formatDuration (milliseconds: number): string {
  for (const unit of ['h', 'm', 's'] as const) {
    const size = unitMilliseconds[unit]
    if (milliseconds >= size && milliseconds % size === 0) return `${milliseconds / size}${unit}`
  }
  return `${milliseconds}ms`
}
