import { fileURLToPath } from 'node:url'
import { loadConfig } from '../src/config/load-config.js'
import { startGateway } from '../src/start-gateway.js'
import { startDemoUpstream } from './upstream.js'

/*
 * `npm run demo`: the demo upstream on 127.0.0.1:3000 and the gateway on 127.0.0.1:8080 in front of
 * it, with in-memory sessions (config/demo.yaml): nothing else has to run.
 */
const upstream = await startDemoUpstream({ port: Number(process.env.DEMO_UPSTREAM_PORT ?? 3000) })
process.stdout.write(`demo upstream (stateless MCP server) listening at ${upstream.url}\n`)
const configFile = fileURLToPath(new URL('../../config/demo.yaml', import.meta.url))
// The upstream ends with the process when the gateway shuts down on SIGTERM/SIGINT.
await startGateway(await loadConfig(configFile))
