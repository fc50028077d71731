// The agent's side of chaos (runtime/agent/faults.py FaultAgent): follow WatchFaults(service,
// instance) on the chaos service (found through the broker); every message is the complete list of
// faults for this instance and replaces the previous one. Two rules make sure a dead chaos service
// never leaves a service broken:
//   TTL            a fault with expires_at is dropped here when that time comes, whatever happens;
//   dead-man       when the stream breaks, every fault is dropped at once, then it looks again.
import { ConnectError, createClient } from "@connectrpc/connect";
import { ChaosService } from "../gen/runtime/v1/chaos_pb";
import type { JsonLog } from "../jsonlog";
import { statusName, type Identity } from "../lab";
import { grpcTransport } from "../transport";
import { FaultSet } from "./fault-set";
import { findOrWait } from "./lookup";
import { sleep } from "./wakeup";

export const CHAOS_GRPC_SERVICE = ChaosService.typeName;
const CHAOS_WAIT_MS = 30_000;
const RECONNECT_INITIAL_MS = 50;
const RECONNECT_MAX_MS = 1000;
const TTL_CHECK_MS = 50;

export class FaultFollower {
  readonly set: FaultSet;
  connectedTo = "";
  connects = 0;
  deadManDrops = 0;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | null = null;
  private ttlTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly identity: Identity,
    private readonly brokerAddress: string,
    private readonly log: JsonLog,
  ) {
    this.set = new FaultSet(log);
  }

  /** Follow the chaos service in the background (nothing to follow outside a lab). */
  start(): void {
    if (this.loop || !this.brokerAddress) return;
    this.loop = this.run();
    this.ttlTimer = setInterval(() => this.set.expire(), TTL_CHECK_MS);
    this.ttlTimer.unref();
  }

  /** Stop following and drop every fault (threads stopped, memory released). */
  async close(): Promise<void> {
    this.stopping.abort();
    if (this.ttlTimer) clearInterval(this.ttlTimer);
    await this.loop;
    this.set.clear("the service is stopping");
  }

  private async run(): Promise<void> {
    const signal = this.stopping.signal;
    let backoff = RECONNECT_INITIAL_MS;
    while (!signal.aborted) {
      try {
        const address = await findOrWait(this.brokerAddress, CHAOS_GRPC_SERVICE, CHAOS_WAIT_MS, signal);
        if (address) {
          await this.follow(address, signal);
          backoff = RECONNECT_INITIAL_MS;
        }
      } catch (err) {
        const e = ConnectError.from(err);
        if (!signal.aborted) this.log.debug(`chaos follower: ${statusName(e.code)} ${e.rawMessage}`);
      } finally {
        if (this.connectedTo) {
          this.connectedTo = "";
          if (signal.aborted) this.set.clear("the service is stopping");
          else if (this.set.clear("the chaos service stream broke (dead-man switch)")) this.deadManDrops += 1;
        }
      }
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
    }
  }

  private async follow(address: string, signal: AbortSignal): Promise<void> {
    const chaos = createClient(ChaosService, grpcTransport(address));
    const updates = chaos.watchFaults({ serviceName: this.identity.service, instanceId: this.identity.instance }, { signal });
    for await (const update of updates) {
      if (!this.connectedTo) {
        this.connectedTo = address;
        this.connects += 1;
      }
      this.set.replace(update.faults);
      await this.set.growMemory();
    }
  }
}
