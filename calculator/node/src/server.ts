// The TypeScript CalculatorService server: binds 127.0.0.1:LAB_PORT, prints `READY port=N`,
// serves calculator.v1 and grpc.health.v1, registers with the broker under a lease kept alive by
// a KeepAlive stream (re-registering whenever that stream breaks), logs one JSON line per call
// with the caller's correlation id, and on SIGTERM deregisters and exits 0. Every calculator call
// must carry the lab's token (`authorization: Bearer <token>`); health and reflection stay open.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, protoPath as healthProtoPath } from "grpc-health-check";
import {
  CALCULATOR_SERVICE,
  CORRELATION_HEADER,
  JsonLog,
  Op,
  METHOD,
  authMetadata,
  calculatorDefinition,
  deadlineIn,
  formatNumber,
  identityFromEnv,
  loadBroker,
  loadCalculator,
  statusName,
  tokenRefusal,
} from "./lab";
import type { BrokerServiceClient } from "./generated/runtime/v1/BrokerService";
import type { KeepAliveRequest } from "./generated/runtime/v1/KeepAliveRequest";
import type { KeepAliveResponse__Output } from "./generated/runtime/v1/KeepAliveResponse";
import type { CalculatorServiceHandlers } from "./generated/calculator/v1/CalculatorService";

const LANGUAGE = "typescript";
const LEASE_TTL_MS = 5000;
const REGISTER_RETRY_MS = 300;
const FIRST_REGISTER_TIMEOUT_MS = 3000; // READY waits this long for the first registration at most
const BROKER_RPC_S = 2;
const STOP_GRACE_MS = 2000;
const PARENT_CHECK_MS = 1000;

const me = identityFromEnv("calculator-ts");
const log = new JsonLog(me);
const calculatorDef = calculatorDefinition();
const calculatorProto = loadCalculator(calculatorDef);
const brokerProto = loadBroker();

interface Operands {
  a: number;
  b: number;
}

function correlationOf(call: grpc.ServerUnaryCall<unknown, unknown>): string {
  const values = call.metadata.get(CORRELATION_HEADER);
  return values.length > 0 ? String(values[0]) : "";
}

function compute(op: Op, a: number, b: number): number {
  switch (op) {
    case "add":
      return a + b;
    case "subtract":
      return a - b;
    case "multiply":
      return a * b;
    case "divide":
      return a / b;
  }
}

/** One unary handler per operation; they differ only in the arithmetic. */
function handler(op: Op) {
  return (
    call: grpc.ServerUnaryCall<Operands, unknown>,
    callback: grpc.sendUnaryData<{ result: number; served_by: object }>,
  ): void => {
    const refused = tokenRefusal(call.metadata);
    if (refused) {
      callback(refused);
      return;
    }
    const cid = correlationOf(call as grpc.ServerUnaryCall<unknown, unknown>);
    const { a, b } = call.request;
    const expr = `${METHOD[op]}(${formatNumber(a)},${formatNumber(b)})`;
    if (op === "divide" && b === 0) {
      log.write("WARN", `${expr} rejected: division by zero`, cid, { op, a, b, grpc_code: "INVALID_ARGUMENT" });
      callback({ code: grpc.status.INVALID_ARGUMENT, details: "division by zero" });
      return;
    }
    const result = compute(op, a, b);
    log.write("INFO", `${expr} = ${formatNumber(result)}`, cid, { op, a, b, result });
    callback(null, {
      result,
      served_by: { instance_id: me.instance, language: LANGUAGE, service_name: me.service },
    });
  };
}

/** Keeps this instance registered: Register, then a KeepAlive stream; any break re-registers. */
class Registration {
  private readonly broker: BrokerServiceClient;
  private leaseId = "";
  private stream: grpc.ClientDuplexStream<KeepAliveRequest, KeepAliveResponse__Output> | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private stopped = false;
  private firstRegistered: (() => void) | null = null;

  constructor(
    private readonly brokerAddress: string,
    private readonly address: string,
  ) {
    this.broker = new brokerProto.runtime.v1.BrokerService(brokerAddress, grpc.credentials.createInsecure());
  }

