// gRPC server reflection (v1alpha, and v1 with the same messages) over the generated descriptors:
// list_services, file_by_filename and file_containing_symbol, each file answered with every file
// it imports (as grpc-go and grpcio do), so grpcurl and the load generator
// (runtime/services/load/targets.py reflect_target) learn this server's methods without stubs.
import { toBinary, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb";

/** The request shape both versions share (the messages are the same, field for field). */
interface Request {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
}

export const REFLECTION_SERVICES: readonly DescService[] = [v1alpha.ServerReflection, v1.ServerReflection];

/** Which file defines which symbol, for the services this server serves. */
export class DescriptorIndex {
  private readonly files = new Map<string, DescFile>(); // "calculator/v1/calculator.proto" -> file
  private readonly symbols = new Map<string, DescFile>();

  constructor(private readonly services: readonly DescService[]) {
    for (const service of services) this.addFile(service.file);
  }

  private addFile(file: DescFile): void {
    if (this.files.has(file.proto.name)) return;
    this.files.set(file.proto.name, file);
    for (const dep of file.dependencies) this.addFile(dep);
    for (const service of file.services) {
      this.symbols.set(service.typeName, file);
      for (const method of service.methods) this.symbols.set(`${service.typeName}.${method.name}`, file);
    }
    const addMessage = (m: DescMessage) => {
      this.symbols.set(m.typeName, file);
      for (const e of m.nestedEnums) this.symbols.set(e.typeName, file);
      for (const n of m.nestedMessages) addMessage(n);
    };
    for (const m of file.messages) addMessage(m);
    for (const e of file.enums) this.symbols.set(e.typeName, file);
  }

  serviceNames(): string[] {
    return this.services.map((s) => s.typeName);
  }

  /** `file` and everything it imports, serialized, the file itself first. */
  withImports(file: DescFile): Uint8Array[] {
    const out: DescFile[] = [];
    const visit = (f: DescFile) => {
      if (out.includes(f)) return;
      out.push(f);
      f.dependencies.forEach(visit);
    };
    visit(file);
    return out.map((f) => toBinary(FileDescriptorProtoSchema, f.proto));
  }

  byFilename(name: string): DescFile | undefined {
    return this.files.get(name);
  }

  bySymbol(symbol: string): DescFile | undefined {
    return this.symbols.get(symbol.replace(/^\./, ""));
  }
}

function answer(index: DescriptorIndex, req: Request) {
  const base = { validHost: req.host, originalRequest: { host: req.host, messageRequest: req.messageRequest } };
  const notFound = (what: string) => ({
    ...base,
    messageResponse: { case: "errorResponse" as const, value: { errorCode: Code.NotFound, errorMessage: what } },
  });
  const files = (file: DescFile | undefined, what: string) =>
    file
      ? { ...base, messageResponse: { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: index.withImports(file) } } }
      : notFound(what);
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return {
        ...base,
        messageResponse: { case: "listServicesResponse" as const, value: { service: index.serviceNames().map((name) => ({ name })) } },
      };
    case "fileByFilename":
      return files(index.byFilename(r.value), `file not found: ${r.value.slice(0, 200)}`);
    case "fileContainingSymbol":
      return files(index.bySymbol(r.value), `symbol not found: ${r.value.slice(0, 200)}`);
    case "fileContainingExtension":
      return notFound(`extension not found: ${r.value.containingType.slice(0, 200)} ${r.value.extensionNumber}`);
    case "allExtensionNumbersOfType":
      return notFound(`type not found or has no extensions: ${r.value.slice(0, 200)}`);
    default:
      return {
        ...base,
        messageResponse: { case: "errorResponse" as const, value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" } },
      };
  }
}

export function reflectionV1alpha(index: DescriptorIndex): ServiceImpl<typeof v1alpha.ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) yield answer(index, req);
    },
  };
}

export function reflectionV1(index: DescriptorIndex): ServiceImpl<typeof v1.ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) yield answer(index, req);
    },
  };
}

/** Serve both reflection versions on `router`. */
export function addReflection(router: ConnectRouter, index: DescriptorIndex): void {
  router.service(v1alpha.ServerReflection, reflectionV1alpha(index));
  router.service(v1.ServerReflection, reflectionV1(index));
}
