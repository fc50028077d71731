// One loopback port for gRPC, gRPC-Web and Connect. gRPC needs HTTP/2 without TLS (h2c), browsers
// and curl speak HTTP/1.1: one net.Server reads the first bytes of each connection and hands the
// socket to an http2 server when they are the HTTP/2 client preface ("PRI * HTTP/2.0..."), else to
// an http server. Both serve the same Connect handler (connectNodeAdapter), which answers all three
// protocols on either.
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const SNIFF_TIMEOUT_MS = 10_000; // a connection that says nothing is closed

export type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

export class Listener {
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  port = 0;

  constructor(handler: Handler) {
    this.h1 = http.createServer(handler as http.RequestListener);
    this.h2 = http2.createServer({}, handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
    this.h2.on("session", (session) => {
      this.sessions.add(session);
      session.once("close", () => this.sessions.delete(session));
    });
    this.server = net.createServer({ pauseOnConnect: true }, (socket) => this.sniff(socket));
  }

  /** Bind host:port (0: any free port); resolves with the port bound, rejects when it is taken. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once("error", onError);
      // exclusive: never share the port with another process (so_reuseport off in the Python agent).
      this.server.listen({ host, port, exclusive: true }, () => {
        this.server.off("error", onError);
        this.port = (this.server.address() as net.AddressInfo).port;
        resolve(this.port);
      });
    });
  }

  private sniff(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    // Small writes (headers, a message, trailers) go out at once: with Nagle on, each call waits
    // for the peer's delayed ACK (~40 ms), which caps a connection at a few hundred calls/s.
    socket.setNoDelay(true);
    socket.setTimeout(SNIFF_TIMEOUT_MS, () => socket.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const h2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (h2 && n < H2_PREFACE.length) return; // a prefix of the preface so far: read on
      socket.off("data", onData);
      socket.off("error", onError);
      socket.pause();
      socket.setTimeout(0);
      socket.unshift(head);
      if (h2) {
        // The http2 session reads what is buffered (the preface) itself, on the next tick: resuming
        // here would emit those bytes as 'data' events nobody listens to.
        this.h2.emit("connection", socket);
      } else {
        this.h1.emit("connection", socket);
        socket.resume();
      }
    };
    const onError = () => socket.destroy();
    socket.on("error", onError);
    socket.on("data", onData);
    socket.resume();
  }

  /** Stop accepting; wait up to `graceMs` for open calls, then cut every connection. */
  async close(graceMs: number): Promise<void> {
    this.server.close();
    const closed = Promise.all([
      new Promise<void>((r) => this.h1.close(() => r())),
      new Promise<void>((r) => this.h2.close(() => r())),
    ]);
    this.h1.closeIdleConnections();
    // GOAWAY: a session ends once its open streams are done, and takes no new ones.
    for (const session of this.sessions) session.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    for (const s of this.sockets) s.destroy();
  }
}
