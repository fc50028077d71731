// Pushes this instance's health to the health service (ReportHealth stream), as
// runtime/agent/health_reporter.py does: STARTING, HEALTHY (or DEGRADED by the rule), and a final
// UNHEALTHY (final=true) on a graceful stop. The health service is found through the broker; when
// the stream breaks (the health service restarted) the reporter looks it up again, reconnects and
// re-sends the current state.
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { HealthService, HealthState, HealthStatusSchema, type HealthStatus } from "../gen/runtime/v1/health_pb";
import type { JsonLog } from "../jsonlog";
import { statusName, type Identity } from "../lab";
import { grpcTransport } from "../transport";
import type { DegradedRule } from "./degraded-rule";
import { findOrWait } from "./lookup";
import { sleep, Wakeup } from "./wakeup";

const RECONNECT_INITIAL_MS = 50;
const RECONNECT_MAX_MS = 250;
const HEALTH_WAIT_MS = 30_000; // with no health service registered, wait this long, then look again
const FINAL_REPORT_TIMEOUT_MS = 1000;
const RULE_CHECK_INTERVAL_MS = 250;
export const HEALTH_GRPC_SERVICE = HealthService.typeName;

export class HealthReporter {
  address = "";
  state: HealthState = HealthState.UNKNOWN;
  message = "";
  connectedTo = "";
  connects = 0;
  reportsSent = 0;
  private final = false;
  private readonly changed = new Wakeup();
  private readonly stopping = new AbortController();
  private loop: Promise<boolean> | null = null;
  private ruleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly identity: Identity,
    private readonly brokerAddress: string,
    readonly rule: DegradedRule,
    private readonly log: JsonLog,
  ) {}

  /** Report STARTING and keep reporting in the background (nothing to do outside a lab). */
  start(): void {
    if (this.loop || !this.brokerAddress) return;
    if (this.state === HealthState.UNKNOWN) this.set(HealthState.STARTING, "starting");
    this.loop = this.run();
    this.ruleTimer = setInterval(() => this.checkRule(), RULE_CHECK_INTERVAL_MS);
  }

  /** Record a new state; it is pushed in the background. */
  set(state: HealthState, message = ""): void {
    this.state = state;
    this.message = message;
    this.changed.set();
  }

  /** The status this instance reports now (the DEGRADED rule applied to HEALTHY). */
  current(): HealthStatus {
    let state = this.state;
    let message = this.message;
    if (state === HealthState.HEALTHY && this.rule.degraded) {
      state = HealthState.DEGRADED;
      message = this.rule.reason;
    }
    return create(HealthStatusSchema, {
      serviceName: this.identity.service,
      instanceId: this.identity.instance,
      state,
      message,
      timestamp: BigInt(Date.now()),
      address: this.address,
      final: this.final,
      source: "push",
      metadata: { pid: String(process.pid), language: this.identity.language || "typescript" },
    });
  }

  /** Send the final state (UNHEALTHY, final=true) and stop; bounded by FINAL_REPORT_TIMEOUT_MS. */
  async close(message: string): Promise<void> {
    if (this.ruleTimer) clearInterval(this.ruleTimer);
    if (!this.loop) return;
    this.final = true;
    this.set(HealthState.UNHEALTHY, `stopped: ${message}`);
    if (this.connectedTo) await Promise.race([this.loop, sleep(FINAL_REPORT_TIMEOUT_MS)]);
    this.stopping.abort();
    await this.loop;
    this.loop = null;
  }

  private checkRule(): void {
    const before = this.rule.degraded;
    this.rule.evaluate();
    if (before === this.rule.degraded) return;
    if (!this.rule.degraded && this.state === HealthState.HEALTHY) this.message = this.rule.reason;
    this.log.info(
      this.rule.degraded ? `DEGRADED: ${this.rule.reason}` : `HEALTHY again: ${this.rule.reason}`,
      { health: this.rule.degraded ? "DEGRADED" : "HEALTHY" },
    );
    this.changed.set();
  }

  /** Look up, stream, reconnect; true once the final report was delivered. */
  private async run(): Promise<boolean> {
    const signal = this.stopping.signal;
    let backoff = RECONNECT_INITIAL_MS;
    while (!signal.aborted) {
      let address = "";
      try {
        address = await findOrWait(this.brokerAddress, HEALTH_GRPC_SERVICE, HEALTH_WAIT_MS, signal);
      } catch (err) {
        this.log.debug(`health service lookup failed: ${statusName(ConnectError.from(err).code)}`);
      }
      if (address) {
        if (await this.streamTo(address, signal)) return true;
        if (this.connectedTo) backoff = RECONNECT_INITIAL_MS;
      }
      this.connectedTo = "";
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
    }
    return false;
  }

  private async streamTo(address: string, signal: AbortSignal): Promise<boolean> {
    const client = createClient(HealthService, grpcTransport(address));
    const reports = async function* (this: HealthReporter): AsyncGenerator<HealthStatus> {
      this.connects += 1;
      this.connectedTo = address;
      for (;;) {
        this.changed.clear();
        const status = this.current();
        this.reportsSent += 1;
        yield status; // the current state first: a new health service learns it at once
        if (status.final) return;
        if (!(await this.changed.wait(Infinity, signal))) return;
      }
    }.call(this);
    try {
      await client.reportHealth(reports, { signal });
    } catch (err) {
      const e = ConnectError.from(err);
      this.log.debug(`health report stream to ${address} broke: ${statusName(e.code)} ${e.rawMessage}`);
      return false;
    }
    return this.final;
  }
}
