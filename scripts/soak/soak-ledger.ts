/*
 * What a soak run counts: requests by kind, faults injected by kind, wrong answers (the must-be-0
 * rows), answers that were merely unexpected, and the fate of every GET stream whose session was
 * ended elsewhere. Redis outages are recorded as time windows: an answer overlapping one may be a
 * 5xx (the gateway cannot reach its store) without being wrong.
 */

export type StreamRoute = 'forwarded' | 'bridged'

export interface StreamTally {
  /** Sessions ended (and acknowledged) on one replica while another held their GET stream open. */
  trials: number
  /** Streams that ended within the bound after the end was acknowledged. */
  ended: number
  /** Streams still open at the bound. */
  outlived: number
  /** Milliseconds from the acknowledgement to the stream's end, for the streams that ended. */
  delays: number[]
}

export interface Outage { readonly start: number, end: number | undefined }

const KEPT_SAMPLES = 12
const LOSS_MARGIN_MS = 2_000

export class SoakLedger {
  readonly requests = new Map<string, number>()
  readonly faults = new Map<string, number>()
  /** A request with an ended id, started after the end was acknowledged, that did not get 404. */
  readonly servedAfterEnd: string[] = []
  /** A request (or DELETE) with another principal's header that did not get 404. */
  readonly servedToOtherPrincipal: string[] = []
  /** Answers that break no must-be-0 rule but were not what a healthy gateway answers. */
  readonly unexpected = new Map<string, number>()
  readonly unexpectedSamples: string[] = []
  readonly streams: Record<StreamRoute, StreamTally> = {
    forwarded: { trials: 0, ended: 0, outlived: 0, delays: [] },
    bridged: { trials: 0, ended: 0, outlived: 0, delays: [] }
  }
  /** Informational: 5xx (or no answer) while Redis was away; sessions lost with Redis' data. */
  refusedDuringOutage = 0
  lostInRestart = 0
  /** 404 on a session left alone (a long request included) for about the idle timeout. */
  idleExpired = 0
  streamTrialsSkipped = 0
  readonly outages: Outage[] = []

  countRequest (kind: string): void {
    this.requests.set(kind, (this.requests.get(kind) ?? 0) + 1)
  }

  countFault (kind: string): void {
    this.faults.set(kind, (this.faults.get(kind) ?? 0) + 1)
  }

  noteUnexpected (kind: string, detail: string): void {
    this.unexpected.set(kind, (this.unexpected.get(kind) ?? 0) + 1)
    if (this.unexpectedSamples.length < KEPT_SAMPLES) this.unexpectedSamples.push(`${kind}: ${detail}`)
  }

  /** Whether [started, finished] overlaps a Redis outage (an open one counts up to now). */
  overlapsOutage (started: number, finished: number): boolean {
    return this.outages.some((outage) => outage.start <= finished && (outage.end === undefined || outage.end >= started))
  }

  /**
   * Whether Redis may have lost a session created at `created` by `finished`: an outage began between
   * the two (Redis restarts empty). The margin covers a session written just as Redis went down.
   */
  lostSince (created: number, finished: number): boolean {
    return this.outages.some((outage) => outage.start >= created - LOSS_MARGIN_MS && outage.start <= finished)
  }
}