  /** Register; resolves once the broker accepted us, or after FIRST_REGISTER_TIMEOUT_MS (retries go on). */
  start(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        log.write("WARN", `the broker at ${this.brokerAddress} did not accept the registration yet; still trying`, "");
        resolve();
      }, FIRST_REGISTER_TIMEOUT_MS);
      this.firstRegistered = () => {
        clearTimeout(timer);
        resolve();
      };
      this.register();
    });
  }

  private later(reason: string): void {
    this.dropStream();
    if (this.stopped || this.retry) return;
    log.write("WARN", `re-registering with the broker at ${this.brokerAddress}: ${reason}`, "");
    this.retry = setTimeout(() => {
      this.retry = null;
      this.register();
    }, REGISTER_RETRY_MS);
  }

  private register(): void {
    if (this.stopped) return;
    const instance = {
      service_name: me.service,
      instance_id: me.instance,
      address: this.address,
      grpc_services: [CALCULATOR_SERVICE],
      pid: process.pid,
      language: LANGUAGE,
      metadata: { runtime: `node ${process.version}` },
    };
    this.broker.Register({ instance, ttl_ms: LEASE_TTL_MS }, authMetadata(), { deadline: deadlineIn(BROKER_RPC_S) }, (err, res) => {
      if (this.stopped) return;
      if (err || !res) {
        this.later(`Register failed: ${err ? `${statusName(err.code)}: ${err.details}` : "no response"}`);
        return;
      }
      this.leaseId = res.lease_id;
      log.write("INFO", `registered ${me.instance} at ${this.address} with the broker (lease ${res.lease_id})`, "", {
        lease_id: res.lease_id,
        ttl_ms: res.ttl_ms,
      });
      this.keepAlive(res.ttl_ms || LEASE_TTL_MS);
      this.firstRegistered?.();
      this.firstRegistered = null;
    });
  }

  private keepAlive(ttlMs: number): void {
    const stream = this.broker.KeepAlive(authMetadata());
    this.stream = stream;
    const leaseId = this.leaseId;
    stream.on("data", () => {
      /* the lease was renewed */
    });
    stream.on("error", (err: grpc.ServiceError) => {
      if (this.stream === stream) this.later(`KeepAlive ${statusName(err.code)}: ${err.details}`);
    });
    stream.on("end", () => {
      if (this.stream === stream) this.later("KeepAlive stream ended");
    });
    const send = () => {
      if (this.stream === stream) stream.write({ lease_id: leaseId });
    };
    send();
    this.ticker = setInterval(send, Math.max(100, Math.floor(ttlMs / 3)));
  }

  private dropStream(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    const stream = this.stream;
    this.stream = null;
    if (stream) stream.cancel();
  }

  /** Stop renewing and deregister (bounded by a deadline). */
  async stop(reason: string): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.dropStream();
    if (this.leaseId) {
      await new Promise<void>((resolve) => {
        this.broker.Deregister(
          { instance_id: me.instance, lease_id: this.leaseId, reason },
          authMetadata(),
          { deadline: deadlineIn(1) },
          () => resolve(),
        );
      });
    }
    this.broker.close();
  }
}

function bind(server: grpc.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
}

async function main(): Promise<void> {
  const server = new grpc.Server();
  const handlers: CalculatorServiceHandlers = {
    Add: handler("add"),
    Subtract: handler("subtract"),
    Multiply: handler("multiply"),
    Divide: handler("divide"),
  };
  server.addService(calculatorProto.calculator.v1.CalculatorService.service, handlers);
  const health = new HealthImplementation({ "": "SERVING", [CALCULATOR_SERVICE]: "SERVING" });
  health.addToServer(server);
  // Server reflection, so grpcurl / grpc_health_probe work against this server as against any other.
  const healthDef = protoLoader.loadSync(healthProtoPath, { keepCase: true });
  new ReflectionService({ ...calculatorDef, ...healthDef }).addToServer(server);

  let port: number;
  try {
    port = await bind(server, me.port);
  } catch (err) {
    if (me.port === 0 || me.portStrict) {
      log.write("FATAL", `cannot bind 127.0.0.1:${me.port}: ${(err as Error).message}`, "");
      process.exit(1);
    }
    port = await bind(server, 0); // the wanted port is taken and not required: any port will do
  }
  // Register before READY, so "RUNNING" at the supervisor means "discoverable" too.
  const registration = me.brokerAddress ? new Registration(me.brokerAddress, `127.0.0.1:${port}`) : null;
  if (registration) await registration.start();
  else log.write("WARN", "LAB_BROKER_ADDR is not set: serving without registering", "");
  process.stdout.write(`READY port=${port}\n`);
  log.write("INFO", `${me.instance} serving ${CALCULATOR_SERVICE} on 127.0.0.1:${port}`, "", { port });

  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.write("INFO", `stopping (${why}): NOT_SERVING, deregister, drain`, "");
    health.setStatus("", "NOT_SERVING");
    health.setStatus(CALCULATOR_SERVICE, "NOT_SERVING");
    if (registration) await registration.stop(why);
    const force = setTimeout(() => {
      server.forceShutdown(); // calls still running after the grace period are cut
      process.exit(0);
    }, STOP_GRACE_MS);
    server.tryShutdown(() => {
      clearTimeout(force);
      process.exit(0);
    });
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  if (me.supervisorPid > 0) {
    // Belt and braces next to the supervisor's parent-death signal: never outlive the daemon.
    setInterval(() => {
      if (process.ppid !== me.supervisorPid) void stop("supervisor gone");
    }, PARENT_CHECK_MS).unref();
  }
}

main().catch((err) => {
  log.write("FATAL", `server failed: ${(err as Error).stack ?? err}`, "");
  process.exit(1);
});
