//! The Rust calculator client, a one-shot job:
//!
//!     calculator-client <add|subtract|multiply|divide> <a> <b> [--correlation-id ID] [--timeout-s S]
//!
//! It knows only the broker (LAB_BROKER_ADDR): it looks up calculator.v1.CalculatorService, picks
//! an instance, calls it with `x-correlation-id` and a deadline, and writes JSON log lines on
//! stdout. Every call carries the lab's token (`authorization: Bearer <token>`, from LAB_TOKEN or
//! LAB_DIR/token) through a tonic interceptor.
//! Exit codes: 0 result, 1 the lookup or the call failed, 2 bad usage / no broker address.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

pub mod calculator {
    pub mod v1 {
        tonic::include_proto!("calculator.v1");
    }
}
pub mod runtime {
    pub mod v1 {
        tonic::include_proto!("runtime.v1");
    }
}

use calculator::v1::calculator_service_client::CalculatorServiceClient;
use runtime::v1::broker_service_client::BrokerServiceClient;
use runtime::v1::LookupServiceRequest;

const LANGUAGE: &str = "rust";
const CALCULATOR_SERVICE: &str = "calculator.v1.CalculatorService";
const CORRELATION_HEADER: &str = "x-correlation-id";
// Access (runtime/identity.py "Access"): the lab's token, sent with every call.
const AUTH_HEADER: &str = "authorization";
const TOKEN_ENV: &str = "LAB_TOKEN";
const TOKEN_FILE: &str = "token";
const DEFAULT_TIMEOUT_S: f64 = 5.0;
const USAGE: &str =
    "usage: calculator-client <add|subtract|multiply|divide> <a> <b> [--correlation-id ID] [--timeout-s S]";

/// Who this process is in the lab (runtime/identity.py) and where it writes.
struct Log {
    service: String,
    instance: String,
}

impl Log {
    fn from_env() -> Log {
        let service = env_or("LAB_SERVICE", &format!("client-{LANGUAGE}"));
        let instance = env_or("LAB_INSTANCE", &format!("{service}-{}", std::process::id()));
        Log { service, instance }
    }

