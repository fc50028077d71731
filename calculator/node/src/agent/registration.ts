// Keeps one instance registered with the broker: Register, then a KeepAlive stream, forever
// (runtime/agent/registration.py). When the stream breaks, the lease is unknown or the broker
// restarts, it registers again with backoff; it never ends the service. close() deregisters with a
// short deadline so the instance leaves lookups at once instead of after its TTL.
import { ConnectError, createClient, type Client } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  BrokerService,
  KeepAliveRequestSchema,
  type KeepAliveRequest,
  type ServiceInstance,
} from "../gen/runtime/v1/broker_pb";
import type { JsonLog } from "../jsonlog";
import { statusName } from "../lab";
import { grpcTransport } from "../transport";
import { sleep, Wakeup } from "./wakeup";

export const DEFAULT_TTL_MS = 5000;
// The lab starts the broker and its dependents side by side (lab.yaml `depends_on: {broker:
// started}`): READY waits for the first registration (READY means discoverable), up to this long,
// within the supervisor's READY timeout (15 s by default). Until then retries come at most
// FIRST_BACKOFF_MAX_MS apart, so a broker that just started is found at once.
const FIRST_REGISTER_TIMEOUT_MS = 10000;
const FIRST_BACKOFF_MAX_MS = 250;
const REGISTER_TIMEOUT_MS = 2000;
const DEREGISTER_TIMEOUT_MS = 1000;
const KEEPALIVE_FRACTION = 3; // renew three times per TTL
const BACKOFF_START_MS = 50;
const BACKOFF_MAX_MS = 2000;

export class Registration {
  leaseId = "";
  registrations = 0;
  private ttlMs = DEFAULT_TTL_MS;
  private readonly broker: Client<typeof BrokerService>;
  private readonly stopping = new AbortController();
  private readonly registered = new Wakeup();
  private loop: Promise<void> | null = null;

  constructor(
    private readonly brokerAddress: string,
    private readonly instance: () => ServiceInstance,
    private readonly log: JsonLog,
  ) {
    this.broker = createClient(BrokerService, grpcTransport(brokerAddress));
  }

  /** Start the background loop; wait (bounded) for the first registration. True if registered. */
  async start(): Promise<boolean> {
    this.loop = this.keepRegistered();
    const ok = await this.registered.wait(FIRST_REGISTER_TIMEOUT_MS);
    if (!ok) this.log.warn(`broker at ${this.brokerAddress} did not accept the registration yet; still trying`);
    return ok;
  }

  /** Deregister (short deadline) and stop the keepalive loop. */
  async close(reason: string): Promise<void> {
    const leaseId = this.leaseId;
    this.stopping.abort();
    if (leaseId) {
      try {
        await this.broker.deregister(
          { instanceId: this.instance().instanceId, leaseId, reason },
          { timeoutMs: DEREGISTER_TIMEOUT_MS },
        );
      } catch (err) {
        this.log.warn(`could not deregister from broker at ${this.brokerAddress}: ${statusName(ConnectError.from(err).code)}`);
      }
    }
    await this.loop;
  }

  private async keepRegistered(): Promise<void> {
    const signal = this.stopping.signal;
    let backoff = BACKOFF_START_MS;
    while (!signal.aborted) {
      try {
        await this.register(signal);
        backoff = BACKOFF_START_MS;
        await this.keepAlive(signal);
      } catch (err) {
        if (signal.aborted) return;
        const e = ConnectError.from(err);
        this.log.info(`broker registration interrupted (${statusName(e.code)}: ${e.rawMessage}); registering again`);
      }
      this.leaseId = "";
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, this.registrations ? BACKOFF_MAX_MS : FIRST_BACKOFF_MAX_MS);
    }
  }

  private async register(signal: AbortSignal): Promise<void> {
    const instance = this.instance();
    const res = await this.broker.register({ instance, ttlMs: this.ttlMs }, { timeoutMs: REGISTER_TIMEOUT_MS, signal });
    this.leaseId = res.leaseId;
    this.ttlMs = res.ttlMs || DEFAULT_TTL_MS;
    this.registrations += 1;
    this.registered.set();
    this.log.info(`registered ${instance.instanceId} with broker at ${this.brokerAddress}`, { lease_id: res.leaseId });
  }

  /** One KeepAlive stream: a renewal every TTL/3; returns when the broker ends it or stops answering. */
  private async keepAlive(signal: AbortSignal): Promise<void> {
    const leaseId = this.leaseId;
    const interval = this.ttlMs / KEEPALIVE_FRACTION;
    const call = new AbortController();
    const stop = () => call.abort();
    signal.addEventListener("abort", stop, { once: true });
    async function* renewals(): AsyncGenerator<KeepAliveRequest> {
      while (!call.signal.aborted) {
        yield create(KeepAliveRequestSchema, { leaseId });
        await sleep(interval, call.signal);
      }
    }
    // A broker that stops answering for a whole TTL has dropped us anyway.
    let silence = setTimeout(stop, this.ttlMs);
    try {
      for await (const _renewed of this.broker.keepAlive(renewals(), { signal: call.signal })) {
        clearTimeout(silence);
        silence = setTimeout(stop, this.ttlMs);
      }
      if (!signal.aborted) this.log.info("broker ended the keepalive stream; registering again");
    } finally {
      clearTimeout(silence);
      signal.removeEventListener("abort", stop);
      call.abort();
    }
  }
}
