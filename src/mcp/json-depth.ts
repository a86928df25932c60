/*
 * How deep a JSON text nests, measured on its bytes before it is parsed. `JSON.parse` accepts any
 * depth, but a body nested tens of thousands deep breaks `JSON.stringify` later (a RangeError
 * deep inside the bridge). No MCP message needs more than a few levels, so the gateway refuses
 * deep ones at the edge.
 */

/** The deepest nesting the gateway accepts in a client's JSON body. */
export const MAX_JSON_DEPTH = 64

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d

/**
 * Whether `text` opens more than `limit` arrays/objects inside each other. Brackets inside strings
 * do not count. UTF-8 continuation bytes never equal these ASCII bytes, so bytes are enough.
 */
export function nestsDeeperThan (text: Buffer, limit: number): boolean {
  let depth = 0
  let inString = false
  for (let index = 0; index < text.length; index++) {
    const byte = text[index]
    if (inString) {
      if (byte === BACKSLASH) index++
      else if (byte === QUOTE) inString = false
    } else if (byte === QUOTE) {
      inString = true
    } else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) {
      if (++depth > limit) return true
    } else if (byte === CLOSE_BRACKET || byte === CLOSE_BRACE) {
      depth--
    }
  }
  return false
}
