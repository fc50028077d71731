// The JSON-line log contract (runtime/client/jsonlog.py): one object per line on stdout, which the
// supervisor forwards to the logger service as a LogEntry, level and correlation id intact.
//   {"ts": 1767000000123, "ts_us": ..., "level": "INFO", "message": "Add(2,3) = 5",
//    "correlation_id": "req-123", "service": "calculator-ts", "instance": "calculator-ts-1",
//    "logger": "calculator.server", ...extra fields become the entry's metadata}
import { AsyncLocalStorage } from "node:async_hooks";
import type { Identity } from "./lab";

export type Level = "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR" | "FATAL";

/** The correlation id of the call being served (set by the agent's interceptor), like
 * runtime.client.correlation's context variable: log lines inside a call carry it by themselves. */
export const callContext = new AsyncLocalStorage<string>();

export class JsonLog {
  /** `logger` names the part that speaks, as Python's logger names do (metadata "logger"). */
  constructor(
    private readonly who: Pick<Identity, "service" | "instance">,
    private readonly logger = "",
  ) {}

  /** The same log under another logger name. */
  child(logger: string): JsonLog {
    return new JsonLog(this.who, logger);
  }

  write(level: Level, message: string, correlationId?: string, extra: Record<string, unknown> = {}): void {
    const nowUs = Math.round((performance.timeOrigin + performance.now()) * 1000);
    const entry: Record<string, unknown> = {
      ts: Math.floor(nowUs / 1000),
      ts_us: nowUs, // sub-millisecond order for lines written in the same ms
      level,
      message,
      correlation_id: correlationId ?? callContext.getStore() ?? "",
      service: this.who.service,
      instance: this.who.instance,
    };
    if (this.logger) entry.logger = this.logger;
    // stdout to a pipe is synchronous on Linux: lines are never lost or interleaved at exit.
    process.stdout.write(JSON.stringify({ ...entry, ...extra }) + "\n");
  }

  info(message: string, extra?: Record<string, unknown>): void {
    this.write("INFO", message, undefined, extra);
  }

  warn(message: string, extra?: Record<string, unknown>): void {
    this.write("WARN", message, undefined, extra);
  }

  error(message: string, extra?: Record<string, unknown>): void {
    this.write("ERROR", message, undefined, extra);
  }

  debug(message: string, extra?: Record<string, unknown>): void {
    this.write("DEBUG", message, undefined, extra);
  }
}
