import { AsyncResource } from 'node:async_hooks';
import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { newRequestId, requestIdOf } from './request-id.js';
import { API_SECURITY_HEADERS } from './security-headers.js';

export const BOTH_LENGTHS_MESSAGE =
  'A request must not have both Transfer-Encoding and Content-Length (RFC 9112 section 6.1): the request body length is ambiguous';

export const UNFRAMED_BODY_MESSAGE =
  'Transfer-Encoding must end with chunked, applied once (RFC 9112 section 6.1): the request body length cannot be determined';

/**
 * True when the request's Transfer-Encoding does not end in `chunked` (`xchunked`, `gzip`,
 * `chunked, gzip`…). RFC 9112 §6.1: the body length of such a request cannot be determined, so
 * the server must answer 400 and close the connection. Node's parser lets it through as a
 * request without a body, and whatever body follows would be parsed as the next request.
 */
export function hasUnframedBody(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  if (te === undefined) return false;
  const codings = te.split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '');
  return codings[codings.length - 1] !== 'chunked';
}

/**
 * An error answer in the API's JSON shape for `req`, written before Fastify or outside it (which
 * would add these itself): its body, and headers with the API security set, the request id and
 * the length.
 */
export function errorReply(
  req: IncomingMessage,
  statusCode: number,
  message: string,
): { body: string; headers: Record<string, string | number> } {
  const requestId = requestIdOf(req);
  const body = JSON.stringify({ statusCode, error: STATUS_CODES[statusCode], message, requestId });
  return {
    body,
    headers: {
      ...API_SECURITY_HEADERS,
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'x-request-id': requestId,
    },
  };
}

/** A 400 in the API's JSON error shape for `req` (see errorReply). */
export function badRequestReply(req: IncomingMessage, message: string): { body: string; headers: Record<string, string | number> } {
  return errorReply(req, 400, message);
}

export const MISSING_HOST_MESSAGE = 'An HTTP/1.1 request must have a Host header (RFC 9112 section 3.2)';
export const DUPLICATE_HOST_MESSAGE = 'A request must have at most one Host header (RFC 9112 section 3.2)';
export const DUPLICATE_AUTHORIZATION_MESSAGE = 'A request must have at most one Authorization header';
export const WEBSOCKET_HOST_MESSAGE =
  "A WebSocket handshake's Host header must be a host name or address with an optional port (RFC 9110 section 7.2)";

export const UPGRADE_WITH_BODY_MESSAGE =
  'Upgrade is only supported for the WebSocket handshake; send this request without the Upgrade header';

/** Whether `req` is a GET offering the WebSocket protocol (a handshake, for whichever path). */
export function offersWebSocket(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return req.method === 'GET' && upgrade !== undefined && upgrade.toLowerCase().split(',').some((p) => p.trim() === 'websocket');
}

/** The response Node is writing on `socket`, if any (Node clears it once the response finishes). */
export function pendingResponse(socket: Duplex): ServerResponse | undefined {
  return (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
}

/**
 * Why `req`'s Host (or Authorization) must be answered 400, or undefined: Authorization sent more
 * than once; Host missing on HTTP/1.1 or sent more than once
 * (RFC 9112 §3.2; Node keeps the first of two and drops the other silently, so a proxy and this
 * server could see different hosts), or, on a WebSocket handshake only, one its URL cannot be
 * resolved against. The value is not otherwise checked against RFC 9110's syntax: nothing here
 * reads it, and real infrastructure sends names outside it (an Envoy health check sends its
 * cluster's name unless told otherwise, e.g. Istio's `outbound|8080||svc.ns.svc.cluster.local`).
 * A handshake's is read: WsAdapter resolves the URL against it, as upgrade.ts does, and a Host
 * it could not parse got a 404, or a malformed answer from WsAdapter.
 */
export function headerProblem(req: IncomingMessage): string | undefined {
  const raw = req.rawHeaders;
  let hosts = 0;
  let authorizations = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
    else if (name.length === 13 && name.toLowerCase() === 'authorization') authorizations++;
  }
  if (hosts > 1) return DUPLICATE_HOST_MESSAGE;
  // Node keeps the first of two and drops the other, as for Host: a proxy checking the last
  // could let through credentials this server never sees, or the other way round.
  if (authorizations > 1) return DUPLICATE_AUTHORIZATION_MESSAGE;
  const host = req.headers.host;
  if (host === undefined) return req.httpVersionMajor === 1 && req.httpVersionMinor === 1 ? MISSING_HOST_MESSAGE : undefined;
  if (offersWebSocket(req) && !URL.canParse(req.url ?? '/', `ws://${host}/`)) return WEBSOCKET_HOST_MESSAGE;
  return undefined;
}