    /// One JSON object per line: ts, level, message, correlation_id, service, instance, extras.
    fn write(&self, level: &str, message: &str, cid: &str, extra: Value) {
        let mut entry = Map::new();
        entry.insert("ts".into(), json!(now_ms()));
        entry.insert("level".into(), json!(level));
        entry.insert("message".into(), json!(message));
        entry.insert("correlation_id".into(), json!(cid));
        entry.insert("service".into(), json!(self.service));
        entry.insert("instance".into(), json!(self.instance));
        if let Value::Object(extra) = extra {
            entry.extend(extra);
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", Value::Object(entry));
        let _ = out.flush();
    }
}

fn env_or(key: &str, default: &str) -> String {
    match std::env::var(key) {
        Ok(v) if !v.is_empty() => v,
        _ => default.to_string(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `5`, not `5.0`: integral values print (and serialize) as integers.
fn is_integral(x: f64) -> bool {
    x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15
}

fn fmt_num(x: f64) -> String {
    if is_integral(x) {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn num(x: f64) -> Value {
    if is_integral(x) {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// The canonical gRPC status name every client prints, whatever its language.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

struct Args {
    op: String,
    a: f64,
    b: f64,
    correlation_id: String,
    timeout: Duration,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut cid = String::new();
    let mut timeout_s = DEFAULT_TIMEOUT_S;
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        match key {
            "--correlation-id" | "--timeout-s" => {
                let value = match inline {
                    Some(v) => v,
                    None => it.next().cloned().ok_or_else(|| format!("{key} needs a value"))?,
                };
                if key == "--correlation-id" {
                    cid = value;
                } else {
                    timeout_s = value.parse().map_err(|_| format!("--timeout-s: not a number: {value:?}"))?;
                }
            }
            _ => positional.push(arg.clone()),
        }
    }
    if positional.len() != 3 {
        return Err(format!("expected <op> <a> <b>, got {} arguments", positional.len()));
    }
    let op = positional[0].clone();
    if !["add", "subtract", "multiply", "divide"].contains(&op.as_str()) {
        return Err(format!("unknown operation {op:?}"));
    }
    let parse = |s: &str| s.trim().parse::<f64>().ok().filter(|x| x.is_finite());
    let (a, b) = match (parse(&positional[1]), parse(&positional[2])) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(format!("operands must be numbers, got {:?} and {:?}", positional[1], positional[2])),
    };
    if !(timeout_s > 0.0) {
        return Err("--timeout-s must be a positive number of seconds".into());
    }
    if cid.is_empty() {
        // LAB_CORRELATION_ID: the one environment key a RunJob caller may set (runtime/identity.py).
        cid = env_or("LAB_CORRELATION_ID", "");
    }
    if cid.is_empty() {
        cid = new_correlation_id();
    }
    Ok(Args { op, a, b, correlation_id: cid, timeout: Duration::from_secs_f64(timeout_s) })
}

/// The lab's token: LAB_TOKEN (the supervisor gives it to jobs), else LAB_DIR/token; "" outside a lab.
fn lab_token() -> String {
    let from_env = env_or(TOKEN_ENV, "");
    if !from_env.is_empty() {
        return from_env;
    }
    let dir = env_or("LAB_DIR", "");
    if dir.is_empty() {
        return String::new();
    }
    // Not readable: send none, and the service answers UNAUTHENTICATED saying where the token is.
    std::fs::read_to_string(std::path::Path::new(&dir).join(TOKEN_FILE)).map(|t| t.trim().to_string()).unwrap_or_default()
}

/// Adds `authorization: Bearer <token>` to every request of a client (tonic interceptor).
#[derive(Clone)]
struct Auth {
    header: Option<MetadataValue<Ascii>>,
}

impl Auth {
    fn from_env() -> Auth {
        let token = lab_token();
        let header = if token.is_empty() { None } else { format!("Bearer {token}").parse().ok() };
        Auth { header }
    }
}

impl Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.header {
            req.metadata_mut().insert(AUTH_HEADER, value.clone());
        }
        Ok(req)
    }
}

/// `req-` and 8 hex digits, from the clock and the pid (no RNG crate for one id).
fn new_correlation_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mixed = (nanos as u64 ^ ((std::process::id() as u64) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("req-{:08x}", (mixed >> 32) as u32)
}

fn method_name(op: &str) -> &'static str {
    match op {
        "add" => "Add",
        "subtract" => "Subtract",
        "multiply" => "Multiply",
        _ => "Divide",
    }
}

/// A failed step: the gRPC status name and a message for the learner.
struct Failure {
    code: &'static str,
    message: String,
}

impl Failure {
    fn from_status(status: &Status, context: &str) -> Failure {
        Failure { code: code_name(status.code()), message: format!("{context}{}", status.message()) }
    }
}

fn with_cid<T>(msg: T, cid: &str, timeout: Duration) -> Result<Request<T>, Failure> {
    let mut req = Request::new(msg);
    let value = cid
        .parse()
        .map_err(|_| Failure { code: "INVALID_ARGUMENT", message: format!("correlation id {cid:?} is not valid gRPC metadata") })?;
    req.metadata_mut().insert(CORRELATION_HEADER, value);
    req.set_timeout(timeout);
    Ok(req)
}

async fn connect(address: &str, timeout: Duration, what: &str) -> Result<Channel, Failure> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| Failure { code: "INVALID_ARGUMENT", message: format!("bad {what} address {address:?}: {e}") })?
        .connect_timeout(timeout)
        .timeout(timeout);
    match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(Failure {
            code: "UNAVAILABLE",
            message: format!("{what} at {address} unreachable: {}", source_chain(&e)),
        }),
        Err(_) => Err(Failure {
            code: "DEADLINE_EXCEEDED",
            message: format!("{what} at {address} did not answer within {:.1} s", timeout.as_secs_f64()),
        }),
    }
}

fn source_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn run(log: &Log, broker: &str, args: &Args) -> Result<(), Failure> {
    let cid = args.correlation_id.as_str();
    let started = Instant::now();

    let channel = connect(broker, args.timeout, "broker").await?;
    let lookup = LookupServiceRequest { service_name: CALCULATOR_SERVICE.into(), ..Default::default() };
    let auth = Auth::from_env();
    let instances = BrokerServiceClient::with_interceptor(channel, auth.clone())
        .lookup_service(with_cid(lookup, cid, args.timeout)?)
        .await
        .map_err(|s| Failure::from_status(&s, &format!("broker at {broker}: ")))?
        .into_inner()
        .instances;
    if instances.is_empty() {
        return Err(Failure {
            code: "NOT_FOUND",
            message: format!("no instances of {CALCULATOR_SERVICE} registered with the broker at {broker}"),
        });
    }
    let pick = (SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0) as usize)
        % instances.len();
    let chosen = &instances[pick];
    log.write(
        "DEBUG",
        &format!("picked {} at {} of {}", chosen.instance_id, chosen.address, instances.len()),
        cid,
        json!({"instances": instances.len()}),
    );

