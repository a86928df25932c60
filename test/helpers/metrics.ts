/* Reading the gateway's Prometheus text (docs/operating.md, "Metrics"). */

/** The gateway's metrics text, from its listen port. */
export async function metricsText (origin: string, path = '/metrics'): Promise<string> {
  const response = await fetch(`${origin}${path}`, { signal: AbortSignal.timeout(10_000) })
  if (response.status !== 200) throw new Error(`metrics: HTTP ${response.status}`)
  return await response.text()
}

/** The value of the first sample of `name` whose labels include `labels`; 0 when there is none. */
export function sample (text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    if (Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return 0
}

/** The sum of every sample of `name` (all label sets). */
export function total (text: string, name: string): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}
