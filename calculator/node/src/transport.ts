// Outgoing gRPC (HTTP/2) to other lab services: one Connect transport per address, every call
// carrying the lab's token and the current correlation id (runtime/client/auth.py, correlation.py).
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { callContext } from "./jsonlog";
import { AUTH_HEADER, AUTH_SCHEME, CORRELATION_HEADER, labToken } from "./lab";

let cachedToken: string | undefined;

/** Adds `authorization: Bearer <token>` (when in a lab) and `x-correlation-id` (when known). */
export function labHeaders(correlationId?: string): Interceptor {
  return (next) => async (req) => {
    cachedToken ??= labToken();
    if (cachedToken && !req.header.has(AUTH_HEADER)) req.header.set(AUTH_HEADER, `${AUTH_SCHEME} ${cachedToken}`);
    const cid = correlationId ?? callContext.getStore();
    if (cid && !req.header.has(CORRELATION_HEADER)) req.header.set(CORRELATION_HEADER, cid);
    return next(req);
  };
}

// The agent's transports, one per address: its lookups, registration, health pushes, config and
// fault streams share one HTTP/2 connection per peer (they used to open one each, and every
// lookup a new one) instead of a handshake each. Bounded: peers that moved leave the oldest out.
const SHARED_MAX = 16;
const shared = new Map<string, Transport>();

/**
 * A gRPC transport to `127.0.0.1:PORT` (h2c). Without a correlation id it is the process's shared
 * transport for that address; with one (a job's calls) it is a new transport carrying that id.
 */
export function grpcTransport(address: string, correlationId?: string): Transport {
  if (correlationId !== undefined) return newTransport(address, correlationId);
  let transport = shared.get(address);
  if (!transport) {
    if (shared.size >= SHARED_MAX) shared.delete(shared.keys().next().value as string);
    transport = newTransport(address);
    shared.set(address, transport);
  }
  return transport;
}

function newTransport(address: string, correlationId?: string): Transport {
  return createGrpcTransport({
    baseUrl: `http://${address}`,
    interceptors: [labHeaders(correlationId)],
    // Notice a dead peer of a long stream (KeepAlive, WatchFaults) without waiting on TCP.
    pingIntervalMs: 5_000,
    pingTimeoutMs: 5_000,
    idleConnectionTimeoutMs: 60_000,
  });
}
