// The C++ calculator client, a one-shot job:
//
//   calculator-client <add|subtract|multiply|divide> <a> <b> [--correlation-id ID] [--timeout-s S]
//
// It knows only the broker (LAB_BROKER_ADDR): it looks up calculator.v1.CalculatorService, picks
// an instance, calls it with x-correlation-id and a deadline, and writes JSON log lines on stdout.
// Every call carries the lab's token (authorization: Bearer <token>, from LAB_TOKEN or LAB_DIR/token).
// Exit codes: 0 result, 1 the lookup or the call failed, 2 bad usage / no broker address.
#include <grpcpp/grpcpp.h>

#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include "calculator/v1/calculator.grpc.pb.h"
#include "runtime/v1/broker.grpc.pb.h"

namespace {

constexpr const char* kLanguage = "cpp";
constexpr const char* kCalculatorService = "calculator.v1.CalculatorService";
constexpr const char* kCorrelationHeader = "x-correlation-id";
// Access (runtime/identity.py "Access"): the lab's token goes with every call.
constexpr const char* kAuthHeader = "authorization";
constexpr double kDefaultTimeoutS = 5.0;
constexpr const char* kUsage =
    "usage: calculator-client <add|subtract|multiply|divide> <a> <b> [--correlation-id ID] [--timeout-s S]";

std::string Env(const char* key, const std::string& fallback) {
  const char* value = std::getenv(key);
  return value && *value ? std::string(value) : fallback;
}

// The lab's token: LAB_TOKEN (the supervisor gives it to jobs), else LAB_DIR/token; "" outside a lab.
// Not readable: send none, and the service answers UNAUTHENTICATED saying where the token is.
std::string LabToken() {
  std::string token = Env("LAB_TOKEN", "");
  if (!token.empty()) return token;
  const std::string dir = Env("LAB_DIR", "");
  if (dir.empty()) return "";
  std::ifstream file(dir + "/token");
  std::getline(file, token);
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  return token;
}

bool Integral(double x) { return std::isfinite(x) && std::floor(x) == x && std::fabs(x) < 9e15; }

// "5", not "5.0"; otherwise the shortest text that reads back as the same double.
std::string Num(double x) {
  if (Integral(x)) return std::to_string(static_cast<long long>(x));
  if (!std::isfinite(x)) return "null";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, res.ptr);
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", c);
          out += esc;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Extra keys of a log line, already JSON-encoded values, in order.
using Fields = std::vector<std::pair<std::string, std::string>>;

class Log {
 public:
  Log()
      : service_(Env("LAB_SERVICE", std::string("client-") + kLanguage)),
        instance_(Env("LAB_INSTANCE", service_ + "-" + std::to_string(getpid()))) {}

  // One JSON object per line: ts, level, message, correlation_id, service, instance, extras.
  void Write(const char* level, const std::string& message, const std::string& cid, const Fields& extra = {}) const {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    std::string line = "{\"ts\":" + std::to_string(ms) + ",\"level\":" + Quote(level) +
                       ",\"message\":" + Quote(message) + ",\"correlation_id\":" + Quote(cid) +
                       ",\"service\":" + Quote(service_) + ",\"instance\":" + Quote(instance_);
    for (const auto& [key, value] : extra) line += "," + Quote(key) + ":" + value;
    line += "}\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
  }

 private:
  std::string service_;
  std::string instance_;
};

const char* CodeName(grpc::StatusCode code) {
  static const char* const names[] = {
      "OK",           "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",  "DEADLINE_EXCEEDED",
      "NOT_FOUND",    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",      "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",          "UNAVAILABLE",
      "DATA_LOSS",    "UNAUTHENTICATED"};
  int i = static_cast<int>(code);
  return i >= 0 && i <= 16 ? names[i] : "UNKNOWN";
}

struct Args {
  std::string op;
  double a = 0, b = 0;
  std::string correlation_id;
  double timeout_s = kDefaultTimeoutS;
};

bool ParseDouble(const std::string& text, double* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return end && *end == '\0' && std::isfinite(*out);
}

std::string NewCorrelationId() {
  std::random_device rd;
  char buf[16];
  std::snprintf(buf, sizeof buf, "req-%08x", static_cast<unsigned>(rd()));
  return buf;
}

// Returns "" on success, else what is wrong with the command line.
std::string ParseArgs(int argc, char** argv, Args* args) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string key = arg, value;
    bool inline_value = false;
    if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos) {
      key = arg.substr(0, arg.find('='));
      value = arg.substr(arg.find('=') + 1);
      inline_value = true;
    }
    if (key == "--correlation-id" || key == "--timeout-s") {
      if (!inline_value) {
        if (i + 1 >= argc) return key + " needs a value";
        value = argv[++i];
      }
      if (key == "--correlation-id") {
        args->correlation_id = value;
      } else if (!ParseDouble(value, &args->timeout_s) || args->timeout_s <= 0) {
        return "--timeout-s must be a positive number of seconds";
      }
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 3) return "expected <op> <a> <b>, got " + std::to_string(positional.size()) + " arguments";
  args->op = positional[0];
  if (args->op != "add" && args->op != "subtract" && args->op != "multiply" && args->op != "divide")
    return "unknown operation " + Quote(args->op);
  if (!ParseDouble(positional[1], &args->a) || !ParseDouble(positional[2], &args->b))
    return "operands must be numbers, got " + Quote(positional[1]) + " and " + Quote(positional[2]);
  // LAB_CORRELATION_ID: the one environment key a RunJob caller may set (runtime/identity.py).
  if (args->correlation_id.empty()) args->correlation_id = Env("LAB_CORRELATION_ID", "");
  if (args->correlation_id.empty()) args->correlation_id = NewCorrelationId();
  return "";
}

