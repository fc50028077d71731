// The DEGRADED rule (runtime/agent/health_reporter.py DegradedRule), the same numbers in every
// language: when the rolling p99 latency of the instance's own unary calls passes `p99Ms`, or more
// than `inFlight` calls run at once, a HEALTHY instance reports DEGRADED; it reports HEALTHY again
// only after both stay below RECOVER_RATIO of their thresholds for `recoverHoldS` (hysteresis).
//
//   const rule = new DegradedRule({ p99Ms: 100, inFlight: 10, recoverHoldS: 0 });
//   for (let i = 0; i < 50; i++) rule.finished(rule.started(), 0, 500);
//   rule.evaluate(0)[0]   // true

export const DEGRADED_P99_MS = 250;
export const DEGRADED_IN_FLIGHT = 64;
export const RECOVER_RATIO = 0.7;
export const RECOVER_HOLD_S = 2.0;
export const LATENCY_WINDOW_S = 5.0;
export const LATENCY_SAMPLES_MAX = 4096;
export const MIN_SAMPLES = 20; // the p99 of a handful of calls is noise

/** Seconds on a monotonic clock (time.monotonic in the Python agent). */
export function monotonic(): number {
  return performance.now() / 1000;
}

/** Linear interpolation between the two nearest samples (runtime/client/percentiles.py, "inclusive"). */
export function percentile(values: number[], pct: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = ((sorted.length - 1) * pct) / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export interface RuleThresholds {
  p99Ms: number;
  inFlight: number;
  recoverHoldS: number;
}

export class DegradedRule {
  p99Ms: number;
  inFlightMax: number;
  recoverHoldS: number;
  readonly recoverRatio = RECOVER_RATIO;
  readonly windowS = LATENCY_WINDOW_S;
  degraded = false;
  reason = "";
  calls = 0; // unary calls timed so far
  // In flight = calls running. The agent's interceptor counts them in a try/finally, so a call can
  // never be left open (a cancelled call finishes too).
  private running = 0;
  private samples: Array<[number, number]> = []; // (end time, latency ms), at most LATENCY_SAMPLES_MAX
  private calmSince: number | null = null;

  constructor(t: RuleThresholds) {
    this.p99Ms = t.p99Ms;
    this.inFlightMax = t.inFlight;
    this.recoverHoldS = t.recoverHoldS;
  }

  /** Calls running now. */
  get inFlight(): number {
    return this.running;
  }

  /** A call began; returns its start time for `finished`. */
  started(): number {
    this.running += 1;
    return monotonic();
  }

  /** A call ended (latency measured from `started` unless given). */
  finished(started: number, now = monotonic(), latencyMs?: number): void {
    this.calls += 1;
    this.running = Math.max(0, this.running - 1);
    this.samples.push([now, latencyMs ?? (now - started) * 1000]);
    if (this.samples.length > LATENCY_SAMPLES_MAX) this.samples.shift();
  }

  /** A call counted by `started` was not timed after all (a stream). */
  abandoned(): void {
    this.running = Math.max(0, this.running - 1);
  }

  /** p99 latency (ms) of the calls that ended within the window (0 with too few calls). */
  p99(now: number): number {
    while (this.samples.length > 0 && this.samples[0][0] < now - this.windowS) this.samples.shift();
    if (this.samples.length < MIN_SAMPLES) return 0;
    return percentile(
      this.samples.map(([, latency]) => latency),
      99,
    );
  }

  /** Update and return [degraded, reason]. */
  evaluate(now = monotonic()): [boolean, string] {
    const p99 = this.p99(now);
    const inFlight = this.inFlight;
    if (!this.degraded) {
      if (p99 > this.p99Ms) {
        this.degraded = true;
        this.reason = `p99 latency ${p99.toFixed(0)} ms is above ${this.p99Ms.toFixed(0)} ms (last ${this.windowS} s)`;
      } else if (inFlight > this.inFlightMax) {
        this.degraded = true;
        this.reason = `${inFlight} calls in flight, more than ${this.inFlightMax}`;
      }
      this.calmSince = null;
      return [this.degraded, this.reason];
    }
    const calm = p99 < this.p99Ms * this.recoverRatio && inFlight < this.inFlightMax * this.recoverRatio;
    if (!calm) this.calmSince = null;
    else if (this.calmSince === null) this.calmSince = now;
    if (calm && this.calmSince !== null && now - this.calmSince >= this.recoverHoldS) {
      this.degraded = false;
      this.reason =
        `recovered: p99 ${p99.toFixed(0)} ms and ${inFlight} in flight stayed below ` +
        `${Math.round(this.recoverRatio * 100)}% of their thresholds for ${this.recoverHoldS} s`;
      this.calmSince = null;
    }
    return [this.degraded, this.reason];
  }
}
