/*
 * Draws the benchmark as one SVG a reader can take in at a glance: CPU time per request of each proxy
 * (the figure that does not depend on the machine), requests per second per scenario, and p50/p99 of
 * the bare proxy and the gateway at one fixed rate, with few and with many live sessions.
 */

interface Result { requestsPerSecond: number, p50: number, p99: number, cpu: { proxy?: number } }

export interface ChartInput {
  readonly date: string
  readonly pinning: string
  readonly fixedRate: number
  readonly throughput: Record<string, Result>
  readonly initialize: Record<string, Result>
  readonly sessions: {
    readonly baseline: number
    readonly live: number
    readonly latencyAtBaseline: Record<string, Result>
    readonly latencyAtSessions?: Record<string, Result>
  }
  readonly redis: { bytesPerSession: number, roundTripsPerProxiedRequest: number }
}

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

const width = 900
const rowHeight = 34
const labelWidth = 340
const barSpace = width - labelWidth - 120

function colorOf (name: string): string {
  return name.startsWith('gateway') ? '#2f6fdf' : name.startsWith('direct') ? '#999' : '#e0892b'
}

interface Bar { readonly label: string, readonly value: number, readonly text: string, readonly color: string }

/** One titled group of horizontal bars, scaled to its own largest value; returns the next free y. */
function bars (parts: string[], y: number, title: string, rows: Bar[]): number {
  parts.push(`<text x="20" y="${y}" font-size="14" font-weight="bold">${escape(title)}</text>`)
  y += 10
  const max = Math.max(...rows.map((row) => row.value), Number.MIN_VALUE)
  for (const row of rows) {
    const barWidth = Math.max(1, Math.round(barSpace * row.value / max))
    parts.push(`<text x="20" y="${y + 20}" font-size="13">${escape(row.label)}</text>`)
    parts.push(`<rect x="${labelWidth}" y="${y + 5}" width="${barWidth}" height="22" fill="${row.color}"/>`)
    parts.push(`<text x="${labelWidth + barWidth + 8}" y="${y + 21}" font-size="13">${escape(row.text)}</text>`)
    y += rowHeight
  }
  return y + 30
}

export function renderChart (input: ChartInput): string {
  const parts: string[] = []
  parts.push('<text x="20" y="30" font-size="20" font-weight="bold">mcp-session-gateway: what the gateway costs</text>')
  parts.push(`<text x="20" y="52" font-size="12" fill="#555">${escape(input.date)} · median of alternating rounds · ${escape(input.pinning.split(':')[0] ?? '')}</text>`)
  const proxied = Object.entries({ ...input.throughput, ...input.initialize }).filter(([, result]) => result.cpu.proxy !== undefined)
  let y = bars(parts, 90, 'CPU time per request of the proxy process, µs', proxied.map(([name, result]) => ({
    label: name, value: result.cpu.proxy as number, text: `${(result.cpu.proxy as number).toFixed(1)} µs`, color: colorOf(name)
  })))
  y = bars(parts, y, 'requests per second (depends on the machine)', Object.entries({ ...input.throughput, ...input.initialize }).map(([name, result]) => ({
    label: name, value: result.requestsPerSecond, text: `${result.requestsPerSecond.toLocaleString('en-US')}/s`, color: colorOf(name)
  })))
  const phases: Array<[number, Record<string, Result> | undefined]> = [[input.sessions.baseline, input.sessions.latencyAtBaseline], [input.sessions.live, input.sessions.latencyAtSessions]]
  const latencyRows: Bar[] = []
  for (const [sessions, results] of phases) {
    for (const [name, result] of Object.entries(results ?? {})) {
      for (const [label, value, color] of [['p50', result.p50, '#8fb3f0'], ['p99', result.p99, '#2f6fdf']] as const) {
        latencyRows.push({ label: `${name.split(',')[0] ?? name}, ${sessions.toLocaleString('en-US')} sessions, ${label}`, value, text: `${value.toFixed(2)} ms`, color: name.startsWith('gateway') ? color : '#e0892b' })
      }
    }
  }
  y = bars(parts, y, `latency at the same load (${input.fixedRate.toLocaleString('en-US')} req/s), ms`, latencyRows)
  parts.push(`<text x="20" y="${y - 10}" font-size="13">Redis: ${input.redis.bytesPerSession} bytes per session · ${input.redis.roundTripsPerProxiedRequest.toFixed(2)} round trips per proxied request</text>`)
  const height = y + 5
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`
}