    let channel = connect(&chosen.address, args.timeout, &format!("calculator {}", chosen.instance_id)).await?;
    let mut client = CalculatorServiceClient::with_interceptor(channel, auth);
    let (a, b, t) = (args.a, args.b, args.timeout);
    use calculator::v1::*;
    let answer: Result<(f64, Option<ServedBy>), Status> = match args.op.as_str() {
        "add" => client.add(with_cid(AddRequest { a, b }, cid, t)?).await.map(|r| r.into_inner()).map(|r| (r.result, r.served_by)),
        "subtract" => client
            .subtract(with_cid(SubtractRequest { a, b }, cid, t)?)
            .await
            .map(|r| r.into_inner())
            .map(|r| (r.result, r.served_by)),
        "multiply" => client
            .multiply(with_cid(MultiplyRequest { a, b }, cid, t)?)
            .await
            .map(|r| r.into_inner())
            .map(|r| (r.result, r.served_by)),
        _ => client
            .divide(with_cid(DivideRequest { a, b }, cid, t)?)
            .await
            .map(|r| r.into_inner())
            .map(|r| (r.result, r.served_by)),
    };
    let (result, served_by) = answer.map_err(|s| Failure::from_status(&s, ""))?;
    let served_by = served_by.unwrap_or_default();
    let elapsed_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    log.write(
        "INFO",
        &format!("Result: {}", fmt_num(result)),
        cid,
        json!({
            "result": num(result),
            "served_by": {
                "instance_id": served_by.instance_id,
                "language": served_by.language,
                "service_name": served_by.service_name,
            },
            "elapsed_ms": elapsed_ms,
        }),
    );
    log.write(
        "INFO",
        &format!("{LANGUAGE} client called {} server", served_by.language),
        cid,
        json!({
            "client_language": LANGUAGE,
            "server_language": served_by.language,
            "server_instance": served_by.instance_id,
        }),
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let log = Log::from_env();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(args) => args,
        Err(problem) => {
            log.write("ERROR", &format!("{problem}; {USAGE}"), "", json!({}));
            std::process::exit(2);
        }
    };
    let cid = args.correlation_id.clone();
    let broker = env_or("LAB_BROKER_ADDR", "");
    if broker.is_empty() {
        log.write("ERROR", "LAB_BROKER_ADDR is not set: the client finds servers only through the broker", &cid, json!({}));
        std::process::exit(2);
    }
    log.write(
        "INFO",
        &format!("Calling {}({},{})", method_name(&args.op), fmt_num(args.a), fmt_num(args.b)),
        &cid,
        json!({"op": args.op, "a": num(args.a), "b": num(args.b), "broker": broker}),
    );
    if let Err(failure) = run(&log, &broker, &args).await {
        let message = if failure.code == "NOT_FOUND" && failure.message.starts_with("no instances") {
            failure.message
        } else {
            format!("{}: {}", failure.code, failure.message)
        };
        log.write("ERROR", &message, &cid, json!({"grpc_code": failure.code}));
        std::process::exit(1);
    }
}
