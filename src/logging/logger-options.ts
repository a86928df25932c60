import type { LoggerOptions } from 'pino'
import { logLevels, type LogLevel } from '../config/validate-config.js'
import { ConfigError } from '../errors.js'

/**
 * Secrets never reach a log line (docs/operating.md, "Logs"): our own request line carries no headers at all,
 * and these paths are redacted as a second line of defence for anything else that logs a request
 * or response (a plugin, an error with the request attached).
 */
export const redactedPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["mcp-session-id"]',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'res.headers["mcp-session-id"]',
  'headers.authorization',
  'headers.cookie',
  'headers["mcp-session-id"]'
]

/** `LOG_LEVEL` from the environment wins over `log.level` in the config (docs/operating.md, "Logs"). */
export function resolveLogLevel (configured: LogLevel, env: NodeJS.ProcessEnv): LogLevel {
  const fromEnv = env.LOG_LEVEL?.trim().toLowerCase()
  if (fromEnv === undefined || fromEnv === '') return configured
  if (!(logLevels as readonly string[]).includes(fromEnv)) {
    throw new ConfigError(`LOG_LEVEL: must be one of ${logLevels.join(', ')}, got ${JSON.stringify(env.LOG_LEVEL)}`)
  }
  return fromEnv as LogLevel
}

export function loggerOptions (level: string): LoggerOptions {
  return {
    level,
    redact: { paths: redactedPaths, censor: '[redacted]' },
    base: { service: 'mcp-session-gateway' }
  }
}
