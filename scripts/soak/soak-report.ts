import { STREAM_END_BOUND_MS } from './soak-clients.js'
import type { SoakResult } from './run-soak.js'

/*
 * The soak's table (docs/reliability.md, "The table"): one Markdown table, a row per figure, the
 * must-be-0 rows marked `ok` or `FAIL`. A run gates CI on those rows alone.
 */

export interface Gate {
  readonly name: string
  readonly value: number
}

/** The must-be-0 rows. */
export function gates (result: SoakResult): Gate[] {
  const { ledger } = result
  return [
    { name: 'session served after its end', value: ledger.servedAfterEnd.length },
    { name: 'session served to another principal', value: ledger.servedToOtherPrincipal.length },
    { name: 'upstream sockets open at the end', value: result.upstreamSocketsAtEnd },
    { name: 'forwarded GET streams that outlived their session', value: ledger.streams.forwarded.outlived },
    { name: 'bridged GET streams that outlived their session', value: ledger.streams.bridged.outlived }
  ]
}

export function failedGates (result: SoakResult): Gate[] {
  return gates(result).filter((gate) => gate.value !== 0)
}

const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`

function sum (values: Iterable<number>): number {
  let total = 0
  for (const value of values) total += value
  return total
}

function byKind (counts: Map<string, number>): Array<[string, number]> {
  return [...counts.entries()].sort(([a], [b]) => a.localeCompare(b))
}

function median (values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

export function renderTable (result: SoakResult): string {
  const { ledger } = result
  const rows: Array<[string, string, string, string]> = []
  const gateOf = (value: number): string => value === 0 ? 'must be 0: ok' : 'must be 0: FAIL'
  rows.push(['requests', 'total', String(sum(ledger.requests.values())), ''])
  for (const [kind, count] of byKind(ledger.requests)) rows.push(['requests', kind, String(count), ''])
  rows.push(['faults', 'total', String(sum(ledger.faults.values())), ''])
  for (const [kind, count] of byKind(ledger.faults)) rows.push(['faults', kind, String(count), ''])
  rows.push(['wrong answers', 'session served after its end', String(ledger.servedAfterEnd.length), gateOf(ledger.servedAfterEnd.length)])
  rows.push(['wrong answers', 'session served to another principal', String(ledger.servedToOtherPrincipal.length), gateOf(ledger.servedToOtherPrincipal.length)])
  for (const replica of result.replicas) {
    const { start, peak, end } = replica.memory
    rows.push(['gateway RSS', `replica ${replica.name} start / peak / end`, `${mib(start)} / ${mib(peak)} / ${mib(end)}`, ''])
  }
  rows.push(['upstream sockets', `open at the end (after ${(result.drainMs / 1000).toFixed(1)} s of drain)`, String(result.upstreamSocketsAtEnd), gateOf(result.upstreamSocketsAtEnd)])
  for (const route of ['forwarded', 'bridged'] as const) {
    const tally = ledger.streams[route]
    const delay = median(tally.delays)
    rows.push(['streams', `${route} GET: outlived their session (> ${STREAM_END_BOUND_MS / 1000} s), of ${tally.trials} ended under them`, String(tally.outlived), gateOf(tally.outlived)])
    rows.push(['streams', `${route} GET: ended in time, median ms after the end`, delay === undefined ? `${tally.ended}` : `${tally.ended}, ${delay} ms`, ''])
  }
  rows.push(['other', 'client connections the replicas still held after the drain', String(result.clientConnectionsAtEnd), ''])
  rows.push(['other', 'replica shutdown after the soak (grace 2 s)', result.replicas.map((replica) => `${replica.name} ${replica.stopMs} ms`).join(', '), ''])
  rows.push(['other', 'unexpected answers (not wrong, listed below)', String(sum(ledger.unexpected.values())), ''])
  rows.push(['other', '5xx or no answer during the Redis outage', String(ledger.refusedDuringOutage), ''])
  rows.push(['other', 'sessions lost in the Redis restart (404 after it)', String(ledger.lostInRestart), ''])
  rows.push(['other', 'sessions idle-expired under a long request (404)', String(ledger.idleExpired), ''])
  rows.push(['other', 'stream trials skipped (overlapped the outage)', String(ledger.streamTrialsSkipped), ''])
  rows.push(['other', 'Redis outage, stop to both replicas ready', result.redisOutageMs === undefined ? 'did not finish' : `${result.redisOutageMs} ms`, ''])
  const header: [string, string, string, string] = ['section', 'row', 'value', 'gate']
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)))
  const line = (cells: readonly string[]): string => `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`
  return [line(header), `| ${widths.map((width) => '-'.repeat(width)).join(' | ')} |`, ...rows.map(line)].join('\n')
}

/** What sits behind the non-zero rows and the unexpected answers, and the replicas' warnings. */
export function renderDetails (result: SoakResult): string {
  const { ledger } = result
  const lines: string[] = []
  const list = (title: string, items: readonly string[]): void => {
    if (items.length === 0) return
    lines.push(`${title}:`)
    for (const item of items.slice(0, 10)) lines.push(`  - ${item}`)
    if (items.length > 10) lines.push(`  … and ${items.length - 10} more`)
  }
  list('served after its end', ledger.servedAfterEnd)
  list('served to another principal', ledger.servedToOtherPrincipal)
  list('unexpected answers, by kind', byKind(ledger.unexpected).map(([kind, count]) => `${count} × ${kind}`))
  list('unexpected answers, samples', ledger.unexpectedSamples)
  for (const replica of result.replicas) {
    list(`replica ${replica.name} log lines at warn and above`, byKind(replica.log.counts).map(([message, count]) => `${count} × ${message}; first: ${(replica.log.samples.get(message)?.[0] ?? '').slice(0, 400)}`))
  }
  return lines.join('\n')
}
