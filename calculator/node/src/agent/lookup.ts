// Find one instance of a platform service (health, chaos, config) through the broker, or wait for
// one on the broker's watch stream (runtime/agent/lookup.py): a lab without it costs nothing.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { BrokerService, ServiceEventType } from "../gen/runtime/v1/broker_pb";
import { grpcTransport } from "../transport";

const LOOKUP_TIMEOUT_MS = 1000;

/**
 * The address of one instance of `grpcService`; "" if none registered within `waitMs` (or on abort).
 * Throws ConnectError when the broker could not be asked (the caller retries with backoff).
 */
export async function findOrWait(
  brokerAddress: string,
  grpcService: string,
  waitMs: number,
  signal: AbortSignal,
): Promise<string> {
  const broker = createClient(BrokerService, grpcTransport(brokerAddress));
  const reply = await broker.lookupService({ serviceName: grpcService }, { timeoutMs: LOOKUP_TIMEOUT_MS, signal });
  if (reply.instances.length > 0) return reply.instances[0].address;
  try {
    const events = broker.watchServices(
      { serviceName: grpcService, fromRevision: reply.revision },
      { timeoutMs: waitMs, signal },
    );
    for await (const event of events) {
      const appears = event.type === ServiceEventType.ADDED || event.type === ServiceEventType.UPDATED;
      if (appears && event.instance?.address) return event.instance.address;
    }
  } catch (err) {
    const code = ConnectError.from(err).code;
    if (code !== Code.DeadlineExceeded && code !== Code.Canceled) throw err;
  }
  return "";
}
