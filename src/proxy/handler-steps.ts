/*
 * The named steps of the request handlers, between acquiring something (a stream guard, an upstream
 * body, a recorded stream, an in-flight entry) and handing it over. A test makes any one of them
 * throw and checks that nothing is left behind (docs/testing.md, "A fault at every step"); in
 * production the checkpoint is a function that does nothing.
 */

export const HANDLER_STEPS = [
  'initialize: answered',
  'initialize: minted',
  'forwarded post: cancellations relayed',
  'forwarded post: stream started',
  'forwarded get: guarded',
  'forwarded get: opened',
  'forwarded get: stream started',
  'bridged post: reply made',
  'bridged get: stream opened',
  'stateful post: in flight',
  'stateful post: answered',
  'stateful get: opened',
  'resume: guarded',
  'resume: replayed'
] as const

export type HandlerStep = typeof HANDLER_STEPS[number]

/** Called at each step; throws to inject a fault there. */
export type Checkpoint = (step: HandlerStep) => void

export const NO_FAULTS: Checkpoint = () => {}
