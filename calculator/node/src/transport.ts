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

/** A gRPC transport to `127.0.0.1:PORT` (h2c). */
export function grpcTransport(address: string, correlationId?: string): Transport {
  return createGrpcTransport({
    baseUrl: `http://${address}`,
    interceptors: [labHeaders(correlationId)],
    // Notice a dead peer of a long stream (KeepAlive, WatchFaults) without waiting on TCP.
    pingIntervalMs: 5_000,
    pingTimeoutMs: 5_000,
    idleConnectionTimeoutMs: 60_000,
  });
}
