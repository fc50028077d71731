// The calculator's live settings, read from config namespace `calculator` (no restart needed), the
// same table as calculator/settings.py:
//
//   max_connections   1000  calls served at once; beyond it RESOURCE_EXHAUSTED "<id> is at max_connections=N"
//   work_ms           0     simulated work per call (makes concurrency visible)
//   degraded_p99_ms   250   p99 latency above which the instance reports DEGRADED
//
// The table is registered as the namespace's schema, so the config service refuses a bad value
// before storing it; a bad value met anyway keeps the last good one (agent/config-watch.ts).
import { Code, ConnectError } from "@connectrpc/connect";
import { ConfigWatch } from "./agent/config-watch";
import { intKey, quote, schema } from "./agent/config-schema";
import { sleep } from "./agent/wakeup";
import type { ConfigValue } from "./gen/runtime/v1/config_pb";
import type { JsonLog } from "./jsonlog";

export const NAMESPACE = "calculator";
type Key = "max_connections" | "work_ms" | "degraded_p99_ms";
export const DEFAULTS: Record<Key, number> = { max_connections: 1000, work_ms: 0, degraded_p99_ms: 250 };
export const LIMITS: Record<Key, [number, number]> = {
  max_connections: [1, 100_000],
  work_ms: [0, 10_000],
  degraded_p99_ms: [1, 600_000],
};
const MEANING: Record<Key, string> = {
  max_connections: "calls served at once; beyond it a call gets RESOURCE_EXHAUSTED",
  work_ms: "simulated work per call, in milliseconds",
  degraded_p99_ms: "p99 latency above which the instance reports DEGRADED",
};
const KEYS = Object.keys(DEFAULTS) as Key[];

export class Settings {
  readonly values: Record<Key, number> = { ...DEFAULTS };
  inFlight = 0;
  rejected = 0;
  readonly watch: ConfigWatch;

  constructor(
    private readonly instanceId: string,
    brokerAddress: string,
    private readonly log: JsonLog,
    private readonly onDegradedP99: (ms: number) => void = () => undefined,
  ) {
    const sch = schema(
      NAMESPACE,
      KEYS.map((k) => intKey(k, LIMITS[k][0], LIMITS[k][1], DEFAULTS[k], MEANING[k])),
      instanceId,
    );
    this.watch = new ConfigWatch(NAMESPACE, (key, value) => this.changed(key, value), brokerAddress, sch, log.child("runtime.agent.config_watch"));
  }

  /** Follow config namespace `calculator` in the background (no-op without a broker). */
  start(): void {
    this.watch.start();
  }

  stop(): Promise<void> {
    return this.watch.stop();
  }

  private changed(key: string, value: ConfigValue): void {
    if (!(KEYS as string[]).includes(key)) return;
    const k = key as Key;
    const [lo, hi] = LIMITS[k];
    const n = /^\s*[+-]?\d+\s*$/.test(value.value) ? Number(value.value) : NaN;
    if (!(n >= lo && n <= hi)) {
      // The watch checks the schema first: a second line of defence that keeps the last good value.
      this.log.warn(`config ${NAMESPACE}/${k}=${quote(value.value)} is not an int in ${lo}..${hi}; keeping ${this.values[k]}`);
      return;
    }
    if (this.values[k] !== n) {
      this.log.info(`${this.instanceId}: ${k} ${this.values[k]} -> ${n} (config version ${value.version}, no restart)`, {
        config_key: k,
        config_value: n,
      });
    }
    this.values[k] = n;
    if (k === "degraded_p99_ms") this.onDegradedP99(n);
  }

  /** Serve one call within max_connections (RESOURCE_EXHAUSTED beyond it), after work_ms. */
  async admit<T>(work: () => T): Promise<T> {
    const limit = this.values.max_connections;
    if (this.inFlight >= limit) {
      this.rejected += 1;
      throw new ConnectError(
        `${this.instanceId} is at max_connections=${limit}; retry later or raise it in config`,
        Code.ResourceExhausted,
      );
    }
    this.inFlight += 1;
    try {
      if (this.values.work_ms) await sleep(this.values.work_ms);
      return work();
    } finally {
      this.inFlight -= 1;
    }
  }
}
