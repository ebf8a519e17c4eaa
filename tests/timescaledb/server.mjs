// TimescaleDB for the hypertable tests: pglite (PostgreSQL 17.5 compiled to WebAssembly) with TimescaleDB, served
// over the PostgreSQL wire protocol on 127.0.0.1:<port>, its data in <dir>. One connection at a time, all sharing one
// session (see ../../../shared/postgres-notes.md). Prints "ready" when it accepts connections. With --until-stdin-closes
// it exits when its stdin closes (the tests' harness holds it: the server goes with the test process).
//   node server.mjs <dir> <port> [--until-stdin-closes]
import { PGlite } from '@electric-sql/pglite';
import { timescaledb } from '@electric-sql/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const [dataDir, port, flag] = process.argv.slice(2);
// A client killed mid-connection (the crash tests abort the engine) resets its socket; pglite-socket leaves that
// error unhandled, which would end the server. The connection is gone either way: say so and serve the next one.
process.on('uncaughtException', (err) => {
  if (err && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
    console.error(`a client's connection was reset (${err.code})`);
    return;
  }
  throw err;
});
if (!dataDir || !port) {
  console.error('usage: node server.mjs <dir> <port>');
  process.exit(2);
}
const db = await PGlite.create(dataDir, { extensions: { timescaledb } });
await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb');
const server = new PGLiteSocketServer({ db, port: Number(port), host: '127.0.0.1' });
await server.start();
const { rows } = await db.query("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'");
console.log(`ready: TimescaleDB ${rows[0].extversion} on 127.0.0.1:${port}`);
const stop = async () => {
  await server.stop();
  await db.close();
  process.exit(0);
};
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, stop);
if (flag === '--until-stdin-closes') {
  process.stdin.on('end', stop);
  process.stdin.resume();
}
