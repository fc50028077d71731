// The TypeScript CalculatorService server (`node dist/server.js`), a full lab citizen through its
// agent (src/agent): one port for gRPC, gRPC-Web and Connect, READY after registration, health
// pushed (DEGRADED by the same rule as Python), all six fault kinds, live config (settings.ts),
// JSON log lines with correlation ids, graceful stop. Every answer says who computed it (ServedBy);
// every call is logged as `Add(2,3) = 5`. Divide by zero answers INVALID_ARGUMENT "division by zero".
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { Agent } from "./agent/agent";
import { CalculatorService } from "./gen/calculator/v1/calculator_pb";
import type { JsonLog } from "./jsonlog";
import { formatNumber, METHOD, type Identity, type Op } from "./lab";
import { Settings } from "./settings";

const LANGUAGE = "typescript";

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

/** The four operations, answered by one instance within its live settings. */
class Calculator {
  private readonly servedBy;

  constructor(
    identity: Identity,
    private readonly settings: Settings,
    private readonly log: JsonLog,
  ) {
    this.servedBy = { instanceId: identity.instance, language: LANGUAGE, serviceName: identity.service };
  }

  private async answer(op: Op, a: number, b: number) {
    const text = `${METHOD[op]}(${formatNumber(a)},${formatNumber(b)})`;
    const result = await this.settings.admit(() => {
      if (op === "divide" && b === 0) {
        this.log.warn(`${text} rejected: division by zero`, { op, a, b, grpc_code: "INVALID_ARGUMENT" });
        throw new ConnectError("division by zero", Code.InvalidArgument);
      }
      return compute(op, a, b);
    });
    this.log.info(`${text} = ${formatNumber(result)}`, { op, a, b, result });
    return { result, servedBy: this.servedBy };
  }

  impl(): ServiceImpl<typeof CalculatorService> {
    return {
      add: (req) => this.answer("add", req.a, req.b),
      subtract: (req) => this.answer("subtract", req.a, req.b),
      multiply: (req) => this.answer("multiply", req.a, req.b),
      divide: (req) => this.answer("divide", req.a, req.b),
    };
  }
}

async function main(): Promise<void> {
  const agent: Agent = new Agent({
    services: [CalculatorService],
    defaultService: "calculator-ts",
    routes: (router) => router.service(CalculatorService, calculator.impl()),
  });
  // The live config's degraded_p99_ms moves the DEGRADED rule's threshold, as in Python.
  const settings = new Settings(agent.identity.instance, agent.identity.brokerAddress, agent.log, (ms) => {
    agent.rule.p99Ms = ms;
  });
  const calculator = new Calculator(agent.identity, settings, agent.log.child("calculator.server"));
  settings.start(); // follows config namespace "calculator"; defaults while there is none
  await agent.run();
}

main().catch((err) => {
  const message = `server failed: ${(err as Error).stack ?? err}`;
  process.stdout.write(JSON.stringify({ ts: Date.now(), level: "FATAL", message }) + "\n");
  process.exit(1);
});
