import { ConfigError } from '../errors.js'

/**
 * `${VAR}` and `${VAR:-default}` in string values are replaced from the environment, so secrets and
 * per-environment addresses stay out of the file. `$${...}` keeps a literal `${...}`.
 *
 * It runs on the parsed tree, not on the YAML text: a password containing `#` or `: ` must not
 * turn into a comment or a mapping. An unset variable without a default stops start-up: an empty
 * Redis URL or upstream is never what an operator meant.
 */
const placeholderPattern = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

export function interpolateEnv (value: unknown, env: NodeJS.ProcessEnv, path = ''): unknown {
  if (typeof value === 'string') return interpolateString(value, env, path)
  if (Array.isArray(value)) return value.map((item, index) => interpolateEnv(item, env, `${path}[${index}]`))
  if (value !== null && typeof value === 'object') {
    const result: Record<string, unknown> = {}
    for (const [key, child] of Object.entries(value)) {
      result[key] = interpolateEnv(child, env, path === '' ? key : `${path}.${key}`)
    }
    return result
  }
  return value
}

function interpolateString (text: string, env: NodeJS.ProcessEnv, path: string): string {
  return text.replace(placeholderPattern, (whole, escape: string, name: string, fallback: string | undefined) => {
    if (escape === '$') return whole.slice(1)
    const value = env[name]
    if (value !== undefined && value !== '') return value
    if (fallback !== undefined) return fallback
    throw new ConfigError(`${path}: environment variable ${name} is not set and has no default (write \${${name}:-default})`)
  })
}
