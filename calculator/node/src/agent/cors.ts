// CORS only for the lab's own web page (runtime/connect/access.py, the same rule and headers): the
// page is served from another loopback port, so a browser asks first (preflight) whether its origin
// may send `authorization`. Yes only for the origins of the lab's `web` instances, looked up at the
// broker (their Connect address in metadata "http") and trusted for ORIGINS_TTL_MS; any other
// origin gets no CORS headers. gRPC clients send no Origin and pass straight through.
import { createClient } from "@connectrpc/connect";
import { BrokerService } from "../gen/runtime/v1/broker_pb";
import { HTTP_METADATA_KEY } from "../lab";
import { grpcTransport } from "../transport";
import type { Handler } from "./listener";

const ALLOWED_HEADERS =
  "authorization, content-type, connect-protocol-version, connect-timeout-ms, " +
  "connect-content-encoding, connect-accept-encoding, x-grpc-web, x-user-agent, grpc-timeout, " +
  "x-correlation-id";
const EXPOSED_HEADERS = "grpc-status, grpc-message, grpc-status-details-bin, x-test-id, x-correlation-id";
const PREFLIGHT_MAX_AGE_S = 600;
const ORIGINS_TTL_MS = 2000;
const LOOKUP_TIMEOUT_MS = 1000;
export const WEB_SERVICE = "web"; // runtime.identity.WEB_SERVICE

/** The lab's web origins, asked of the broker at most once per ORIGINS_TTL_MS. */
export class WebOrigins {
  private origins = new Set<string>();
  private fetchedAt = -Infinity;

  constructor(private readonly brokerAddress: string) {}

  async allows(origin: string): Promise<boolean> {
    if (!this.brokerAddress) return false;
    const now = performance.now();
    if (now - this.fetchedAt >= ORIGINS_TTL_MS) {
      this.fetchedAt = now;
      this.origins = await this.lookup().catch(() => new Set<string>()); // no answer: no origin
    }
    return this.origins.has(origin);
  }

  private async lookup(): Promise<Set<string>> {
    const broker = createClient(BrokerService, grpcTransport(this.brokerAddress));
    const reply = await broker.lookupService(
      { serviceName: WEB_SERVICE, includeUnhealthy: true },
      { timeoutMs: LOOKUP_TIMEOUT_MS },
    );
    const out = new Set<string>();
    for (const instance of reply.instances) {
      const port = (instance.metadata[HTTP_METADATA_KEY] ?? "").split(":").pop() ?? "";
      if (/^\d+$/.test(port)) for (const host of ["127.0.0.1", "localhost"]) out.add(`http://${host}:${port}`);
    }
    return out;
  }
}

/** `handler` behind the CORS rule: preflights answered here, allowed origins get their headers. */
export function withCors(handler: Handler, origins: WebOrigins): Handler {
  return (req, res) => {
    const origin = req.headers.origin;
    if (typeof origin !== "string") return handler(req, res);
    void origins.allows(origin).then((allowed) => {
      if (allowed) {
        res.setHeader("access-control-allow-origin", origin);
        res.setHeader("access-control-expose-headers", EXPOSED_HEADERS);
        res.setHeader("vary", "origin");
      }
      if (req.method !== "OPTIONS") return handler(req, res);
      if (!allowed) {
        res.statusCode = 403;
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ code: "permission_denied", message: "origin not allowed" }));
        return;
      }
      res.statusCode = 204;
      res.setHeader("access-control-allow-methods", "POST, GET");
      res.setHeader("access-control-allow-headers", ALLOWED_HEADERS);
      res.setHeader("access-control-max-age", String(PREFLIGHT_MAX_AGE_S));
      res.end();
    });
  };
}
