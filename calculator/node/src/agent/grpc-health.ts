// grpc.health.v1 (Check, Watch) over the generated descriptors: what the supervisor's readiness
// check, the health service's liveness probes, grpc_health_probe and grpcurl call. The status of
// "" (the whole server) and of each served service; a graceful stop turns every one NOT_SERVING.
import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../gen/grpc/health/v1/health_pb";
import { Wakeup } from "./wakeup";

export { Serving };

export class GrpcHealth {
  private readonly statuses = new Map<string, Serving>();
  private changed = new Wakeup();

  /** Record `status` for `service` ("" is the server as a whole); Watch streams see it at once. */
  set(service: string, status: Serving): void {
    this.statuses.set(service, status);
    const changed = this.changed;
    this.changed = new Wakeup();
    changed.set();
  }

  /** NOT_SERVING for everything: the first step of a graceful stop. */
  enterGracefulShutdown(): void {
    for (const service of [...this.statuses.keys()]) this.set(service, Serving.NOT_SERVING);
  }

  private async *watch(service: string, signal: AbortSignal): AsyncGenerator<{ status: Serving }> {
    let last: Serving | undefined;
    for (;;) {
      const changed = this.changed;
      const status = this.statuses.get(service) ?? Serving.SERVICE_UNKNOWN;
      if (status !== last) {
        last = status;
        yield { status };
      }
      if (!(await changed.wait(Infinity, signal))) return;
    }
  }

  impl(): ServiceImpl<typeof Health> {
    return {
      check: (req) => {
        const status = this.statuses.get(req.service);
        if (status === undefined) throw new ConnectError(`unknown service ${JSON.stringify(req.service.slice(0, 200))}`, Code.NotFound);
        return { status };
      },
      watch: (req, ctx) => this.watch(req.service, ctx.signal),
    };
  }
}
