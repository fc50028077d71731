// What the agent reads from its environment once, at start, besides its Identity: the DEGRADED
// rule's thresholds (runtime/agent/settings.py), the same variables and defaults in every language.
//
//   LAB_HEALTH_DEGRADED_P99_MS     250   rolling p99 latency (ms) above which it is DEGRADED
//   LAB_HEALTH_DEGRADED_IN_FLIGHT  64    calls at once above which it is DEGRADED
//   LAB_HEALTH_RECOVER_HOLD_S      2.0   how long both must stay calm before HEALTHY again
import { DEGRADED_IN_FLIGHT, DEGRADED_P99_MS, RECOVER_HOLD_S, type RuleThresholds } from "./degraded-rule";

export const ENV_DEGRADED_P99_MS = "LAB_HEALTH_DEGRADED_P99_MS";
export const ENV_DEGRADED_IN_FLIGHT = "LAB_HEALTH_DEGRADED_IN_FLIGHT";
export const ENV_RECOVER_HOLD_S = "LAB_HEALTH_RECOVER_HOLD_S";

/** The thresholds of this process's DEGRADED rule; throws naming the variable that is not a number. */
export function agentSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): RuleThresholds {
  return {
    p99Ms: number(env, ENV_DEGRADED_P99_MS, false, DEGRADED_P99_MS),
    inFlight: number(env, ENV_DEGRADED_IN_FLIGHT, true, DEGRADED_IN_FLIGHT),
    recoverHoldS: number(env, ENV_RECOVER_HOLD_S, false, RECOVER_HOLD_S),
  };
}

function number(env: NodeJS.ProcessEnv, key: string, integer: boolean, fallback: number): number {
  const raw = env[key];
  if (raw === undefined) return fallback; // unset: the default (an empty one is not a number)
  const value = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new Error(`${key}=${JSON.stringify(raw.slice(0, 200))} is not a${integer ? "n integer" : " number"}`);
  }
  return value;
}