export const UNSUPPORTED_EXPECTATION_MESSAGE = 'Only Expect: 100-continue is supported';

/** An answer made in front of Fastify: by the screen (serveScreened) or to a request Node's parser refused (clientErrorHandler). */
export interface ScreenedAnswer {
  /** Absent when the parser refused the request. */
  req?: IncomingMessage;
  requestId: string;
  statusCode: number;
  /** The message of its JSON error. */
  message: string;
  /** From the request's arrival to its answer written; 0 when the parser refused it (no request was read). */
  seconds: number;
}

/** Tells `onAnswered` of `res`'s answer once it is written (not if the connection goes first), timed from now. */
export function reportWhenSent(req: IncomingMessage, res: ServerResponse, statusCode: number, message: string, onAnswered?: OnScreenedAnswer): void {
  if (onAnswered === undefined) return;
  const started = performance.now();
  // Bound to this context: an answer queued behind another is written, and 'finish' emitted, in
  // the context of the request before it, whose log fields (nestjs-pino's) would join its line.
  res.once('finish', AsyncResource.bind(() => onAnswered({ req, requestId: requestIdOf(req), statusCode, message, seconds: (performance.now() - started) / 1000 })));
}

/**
 * Told of each ScreenedAnswer. Such a request never reaches Fastify, so neither its access log
 * line nor its timing in the metrics is written otherwise.
 */
export type OnScreenedAnswer = (answer: ScreenedAnswer) => void;

/**
 * Serves `server`'s requests with `serve`, each first screened (screenRequest), and returns that
 * screened handler (for requests the server hands over elsewhere, e.g. upgrade.ts). Node answers
 * a request with an `Expect` header before emitting it ('checkContinue', 'checkExpectation'),
 * after its own Host check, which is off on our servers: such a request is screened first too,
 * then gets `100 Continue` and `serve` as Node would, or a 417 in the API's shape where Node's is
 * bare. `onAnswered` hears of every answer made here instead of by `serve`.
 */
export function serveScreened(
  server: Server,
  answered: WeakSet<Duplex>,
  serve: (req: IncomingMessage, res: ServerResponse) => void,
  onAnswered?: OnScreenedAnswer,
): (req: IncomingMessage, res: ServerResponse) => void {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (!screenRequest(req, res, answered, onAnswered)) serve(req, res);
  };
  server.on('request', onRequest);
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (screenRequest(req, res, answered, onAnswered)) return;
    res.writeContinue();
    serve(req, res);
  });
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    if (screenRequest(req, res, answered, onAnswered)) return;
    const { body, headers } = errorReply(req, 417, UNSUPPORTED_EXPECTATION_MESSAGE);
    reportWhenSent(req, res, 417, UNSUPPORTED_EXPECTATION_MESSAGE, onAnswered);
    res.writeHead(417, headers);
    res.end(body);
  });
  return onRequest;
}

/** Connections on which one request behind a refused one waits for the answers before it (screenRequest). */
const waitingBehind = new WeakSet<Duplex>();

/** Why `req` must be answered 400 and its connection closed (hasUnframedBody, headerProblem), or undefined. */
function screenProblem(req: IncomingMessage): string | undefined {
  return hasUnframedBody(req) ? UNFRAMED_BODY_MESSAGE : headerProblem(req);
}

/**
 * The HTTP server's first step for every request. Answers what must not be served, and returns
 * true: a request pipelined behind one answered 400 here is never served (the parser may have
 * found it in an unread body: smuggled); one with a screenProblem gets a 400 in the API's JSON
 * error shape with `Connection: close`, and the connection ends once it is sent. Everything else
 * returns false.
 */
export function screenRequest(req: IncomingMessage, res: ServerResponse, answered: WeakSet<Duplex>, onAnswered?: OnScreenedAnswer): boolean {
  if (answered.has(req.socket)) {
    // Never served. While an answer is still on its way (the 400's, or one to a request before
    // it), the first such request leaves the connection be, so those answers go out and the
    // 400's `Connection: close` ends it. Any later one drops it at once: Node queues a response
    // for each request it parses (pausing the socket does not stop its parser), and a client
    // streaming requests behind an answer that never ends (an SSE stream) grew the process by
    // gigabytes, then stalled it for minutes while Node dropped the queue.
    const pending = pendingResponse(req.socket);
    if (pending === undefined || pending === res || waitingBehind.has(req.socket)) req.socket.destroy();
    else waitingBehind.add(req.socket);
    return true;
  }
  const problem = screenProblem(req);
  if (problem === undefined) return false;
  answered.add(req.socket);
  const { body, headers } = badRequestReply(req, problem);
  reportWhenSent(req, res, 400, problem, onAnswered);
  res.writeHead(400, { ...headers, connection: 'close' }); // Node then ends the socket after this response
  res.end(body);
  return true;
}

