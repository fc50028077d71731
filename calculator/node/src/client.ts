// The TypeScript calculator client, a one-shot job:
//   node dist/client.js <add|subtract|multiply|divide> <a> <b> [--correlation-id ID] [--timeout-s S]
// It knows only the broker (LAB_BROKER_ADDR): it looks up calculator.v1.CalculatorService, picks
// an instance, calls it over gRPC (Connect for Node's gRPC transport) with x-correlation-id, the
// lab's token (LAB_TOKEN, else LAB_DIR/token) and a deadline, and writes JSON log lines.
// Exit codes: 0 result, 1 the call or the lookup failed, 2 bad usage / no broker address.
import { ConnectError, createClient } from "@connectrpc/connect";
import { CalculatorService } from "./gen/calculator/v1/calculator_pb";
import { BrokerService, type ServiceInstance } from "./gen/runtime/v1/broker_pb";
import { JsonLog } from "./jsonlog";
import {
  CALCULATOR_SERVICE,
  CORRELATION_ENV,
  METHOD,
  OPS,
  type Op,
  formatNumber,
  identityFromEnv,
  newCorrelationId,
  statusName,
} from "./lab";
import { grpcTransport } from "./transport";

const LANGUAGE = "typescript";
const DEFAULT_TIMEOUT_S = 5;
const USAGE = "usage: client.js <add|subtract|multiply|divide> <a> <b> [--correlation-id ID] [--timeout-s S]";

interface Args {
  op: Op;
  a: number;
  b: number;
  correlationId: string;
  timeoutS: number;
}

class UsageError extends Error {}

function parseArgs(argv: string[]): Args {
  const positional: string[] = [];
  let correlationId = "";
  let timeoutS = DEFAULT_TIMEOUT_S;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--correlation-id" || arg === "--timeout-s") {
      const value = argv[++i];
      if (value === undefined) throw new UsageError(`${arg} needs a value`);
      if (arg === "--correlation-id") correlationId = value;
      else timeoutS = Number(value);
    } else if (arg.startsWith("--correlation-id=")) {
      correlationId = arg.slice("--correlation-id=".length);
    } else if (arg.startsWith("--timeout-s=")) {
      timeoutS = Number(arg.slice("--timeout-s=".length));
    } else {
      positional.push(arg);
    }
  }
  if (positional.length !== 3) throw new UsageError(`expected <op> <a> <b>, got ${positional.length} arguments`);
  const [opText, aText, bText] = positional;
  if (!(OPS as readonly string[]).includes(opText)) throw new UsageError(`unknown operation ${JSON.stringify(opText)}`);
  const a = Number(aText);
  const b = Number(bText);
  if (aText.trim() === "" || bText.trim() === "" || !Number.isFinite(a) || !Number.isFinite(b)) {
    throw new UsageError(`operands must be numbers, got ${JSON.stringify(aText)} and ${JSON.stringify(bText)}`);
  }
  if (!(timeoutS > 0)) throw new UsageError("--timeout-s must be a positive number of seconds");
  // LAB_CORRELATION_ID: the one environment key a RunJob caller may set (runtime/identity.py).
  const cid = correlationId || process.env[CORRELATION_ENV] || newCorrelationId();
  return { op: opText as Op, a, b, correlationId: cid, timeoutS };
}

class CallFailed extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function lookup(brokerAddress: string, args: Args): Promise<ServiceInstance[]> {
  const broker = createClient(BrokerService, grpcTransport(brokerAddress, args.correlationId));
  try {
    const res = await broker.lookupService({ serviceName: CALCULATOR_SERVICE }, { timeoutMs: args.timeoutS * 1000 });
    return res.instances;
  } catch (err) {
    const e = ConnectError.from(err);
    throw new CallFailed(statusName(e.code), `broker at ${brokerAddress} unreachable or failed: ${e.rawMessage}`);
  }
}

async function call(instance: ServiceInstance, args: Args) {
  const calculator = createClient(CalculatorService, grpcTransport(instance.address, args.correlationId));
  try {
    // The four methods share one shape (a, b) -> (result, served_by).
    return await calculator[args.op]({ a: args.a, b: args.b }, { timeoutMs: args.timeoutS * 1000 });
  } catch (err) {
    const e = ConnectError.from(err);
    throw new CallFailed(statusName(e.code), e.rawMessage);
  }
}

async function main(): Promise<number> {
  const me = identityFromEnv(`client-${LANGUAGE}`);
  const log = new JsonLog(me);
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    log.write("ERROR", `${(err as Error).message}; ${USAGE}`, "");
    return 2;
  }
  const cid = args.correlationId;
  if (!me.brokerAddress) {
    log.write("ERROR", "LAB_BROKER_ADDR is not set: the client finds servers only through the broker", cid);
    return 2;
  }
  const expr = `${METHOD[args.op]}(${formatNumber(args.a)},${formatNumber(args.b)})`;
  log.write("INFO", `Calling ${expr}`, cid, { op: args.op, a: args.a, b: args.b, broker: me.brokerAddress });
  const started = performance.now();
  try {
    const instances = await lookup(me.brokerAddress, args);
    if (instances.length === 0) {
      throw new CallFailed("NOT_FOUND", `no instances of ${CALCULATOR_SERVICE} registered with the broker at ${me.brokerAddress}`);
    }
    const chosen = instances[Math.floor(Math.random() * instances.length)];
    log.write("DEBUG", `picked ${chosen.instanceId} at ${chosen.address} of ${instances.length}`, cid, {
      instances: instances.length,
    });
    const res = await call(chosen, args);
    const elapsedMs = Math.round((performance.now() - started) * 1000) / 1000;
    const servedBy = {
      instance_id: res.servedBy?.instanceId ?? "",
      language: res.servedBy?.language ?? "",
      service_name: res.servedBy?.serviceName ?? "",
    };
    log.write("INFO", `Result: ${formatNumber(res.result)}`, cid, { result: res.result, served_by: servedBy, elapsed_ms: elapsedMs });
    log.write("INFO", `${LANGUAGE} client called ${servedBy.language} server`, cid, {
      client_language: LANGUAGE,
      server_language: servedBy.language,
      server_instance: servedBy.instance_id,
    });
    return 0;
  } catch (err) {
    if (err instanceof CallFailed) {
      const message = err.message.startsWith("no instances") ? err.message : `${err.code}: ${err.message}`;
      log.write("ERROR", message, cid, { grpc_code: err.code });
      return 1;
    }
    log.write("ERROR", `client failed: ${(err as Error).message}`, cid, { grpc_code: "UNKNOWN" });
    return 1;
  }
}

// Exit at once: the HTTP/2 sessions the transports keep open must not hold a one-shot job alive.
main().then((code) => process.exit(code));
