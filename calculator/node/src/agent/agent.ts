// The agent a TypeScript service embeds, at parity with runtime/agent/server.py:
//
//   const agent = new Agent({ services: [CalculatorService], defaultService: "calculator-ts",
//                             routes: (router) => router.service(CalculatorService, impl) });
//   await agent.run();   // serve, READY, register, push health, follow faults; SIGTERM -> stop
//
// Start: bind 127.0.0.1:LAB_PORT (0 = any port) with one listener for gRPC, gRPC-Web and Connect,
// serve grpc.health.v1 and server reflection beside the service, register with the broker (lease +
// keepalive) before printing `READY port=N`, then push health and follow the chaos service.
// Every call but health and reflection needs the lab's token; each unary call of the service is
// timed for the DEGRADED rule and passes the active faults first (delays count in its latency).
// Stop (SIGTERM/SIGINT): drop faults, NOT_SERVING, final health report and deregistration side by
// side (each bounded), drain for STOP_GRACE_MS, exit 0.
import { create, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../gen/grpc/health/v1/health_pb";
import { ServiceInstanceSchema, type ServiceInstance } from "../gen/runtime/v1/broker_pb";
import { HealthState } from "../gen/runtime/v1/health_pb";
import { callContext, JsonLog } from "../jsonlog";
import {
  AUTH_HEADER,
  CORRELATION_HEADER,
  HTTP_METADATA_KEY,
  identityFromEnv,
  LOOPBACK,
  readyLine,
  tokenRefusal,
  type Identity,
} from "../lab";
import { DegradedRule } from "./degraded-rule";
import { CHAOS_GRPC_SERVICE, FaultFollower } from "./fault-follower";
import { GrpcHealth, Serving } from "./grpc-health";
import { HealthReporter } from "./health-reporter";
import { Listener, type Handler } from "./listener";
import { WebOrigins, withCors } from "./cors";
import { addReflection, DescriptorIndex, REFLECTION_SERVICES } from "./reflection";
import { Registration } from "./registration";
import { agentSettingsFromEnv } from "./settings";

const STOP_GRACE_MS = 1000;
const CLOSE_STEP_TIMEOUT_MS = 1000;
const PARENT_CHECK_MS = 1000;
// grpc.health.v1 and reflection are the platform's calls, not the instance's work; the chaos API
// itself is never faulted (so a fault can always be cleared).
const PLATFORM_PREFIX = "/grpc.";
const UNFAULTED_PREFIXES = [PLATFORM_PREFIX, `/${CHAOS_GRPC_SERVICE}/`];

export interface AgentOptions {
  /** The services this instance registers and serves, e.g. [CalculatorService]. */
  services: DescService[];
  /** The service name outside a lab (LAB_SERVICE wins). */
  defaultService: string;
  /** Adds the service implementations (called at start): `(router) => router.service(CalculatorService, impl)`. */
  routes: (router: ConnectRouter) => void;
  role?: string;
  metadata?: Record<string, string>;
}

export class Agent {
  readonly identity: Identity;
  readonly log: JsonLog;
  readonly rule: DegradedRule;
  readonly health: HealthReporter;
  readonly faults: FaultFollower;
  readonly grpcHealth = new GrpcHealth();
  address = "";
  private listener: Listener | null = null;
  private registration: Registration | null = null;
  private state: HealthState = HealthState.STARTING;
  private stopping: Promise<void> | null = null;

  constructor(private readonly options: AgentOptions) {
    // The process's one read of its environment: who it is, and its DEGRADED thresholds.
    this.identity = identityFromEnv(options.defaultService);
    this.log = new JsonLog(this.identity, "runtime.agent");
    this.exitIfOrphaned();
    this.rule = new DegradedRule(agentSettingsFromEnv());
    this.health = new HealthReporter(this.identity, this.identity.brokerAddress, this.rule, this.log.child("runtime.agent.health"));
    this.faults = new FaultFollower(this.identity, this.identity.brokerAddress, this.log.child("runtime.agent.faults"));
  }

  /** The one handler for every protocol: the service's routes, health, reflection, token gate. */
  private listen(): Listener {
    const { options } = this;
    const index = new DescriptorIndex([...options.services, Health, ...REFLECTION_SERVICES]);
    const handler = connectNodeAdapter({
      routes: (router) => {
        options.routes(router);
        router.service(Health, this.grpcHealth.impl());
        addReflection(router, index);
      },
      // First: a call without the lab's token is refused before its body is read, timed or faulted.
      requestGate: (ctx) => {
        const why = tokenRefusal(`/${ctx.service.typeName}/${ctx.method.name}`, ctx.requestHeader.get(AUTH_HEADER));
        if (why) throw new ConnectError(why, Code.Unauthenticated);
      },
      interceptors: [this.callInterceptor()],
    });
    return new Listener(withCors(handler as Handler, new WebOrigins(this.identity.brokerAddress)));
  }

  private exitIfOrphaned(): void {
    // The supervisor arms the parent-death signal, but it may have died before we were forked.
    const pid = this.identity.supervisorPid;
    if (pid && process.ppid !== pid) {
      this.log.write("FATAL", `${this.identity.instance}: the supervisor (pid ${pid}) is gone; not starting`);
      process.exit(1);
    }
  }

  /** Correlation id into the call's context, DEGRADED timing, then the faults, then the handler. */
  private callInterceptor(): Interceptor {
    const { rule } = this;
    const faults = this.faults.set;
    return (next) => async (req) => {
      const procedure = `/${req.service.typeName}/${req.method.name}`;
      const cid = req.header.get(CORRELATION_HEADER) ?? "";
      return callContext.run(cid, async () => {
        if (req.stream || procedure.startsWith(PLATFORM_PREFIX)) return next(req); // streams are not timed
        const started = rule.started();
        try {
          // The common case costs one size check.
          if (faults.faults.size > 0 && !UNFAULTED_PREFIXES.some((p) => procedure.startsWith(p))) {
            await faults.apply(procedure);
          }
          return await next(req);
        } finally {
          rule.finished(started);
        }
      });
    };
  }

  /** This instance as the broker lists it. */
  instance(): ServiceInstance {
    return create(ServiceInstanceSchema, {
      serviceName: this.identity.service,
      instanceId: this.identity.instance,
      address: this.address,
      grpcServices: this.options.services.map((s) => s.typeName),
      role: this.options.role ?? "",
      // Connect answers on the gRPC port itself: the lab lists it as this instance's HTTP port.
      metadata: { runtime: `node ${process.version}`, [HTTP_METADATA_KEY]: this.address, ...this.options.metadata },
      pid: process.pid,
      language: this.identity.language,
      health: this.state,
    });
  }

  /** Bind 127.0.0.1:LAB_PORT (or a free port when it is taken and not strict); exits 1 if it cannot. */
  private async bind(): Promise<number> {
    const wanted = this.identity.port;
    this.listener = this.listen();
    try {
      return await this.listener.listen(LOOPBACK, wanted);
    } catch (err) {
      if (wanted && !this.identity.portStrict) {
        this.log.warn(`port ${wanted} is taken; serving on a free port instead`);
        return this.listener.listen(LOOPBACK, 0);
      }
      const strict = this.identity.portStrict ? " (LAB_PORT_STRICT=1: it must be this port)" : "";
      this.log.write(
        "FATAL",
        `${this.identity.instance}: cannot bind ${LOOPBACK}:${wanted}${strict}: ${(err as Error).message}; ` +
          "the port is in use by another process: stop it or pick another port",
      );
      process.exit(1);
    }
  }

  /** Serve, register with the broker, print READY, push health, follow faults; returns the port. */
  async start(): Promise<number> {
    this.catchSignals(); // before READY: a SIGTERM right after READY must still mean "stop gracefully"
    const port = await this.bind();
    this.address = `${LOOPBACK}:${port}`;
    this.health.address = this.address;
    for (const name of ["", ...this.options.services.map((s) => s.typeName)]) this.grpcHealth.set(name, Serving.SERVING);
    this.state = HealthState.HEALTHY; // we serve from here on; the broker lists us as such
    if (this.identity.brokerAddress) {
      // Register before READY, so "RUNNING" at the supervisor means "discoverable" too.
      this.registration = new Registration(this.identity.brokerAddress, () => this.instance(), this.log.child("runtime.agent.registration"));
      await this.registration.start();
    } else {
      this.log.warn("LAB_BROKER_ADDR is not set: serving without registering");
    }
    process.stdout.write(readyLine(port, port) + "\n"); // gRPC and Connect on the same port
    this.health.start();
    this.health.set(HealthState.HEALTHY, "serving");
    this.faults.start();
    this.log.info(`${this.identity.instance} serving on ${this.address} (gRPC, gRPC-Web and Connect)`, { port });
    return port;
  }

  private catchSignals(): void {
    // `on`, not `once`: a second SIGTERM while draining must not fall back to the default (death).
    process.on("SIGTERM", () => void this.stopAndExit("SIGTERM"));
    process.on("SIGINT", () => void this.stopAndExit("SIGINT"));
    if (this.identity.supervisorPid > 0) {
      // Belt and braces next to the supervisor's parent-death signal: never outlive the daemon.
      setInterval(() => {
        if (process.ppid !== this.identity.supervisorPid) void this.stopAndExit("the supervisor is gone");
      }, PARENT_CHECK_MS).unref();
    }
  }

  /** Drop faults, NOT_SERVING, final health report + deregister (bounded), drain. Safe to call twice. */
  stop(reason: string): Promise<void> {
    this.stopping ??= this.doStop(reason);
    return this.stopping;
  }

  private async doStop(reason: string): Promise<void> {
    this.log.info(`${this.identity.instance} stopping: ${reason}`);
    this.state = HealthState.UNHEALTHY;
    await this.faults.close(); // no injected delay or error while draining
    this.grpcHealth.enterGracefulShutdown();
    // Side by side: the whole stop must fit in the supervisor's stop grace (lab.yaml stop_grace_s).
    await Promise.all([
      this.bounded(this.health.close(reason), "final health report"),
      this.registration ? this.bounded(this.registration.close(reason), "deregistration") : Promise.resolve(),
    ]);
    await this.listener?.close(STOP_GRACE_MS);
  }

  private async bounded(step: Promise<void>, what: string): Promise<void> {
    // A stuck peer must not keep the process from exiting within its stop grace.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.log.warn(`${what} did not finish within ${CLOSE_STEP_TIMEOUT_MS} ms while stopping`);
        resolve();
      }, CLOSE_STEP_TIMEOUT_MS);
    });
    try {
      await Promise.race([step, timeout]);
    } catch (err) {
      this.log.warn(`${what} failed while stopping: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private async stopAndExit(reason: string): Promise<void> {
    try {
      await this.stop(reason);
    } finally {
      process.exit(0);
    }
  }

  /** start(); then serve until SIGTERM/SIGINT, stop gracefully and exit 0. */
  async run(): Promise<void> {
    await this.start();
  }
}
