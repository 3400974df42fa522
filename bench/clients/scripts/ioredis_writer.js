// Writes through ioredis's Redis.Cluster with its default options, in
// WORKERS concurrent loops, each owning the keys i % WORKERS == w, and
// prints one line per write: "ok|err key seq startMs endMs [error]". It
// stops when its standard input closes. Usage: node ioredis_writer.js
// host:port[,host:port...] workers key [key...]
const Redis = require('ioredis');

const [seedList, workersArg, ...keys] = process.argv.slice(2);
const seeds = seedList.split(',').map((a) => {
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
});
const workers = Number(workersArg);
const cluster = new Redis.Cluster(seeds);
cluster.on('error', () => {}); // reported per write below

let seq = 0;
let stopping = false;
const out = (line) => process.stdout.write(line + '\n');

async function worker(w) {
  while (!stopping) {
    for (let i = w; i < keys.length && !stopping; i += workers) {
      const s = ++seq;
      const start = Date.now();
      try {
        await cluster.set(keys[i], String(s));
        out(`ok ${keys[i]} ${s} ${start} ${Date.now()}`);
      } catch (e) {
        out(`err ${keys[i]} ${s} ${start} ${Date.now()} ${String(e.message).replace(/\s+/g, ' ')}`);
      }
    }
  }
}

process.stdin.on('end', () => { stopping = true; setTimeout(() => process.exit(0), 100); });
process.stdin.resume();
for (let w = 0; w < workers; w++) worker(w);
