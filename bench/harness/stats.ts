/** Small statistics over rounds: median with its range. */

export interface Spread {
  median: number
  min: number
  max: number
}

export function spread (values: readonly number[]): Spread {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN }
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number }
}

export function sum (values: readonly number[]): number {
  let total = 0
  for (const value of values) total += value
  return total
}
