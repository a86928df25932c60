import t from 'tap'
import { runSoak } from '../scripts/soak/run-soak.js'
import { FAULTS } from '../scripts/soak/soak-clients.js'
import { gates, renderDetails, renderTable } from '../scripts/soak/soak-report.js'

/*
 * `npm run soak` in short (docs/reliability.md): the same harness for 15 s with a fixed seed, two
 * replicas built from the CLI, real Redis restarted once, real upstreams. The must-be-0 rows must
 * be 0 and every fault kind must have been injected. No timing is asserted beyond the harness's own
 * bound on a stream's end after its session's end.
 */

const SECONDS = 15
const SEED = 20260728

const result = await runSoak({ seconds: SECONDS, seed: SEED })
t.comment(`soak: ${SECONDS} s, seed ${SEED}\n${renderTable(result)}\n${renderDetails(result)}`)

for (const gate of gates(result)) {
  t.test(`soak row "${gate.name}" is 0`, async (t) => {
    t.equal(gate.value, 0)
  })
}

t.test('every fault kind was injected', async (t) => {
  for (const fault of Object.values(FAULTS)) t.ok((result.ledger.faults.get(fault) ?? 0) >= 1, fault)
})

t.test('sessions were ended under open GET streams on both kinds of route', async (t) => {
  t.ok(result.ledger.streams.forwarded.trials >= 1, 'forwarded')
  t.ok(result.ledger.streams.bridged.trials >= 1, 'bridged')
})
