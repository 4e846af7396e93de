/**
 * What the frame path tells an observer (the metrics) beyond the counters of
 * `RouterStats`: durations and sizes, which counters cannot hold. The router
 * holds `null` when nothing observes, so an unobserved router pays one null
 * check and no clock read per frame.
 */
export interface PipelineObserver {
  /** A handler of a registered type (`rpc:<method>` for JSON-RPC) settled; `startedAt` from `performance.now()`. */
  handlerSettled: (type: string, startedAt: number) => void
  /** One fan-out handed a frame to `targets` local connections. */
  fanout: (targets: number) => void
}
