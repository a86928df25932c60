/*
 * Draws the benchmark as one SVG a reader can take in at a glance: requests per second per scenario
 * (bars), and p50/p99 latency of the bare proxy and the gateway at the same fixed load.
 */

interface Result { requestsPerSecond: number, p50: number, p99: number }

export interface ChartInput {
  readonly date: string
  readonly fixedRate: number
  readonly throughput: Record<string, Result>
  readonly latencyAtFixedRate: Record<string, Result>
  readonly redis: { bytesPerSession: number, commandsPerProxiedRequest: number }
}

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

export function renderChart (input: ChartInput): string {
  const width = 900
  const rowHeight = 34
  const labelWidth = 300
  const barSpace = width - labelWidth - 120
  const throughput = Object.entries(input.throughput)
  const maxRate = Math.max(...throughput.map(([, result]) => result.requestsPerSecond), 1)
  const parts: string[] = []
  let y = 70
  parts.push(`<text x="20" y="30" font-size="20" font-weight="bold">mcp-session-gateway: what the gateway costs</text>`)
  parts.push(`<text x="20" y="52" font-size="12" fill="#555">${escape(input.date)} · requests per second (median of alternating rounds)</text>`)
  for (const [name, result] of throughput) {
    const barWidth = Math.max(1, Math.round(barSpace * result.requestsPerSecond / maxRate))
    const color = name.startsWith('gateway') ? '#2f6fdf' : name.startsWith('direct') ? '#999' : '#e0892b'
    parts.push(`<text x="20" y="${y + 20}" font-size="13">${escape(name)}</text>`)
    parts.push(`<rect x="${labelWidth}" y="${y + 5}" width="${barWidth}" height="22" fill="${color}"/>`)
    parts.push(`<text x="${labelWidth + barWidth + 8}" y="${y + 21}" font-size="13">${result.requestsPerSecond.toLocaleString('en-US')}/s</text>`)
    y += rowHeight
  }
  y += 30
  parts.push(`<text x="20" y="${y}" font-size="14" font-weight="bold">latency at the same load (${input.fixedRate.toLocaleString('en-US')} req/s), ms</text>`)
  y += 10
  const latency = Object.entries(input.latencyAtFixedRate)
  const maxLatency = Math.max(...latency.map(([, result]) => result.p99), 1)
  for (const [name, result] of latency) {
    for (const [label, value, color] of [['p50', result.p50, '#8fb3f0'], ['p99', result.p99, '#2f6fdf']] as const) {
      const barWidth = Math.max(1, Math.round(barSpace * value / maxLatency))
      parts.push(`<text x="20" y="${y + 20}" font-size="13">${escape(name)} ${label}</text>`)
      parts.push(`<rect x="${labelWidth}" y="${y + 5}" width="${barWidth}" height="22" fill="${name.startsWith('gateway') ? color : '#e0892b'}"/>`)
      parts.push(`<text x="${labelWidth + barWidth + 8}" y="${y + 21}" font-size="13">${value.toFixed(2)} ms</text>`)
      y += rowHeight
    }
  }
  y += 20
  parts.push(`<text x="20" y="${y}" font-size="13">Redis: ${input.redis.bytesPerSession} bytes per session · ${input.redis.commandsPerProxiedRequest.toFixed(2)} round trips per proxied request</text>`)
  const height = y + 25
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`
}
