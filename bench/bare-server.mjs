// The reference point of the cached-GET benchmark: a bare Node `http` server answering every
// request with the same bytes the service sends for GET /is-bitcoin-lit. Started by run.mjs as
// its own process (like the service), body file path in argv[2]; prints its port on stdout.
// `--headers <file>` replaces its two headers with the list in that file (see below).
//
// With `--after-traffic` it first serves a few hundred requests with the header sets real
// clients send (browsers, curl, a load balancer's probe, a proxy) and reads the answers with
// Node's own client, as any server process does before it is benchmarked. Node's HTTP code
// then no longer sees a single header layout (wrk's lone Host), and runs its generic paths.
import { readFileSync } from 'node:fs';
import { Agent, createServer, get } from 'node:http';

// A string, as a bare server would usually send it (Node writes headers and body in one go).
const body = readFileSync(process.argv[2], 'utf8');
// With `--headers <file>` (a JSON flat [name, value, …] list) it sends exactly those headers, as
// one list (as the service's fast path does): the cost of the header set itself, for context.
const headersAt = process.argv.indexOf('--headers');
const headers =
  headersAt > 0
    ? JSON.parse(readFileSync(process.argv[headersAt + 1], 'utf8'))
    : { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) };
const server = createServer((_req, res) => {
  res.writeHead(200, headers);
  res.end(body);
});

const CLIENTS = [
  { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/140.0', accept: 'application/json', 'accept-language': 'en-US,en;q=0.5', 'accept-encoding': 'gzip, deflate, br' },
  { 'user-agent': 'curl/8.5.0', accept: '*/*' },
  { 'user-agent': 'ELB-HealthChecker/2.0' },
  { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'user-agent': 'python-requests/2.32', accept: '*/*', 'accept-encoding': 'gzip, deflate' },
  { 'user-agent': 'Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Safari/605.1.15', accept: '*/*', 'if-none-match': '"abc"', 'cache-control': 'no-cache' },
];

async function ordinaryTraffic(port) {
  const agent = new Agent({ keepAlive: true });
  for (let i = 0; i < 300; i++) {
    await new Promise((resolve, reject) =>
      get({ host: '127.0.0.1', port, path: '/is-bitcoin-lit', agent, headers: CLIENTS[i % CLIENTS.length] }, (res) => res.resume().on('end', resolve)).on('error', reject),
    );
  }
  agent.destroy();
}

async function start() {
  const { port } = server.address();
  if (process.argv.includes('--after-traffic')) await ordinaryTraffic(port);
  process.stdout.write(`${port}\n`);
}

server.listen(0, '127.0.0.1', () => void start());
process.on('SIGTERM', () => server.close(() => process.exit(0)));
