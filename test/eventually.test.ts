import t from 'tap'
import { eventually } from './helpers/eventually.js'

/* The helper every test waits with (docs/testing.md): bounded, and clear about what it waited for. */

t.test('returns the first truthy value', async (t) => {
  let calls = 0
  t.equal(await eventually(() => ++calls >= 3 && 'ready', { timeout: 2_000, interval: 1 }), 'ready')
  t.equal(calls, 3)
})

t.test('a thrown error or a rejection means not yet', async (t) => {
  let calls = 0
  const value = await eventually(async () => {
    calls++
    if (calls === 1) throw new Error('not up')
    if (calls === 2) return await Promise.reject(new Error('still not up'))
    return calls
  }, { timeout: 2_000, interval: 1 })
  t.equal(value, 3)
})

t.test('fails at the deadline with the description and the last value', async (t) => {
  await t.rejects(eventually(() => 0, { timeout: 50, interval: 5, description: 'the answer' }), /timed out after \d+ ms \(\d+ attempts\) waiting for the answer; last value: 0/)
})

t.test('fails at the deadline with the last error', async (t) => {
  await t.rejects(eventually(() => { throw new Error('connection refused') }, { timeout: 50, interval: 5 }), /waiting for a condition; last error: Error: connection refused/)
})

t.test('an attempt that never settles does not hold it past the deadline', async (t) => {
  const started = Date.now()
  await t.rejects(eventually(async () => await new Promise(() => {}), { timeout: 100 }), /\(the last attempt was still running\); no attempt finished/)
  t.ok(Date.now() - started < 1_000, 'gave up at the deadline')
})
