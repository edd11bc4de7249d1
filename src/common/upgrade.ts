import { type IncomingMessage, type Server, ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  badRequestReply,
  errorReply,
  headerProblem,
  offersWebSocket,
  type OnScreenedAnswer,
  pendingResponse,
  reportWhenSent,
  UPGRADE_WITH_BODY_MESSAGE,
} from './http-framing.js';

/** What a client may send on an upgraded connection while it waits for its answer (more is abuse). */
const MAX_HELD_BYTES = 64 * 1024;


/** Whether `req` is a WebSocket handshake for one of `paths` (what the WebSocket adapter would take). */
function isWebSocketHandshake(req: IncomingMessage, paths: readonly string[]): boolean {
  // With a missing, repeated or invalid Host (or two Authorization lines), served as a plain request: the 400 every such request gets.
  if (!offersWebSocket(req) || headerProblem(req) !== undefined) return false;
  try {
    // As WsAdapter resolves it (a Host it cannot parse makes it write a malformed response).
    return paths.includes(new URL(req.url ?? '/', `ws://${req.headers.host}/`).pathname);
  } catch {
    return false;
  }
}

/**
 * Node hands every request with `Connection: Upgrade` to the server's 'upgrade' listeners
 * instead of its request handler, and WsAdapter's destroys the socket unless the request is a
 * handshake for a gateway path: a GET offering `Upgrade: h2c` (what `curl --http2` sends) or a
 * stray websocket upgrade got no answer at all. Here only such handshakes reach the 'upgrade'
 * listeners; any other request is served by `handler` as a plain one (RFC 9110 §7.8 lets a
 * server ignore Upgrade), then the connection is closed (Node's parser has already let go of
 * it). One that declares a body is a 400 instead: Node left its body unread, as upgraded bytes.
 */
export function serveNonWebSocketUpgrades(
  server: Server,
  paths: readonly string[],
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  onAnswered?: OnScreenedAnswer,
): void {
  const emit = server.emit.bind(server) as (event: string | symbol, ...args: unknown[]) => boolean;
  server.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
    if (event !== 'upgrade') return emit(event, ...args);
    const [req, socket] = args as [IncomingMessage, Socket];
    const handshake = isWebSocketHandshake(req, paths);
    if (handshake && pendingResponse(socket) === undefined) return emit(event, ...args);
    // Node took its own listeners off this socket when it handed it over, and reads it no more.
    // So read it here (what a handshake's client sends too early is kept for the gateway, up to
    // a bound), end our side when the client half-closes, as Node's server does
    // (httpAllowHalfOpen is off), and destroy it on an error. Unread, a socket whose client
    // half-closed behind an answer that never finishes by itself (an SSE stream) stayed open
    // after the client left, until the stream's next heartbeat write.
    socket.on('error', () => socket.destroy());
    socket.once('end', () => {
      if (socket.writable) socket.end();
    });
    const held: Buffer[] = [];
    let heldBytes = 0;
    const hold = (chunk: Buffer) => {
      heldBytes += chunk.length;
      if (heldBytes > MAX_HELD_BYTES) socket.destroy();
      else if (handshake) held.push(chunk);
    };
    socket.on('data', hold);
    if (handshake) {
      // The gateway writes its 101 straight to the socket: only once the answers before it are out.
      afterPendingResponses(socket, () => {
        // Handed on as Node hands it over: paused, resumed by the gateway's own 'data' listener.
        socket.off('data', hold);
        socket.pause();
        (socket as { readableFlowing: boolean | null }).readableFlowing = null;
        const head = args[2] as Buffer;
        if (!socket.destroyed) emit(event, req, socket, held.length ? Buffer.concat([head, ...held]) : head);
      });
      return true;
    }
    // Any other request is answered as a plain one, then the connection closes: what the client
    // sends meanwhile is read and dropped (Node's parser has let go of the connection).
    afterPendingResponses(socket, () => {
      if (socket.destroyed || !socket.writable) return;
      const res = new ServerResponse(req);
      res.shouldKeepAlive = false;
      res.assignSocket(socket);
      res.once('finish', () => {
        res.detachSocket(socket);
        socket.destroySoon();
      });
      const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) !== 0;
      if (!hasBody) {
        handler(req, res);
        return;
      }
      const { body, headers } = badRequestReply(req, UPGRADE_WITH_BODY_MESSAGE);
      reportWhenSent(req, res, 400, UPGRADE_WITH_BODY_MESSAGE, onAnswered);
      res.writeHead(400, headers);
      res.end(body);
    });
    return true;
  }) as typeof server.emit;
}

/**
 * Runs `serve` once no response is being written on `socket`. Node hands an Upgrade request
 * over as soon as it is parsed, while answers to requests pipelined before it may still be on
 * their way (Node then assigns them one after another, each once the one before finishes):
 * assigning a second response to the socket threw out of its data handler and took the process
 * down. Waiting keeps the answers in the order of the requests.
 */
function afterPendingResponses(socket: Socket, serve: () => void): void {
  const pending = pendingResponse(socket);
  if (pending === undefined) {
    serve();
    return;
  }
  // Node's own 'finish' listener (added first) detaches it and assigns the next one queued.
  pending.once('finish', () => afterPendingResponses(socket, serve));
}

/**
 * Answers a WebSocket handshake the `ws` server refused (its 'wsClientError': bad
 * Sec-WebSocket-Key or -Version, Upgrade header…) with a 400 in the API's JSON error shape,
 * where `ws` itself would answer text/html, and closes the connection (see refuseHandshake).
 */
export function rejectHandshake(err: Error, socket: Duplex, req: IncomingMessage): boolean {
  // As `ws` does: which versions it speaks (RFC 6455 §4.4).
  const headers: Record<string, string> = {};
  if (err.message.includes('Sec-WebSocket-Version')) headers['sec-websocket-version'] = '13, 8';
  return refuseHandshake(socket, req, 400, err.message, headers);
}

/**
 * Answers a WebSocket handshake with `statusCode` instead of its 101, in the API's JSON error
 * shape (with `headers` besides), and closes the connection. False when the client had already
 * gone (nothing written).
 */
export function refuseHandshake(
  socket: Duplex,
  req: IncomingMessage,
  statusCode: number,
  message: string,
  headers: Record<string, string | number> = {},
): boolean {
  if (!socket.writable) {
    socket.destroy();
    return false;
  }
  const { body, headers: base } = errorReply(req, statusCode, message);
  // Node's ServerResponse would add Date (RFC 9110 §6.6.1).
  const head = Object.entries({ date: new Date().toUTCString(), ...base, ...headers, connection: 'close' })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  // Destroyed once written, as `ws` does: half-closed and never read, a socket whose client
  // then left unnoticed, and held every later graceful shutdown until its timeout.
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode]}\r\n${head}\r\n${body}`);
  return true;
}

