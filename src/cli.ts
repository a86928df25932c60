#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { loadConfig } from './config/load-config.js'
import { ConfigError } from './errors.js'
import { startGateway } from './start-gateway.js'

const usage = `Usage: mcp-session-gateway [--config FILE]

Runs the MCP session gateway configured by one YAML file.

Options:
  -c, --config FILE   the configuration file (YAML). Without it, the file named by the
                      MCP_GATEWAY_CONFIG environment variable is used.
  -h, --help          show this help.

Environment:
  MCP_GATEWAY_CONFIG  configuration file used when --config is not given.
  LOG_LEVEL           overrides log.level from the configuration.
  Any \${VAR} or \${VAR:-default} in the configuration is read from the environment.

See config/gateway.yaml for every key, documented.`

async function main (): Promise<void> {
  let values: { config?: string | undefined, help?: boolean | undefined }
  try {
    values = parseArgs({
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: false
    }).values
  } catch (error) {
    process.stderr.write(`mcp-session-gateway: ${(error as Error).message}\n\n${usage}\n`)
    process.exit(2)
  }
  if (values.help === true) {
    process.stdout.write(`${usage}\n`)
    return
  }
  const configFile = values.config ?? process.env.MCP_GATEWAY_CONFIG
  if (configFile === undefined || configFile === '') {
    process.stderr.write(`mcp-session-gateway: no configuration: pass --config FILE or set MCP_GATEWAY_CONFIG\n\n${usage}\n`)
    process.exit(2)
  }
  try {
    const config = await loadConfig(configFile)
    await startGateway(config)
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`mcp-session-gateway: invalid configuration: ${error.message}\n`)
      process.exit(1)
    }
    throw error
  }
}

await main()