/**
 * What Node's parser (llhttp) refused, by its error code, in the client's terms: Fastify's
 * default said "Client Error" for all of them. A method it does not know stays a 400, not the
 * 501 RFC 9110 suggests: anyone could raise the 5xx rate operators alert on.
 */
const PARSE_ERRORS: Record<string, string> = {
  HPE_INVALID_METHOD: 'Unknown request method (methods are case-sensitive: GET, HEAD, POST)',
  HPE_INVALID_URL: 'The request target is not a valid URL path (percent-encode what is not ASCII)',
  HPE_INVALID_VERSION: 'The request line must end in HTTP/1.1 (or 1.0) and CRLF',
  HPE_INVALID_CONSTANT: 'The request line is malformed',
  HPE_INVALID_HEADER_TOKEN: 'A header name or value has a character HTTP does not allow',
  HPE_INVALID_CONTENT_LENGTH: 'Content-Length is not a single non-negative number',
  HPE_UNEXPECTED_CONTENT_LENGTH: 'Content-Length is not a single non-negative number',
  HPE_INVALID_CHUNK_SIZE: 'A chunk size of the chunked body is not valid',
  HPE_CR_EXPECTED: 'Lines must end in CRLF',
  HPE_LF_EXPECTED: 'Lines must end in CRLF',
  HPE_STRICT: 'The request is not valid HTTP/1.1',
  HPE_INVALID_EOF_STATE: 'The connection ended inside a request',
};

/**
 * Fastify's clientErrorHandler (malformed requests Node's parser rejects: 400, 408 on a request
 * timeout, 431 for oversized headers, as Fastify's default, in the API's JSON shape), except on
 * a connection whose request was already answered 400 by screenRequest: its unread body is
 * what the parser tripped on, and the client must get one answer, not two.
 */
export function clientErrorHandler(answered: WeakSet<Duplex>, onAnswered?: OnScreenedAnswer) {
  return (err: NodeJS.ErrnoException, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    if (answered.has(socket)) {
      // The 400 is on its way, with `Connection: close`: read nothing more. Ended here only once
      // nothing is left to send on it; until then, answers queued before the 400 (and the 400)
      // would be lost, and Node ends the connection itself once the 400 is out.
      if (pendingResponse(socket) === undefined) (socket as Socket).destroySoon();
      else socket.pause();
      return;
    }
    // Node's parser names whichever of the two came second (HPE_INVALID_TRANSFER_ENCODING or _CONTENT_LENGTH).
    const bothLengths = /Content-Length.*Transfer-Encoding|Transfer-Encoding.*Content-Length/.test(String((err as { reason?: unknown }).reason));
    const [statusCode, error, message] = bothLengths
      ? [400, 'Bad Request', BOTH_LENGTHS_MESSAGE]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'Client Timeout']
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'Request Header Fields Too Large', 'Exceeded maximum allowed HTTP header size']
          : err.code === 'HPE_INVALID_TRANSFER_ENCODING'
            ? [400, 'Bad Request', UNFRAMED_BODY_MESSAGE] // e.g. `chunked, gzip`, which Node's parser refuses itself
            : [400, 'Bad Request', PARSE_ERRORS[err.code ?? ''] ?? `The request is not valid HTTP/1.1 (${err.code ?? 'parse error'})`];
    // As Node's own handler: never write into a response already being sent on this connection.
    const inProgress = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
    if (socket.writable && !inProgress) {
      // The API's error shape and headers, as every other error; the request was never parsed,
      // so its id is a new one (a client's X-Request-Id cannot be read).
      const requestId = newRequestId();
      const body = JSON.stringify({ statusCode, error, message, requestId });
      const headers = { date: new Date().toUTCString(), ...API_SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-request-id': requestId, connection: 'close' };
      const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.write(`HTTP/1.1 ${statusCode} ${error}\r\n${head}\r\n${body}`);
      // A connection that never sent a byte (a browser's preconnect, say) timed out: no request to report.
      if (!(err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && (socket as Socket).bytesRead === 0)) onAnswered?.({ requestId, statusCode, message, seconds: 0 });
    }
    socket.destroy(err);
  };
}
