import type { Redis } from 'ioredis'

/* What the benchmark reads of Redis's and the gateway's own counters, to count round trips and bytes. */

/**
 * Redis round trips the gateway has made so far, from its own metrics (every session store call is
 * timed, one sample per round trip): `touch` alone, the one a request on a live session needs, and
 * every store operation, which must come to the same number; beside them the requests of `rpcMethod`
 * the gateway answered, counted on its side. Redis's commandstats would not do for round trips: it
 * also counts the commands a Lua script runs inside the one EVALSHA. Appends of the stream event
 * store are not session store calls and are not in these metrics: redisCommandCalls counts them.
 */
export async function gatewayCounts (metricsUrl: string, rpcMethod: string): Promise<{ touch: number, storeCalls: number, answered: number }> {
  const text = await (await fetch(metricsUrl)).text()
  const counts = { touch: 0, storeCalls: 0, answered: 0 }
  for (const match of text.matchAll(/^mcpgw_redis_duration_seconds_count\{([^}]*)\} (\d+)/gm)) {
    counts.storeCalls += Number(match[2])
    if ((match[1] as string).includes('operation="touch"')) counts.touch += Number(match[2])
  }
  for (const match of text.matchAll(/^mcpgw_requests_total\{([^}]*)\} (\d+)/gm)) {
    if ((match[1] as string).includes(`rpc_method="${rpcMethod}"`)) counts.answered += Number(match[2])
  }
  return counts
}

/** EVALSHA calls Redis served, the server-side view of the same number. */
export async function redisScriptCalls (redis: Redis): Promise<number> {
  const calls = await redisCommandCalls(redis)
  return (calls.evalsha ?? 0) + (calls.eval ?? 0)
}

/**
 * Calls of each command Redis has served so far (`INFO commandstats`), the commands that scripts
 * run inside their EVALSHA included (those are what the script costs Redis), and `info` left out
 * (the benchmark's own reading).
 */
export async function redisCommandCalls (redis: Redis): Promise<Record<string, number>> {
  const calls: Record<string, number> = {}
  for (const match of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (match[1] !== 'info') calls[match[1] as string] = Number(match[2])
  }
  return calls
}

/** Per request, each command's calls between two readings of redisCommandCalls, by name (the unchanged left out). */
export function commandsPerRequest (before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>, requests: number): Record<string, number> {
  const perRequest: Record<string, number> = {}
  for (const [command, calls] of Object.entries(after).sort(([a], [b]) => a.localeCompare(b))) {
    const delta = calls - (before[command] ?? 0)
    if (delta > 0) perRequest[command] = delta / requests
  }
  return perRequest
}

export async function usedMemory (redis: Redis): Promise<number> {
  return Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1])
}
