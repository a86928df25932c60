import { startDemoUpstream } from './upstream.js'

/** Runs the demo upstream alone (docker-compose's `demo-upstream` service). */
const upstream = await startDemoUpstream({
  host: process.env.DEMO_UPSTREAM_HOST ?? '127.0.0.1',
  port: Number(process.env.DEMO_UPSTREAM_PORT ?? 3000),
  responseMode: process.env.DEMO_UPSTREAM_RESPONSE_MODE === 'json' ? 'json' : 'sse'
})
process.stdout.write(`demo upstream (stateless MCP server) listening at ${upstream.url}\n`)
const stop = (): void => { upstream.close().then(() => process.exit(0), () => process.exit(1)) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
