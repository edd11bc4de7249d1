// The reference point of the cached-GET benchmark: a bare Node `http` server answering every
// request with the same bytes the service sends for GET /is-bitcoin-lit. Started by run.mjs as
// its own process (like the service), body file path in argv[2]; prints its port on stdout.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

// A string, as a bare server would usually send it (Node writes headers and body in one go).
const body = readFileSync(process.argv[2], 'utf8');
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
