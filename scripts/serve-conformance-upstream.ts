import { startConformanceUpstream } from '../test/fixtures/conformance-upstream.js'

/** Runs the conformance upstream alone, for a manual `conformance server --url ...`. */
const upstream = await startConformanceUpstream(Number(process.env.PORT ?? 0))
process.stdout.write(`conformance upstream listening at ${upstream.url}\n`)
