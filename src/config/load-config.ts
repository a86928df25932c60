import { readFile } from 'node:fs/promises'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import { ConfigError } from '../errors.js'
import { interpolateEnv } from './interpolate-env.js'
import { validateConfig, type GatewayConfig } from './validate-config.js'

/** Parses YAML text, interpolates `${ENV}` and validates: the whole pipeline, without I/O. */
export function resolveConfig (yamlText: string, env: NodeJS.ProcessEnv): GatewayConfig {
  let parsed: unknown
  try {
    // uniqueKeys: a key written twice is an error, not "the last one wins".
    parsed = parseYaml(yamlText, { uniqueKeys: true })
  } catch (error) {
    // One line, without the excerpt of the file yaml appends: that excerpt may show a secret.
    if (error instanceof YAMLParseError) throw new ConfigError(`invalid YAML: ${(error.message.split('\n')[0] ?? '').replace(/:$/, '')}`)
    throw error
  }
  return validateConfig(interpolateEnv(parsed, env))
}

/** Reads the file; every failure becomes a ConfigError naming the file. */
export async function loadConfig (file: string, env: NodeJS.ProcessEnv = process.env): Promise<GatewayConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new ConfigError(`cannot read config file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`)
  }
  try {
    return resolveConfig(text, env)
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`${file}: ${error.message}`)
    throw error
  }
}
