import { runSoak } from './soak/run-soak.js'
import { failedGates, renderDetails, renderTable } from './soak/soak-report.js'

/*
 * `npm run soak` (docs/reliability.md): real Redis, two gateway replicas and real upstreams under a
 * seeded mix of clients and faults for SOAK_SECONDS (default 60), with SOAK_SEED fixing the mix.
 * Prints the table and exits 1 when a must-be-0 row is not 0, so that it can gate CI.
 */

function integerFromEnvironment (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 0) {
    process.stderr.write(`${name} must be a non-negative integer, got "${raw}"\n`)
    process.exit(2)
  }
  return value
}

const seconds = integerFromEnvironment('SOAK_SECONDS', 60)
const seed = integerFromEnvironment('SOAK_SEED', Math.floor(Math.random() * 2 ** 31))
const result = await runSoak({ seconds, seed, progress: (line) => { process.stderr.write(`${line}\n`) } })
process.stdout.write(`\nsoak: ${result.seconds} s, seed ${result.seed} (SOAK_SEED=${result.seed} replays the mix), ${result.workers} workers, 2 replicas\n\n`)
process.stdout.write(`${renderTable(result)}\n\n`)
const details = renderDetails(result)
if (details !== '') process.stdout.write(`${details}\n`)
const failed = failedGates(result)
if (failed.length > 0) {
  process.stdout.write(`\nFAIL: ${failed.map((gate) => `${gate.name} = ${gate.value}`).join(', ')}\n`)
  process.exitCode = 1
} else {
  process.stdout.write('\nok: every must-be-0 row is 0\n')
}