std::string Method(const std::string& op) {
  if (op == "add") return "Add";
  if (op == "subtract") return "Subtract";
  if (op == "multiply") return "Multiply";
  return "Divide";
}

void Prepare(grpc::ClientContext* ctx, const Args& args) {
  static const std::string token = LabToken();
  if (!token.empty()) ctx->AddMetadata(kAuthHeader, "Bearer " + token);
  ctx->AddMetadata(kCorrelationHeader, args.correlation_id);
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::microseconds(static_cast<int64_t>(args.timeout_s * 1e6)));
}

// The four RPCs share one shape: (a, b) -> (result, served_by).
template <typename Request, typename Response, typename Call>
grpc::Status Invoke(Call call, const Args& args, double* result, calculator::v1::ServedBy* served_by) {
  grpc::ClientContext ctx;
  Prepare(&ctx, args);
  Request req;
  req.set_a(args.a);
  req.set_b(args.b);
  Response resp;
  grpc::Status status = call(&ctx, req, &resp);
  if (status.ok()) {
    *result = resp.result();
    *served_by = resp.served_by();
  }
  return status;
}

int Fail(const Log& log, const std::string& cid, const std::string& code, const std::string& message) {
  log.Write("ERROR", message, cid, {{"grpc_code", Quote(code)}});
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Log log;
  Args args;
  std::string problem = ParseArgs(argc, argv, &args);
  if (!problem.empty()) {
    log.Write("ERROR", problem + "; " + kUsage, "");
    return 2;
  }
  const std::string& cid = args.correlation_id;
  const std::string broker = Env("LAB_BROKER_ADDR", "");
  if (broker.empty()) {
    log.Write("ERROR", "LAB_BROKER_ADDR is not set: the client finds servers only through the broker", cid);
    return 2;
  }
  log.Write("INFO", "Calling " + Method(args.op) + "(" + Num(args.a) + "," + Num(args.b) + ")", cid,
            {{"op", Quote(args.op)}, {"a", Num(args.a)}, {"b", Num(args.b)}, {"broker", Quote(broker)}});
  auto started = std::chrono::steady_clock::now();

  auto broker_stub = runtime::v1::BrokerService::NewStub(grpc::CreateChannel(broker, grpc::InsecureChannelCredentials()));
  runtime::v1::LookupServiceRequest lookup;
  lookup.set_service_name(kCalculatorService);
  runtime::v1::LookupServiceResponse found;
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, args);
    grpc::Status status = broker_stub->LookupService(&ctx, lookup, &found);
    if (!status.ok()) {
      std::string code = CodeName(status.error_code());
      return Fail(log, cid, code, code + ": broker at " + broker + " unreachable or failed: " + status.error_message());
    }
  }
  if (found.instances_size() == 0)
    return Fail(log, cid, "NOT_FOUND",
                std::string("no instances of ") + kCalculatorService + " registered with the broker at " + broker);
  std::random_device rd;
  const auto& chosen = found.instances(static_cast<int>(rd() % found.instances_size()));
  log.Write("DEBUG",
            "picked " + chosen.instance_id() + " at " + chosen.address() + " of " + std::to_string(found.instances_size()),
            cid, {{"instances", std::to_string(found.instances_size())}});

  auto stub = calculator::v1::CalculatorService::NewStub(
      grpc::CreateChannel(chosen.address(), grpc::InsecureChannelCredentials()));
  double result = 0;
  calculator::v1::ServedBy served_by;
  grpc::Status status;
  using namespace calculator::v1;
  auto* s = stub.get();
  if (args.op == "add") {
    status = Invoke<AddRequest, AddResponse>(
        [s](auto* c, const auto& r, auto* o) { return s->Add(c, r, o); }, args, &result, &served_by);
  } else if (args.op == "subtract") {
    status = Invoke<SubtractRequest, SubtractResponse>(
        [s](auto* c, const auto& r, auto* o) { return s->Subtract(c, r, o); }, args, &result, &served_by);
  } else if (args.op == "multiply") {
    status = Invoke<MultiplyRequest, MultiplyResponse>(
        [s](auto* c, const auto& r, auto* o) { return s->Multiply(c, r, o); }, args, &result, &served_by);
  } else {
    status = Invoke<DivideRequest, DivideResponse>(
        [s](auto* c, const auto& r, auto* o) { return s->Divide(c, r, o); }, args, &result, &served_by);
  }
  if (!status.ok()) {
    std::string code = CodeName(status.error_code());
    return Fail(log, cid, code, code + ": " + status.error_message());
  }
  double elapsed_ms =
      std::round(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count() * 1000) /
      1000;
  std::string served = "{\"instance_id\":" + Quote(served_by.instance_id()) +
                       ",\"language\":" + Quote(served_by.language()) +
                       ",\"service_name\":" + Quote(served_by.service_name()) + "}";
  log.Write("INFO", "Result: " + Num(result), cid,
            {{"result", Num(result)}, {"served_by", served}, {"elapsed_ms", Num(elapsed_ms)}});
  log.Write("INFO", std::string(kLanguage) + " client called " + served_by.language() + " server", cid,
            {{"client_language", Quote(kLanguage)},
             {"server_language", Quote(served_by.language())},
             {"server_instance", Quote(served_by.instance_id())}});
  return 0;
}
