// BullMQ for Node, a peer of benchmarks/run.py: add N jobs, or drain them with one Worker.
//
//   NODE_PATH=/tmp/queues-bench-peers/node_modules node benchmarks/peer_bullmq.cjs add  <redis url> <queue> <noop|sleep> <n> <seconds>
//   NODE_PATH=/tmp/queues-bench-peers/node_modules node benchmarks/peer_bullmq.cjs work <redis url> <queue> <noop|sleep> <n> <seconds> <concurrency>
//
// "work" runs until n jobs have completed (or failed), then closes; run.py reads processedOn / finishedOn from the
// job hashes. The Redis URL is the private server run.py started; nothing else is contacted.
'use strict';
const { Queue, Worker } = require('bullmq');

const [command, url, name, kind, nText, secondsText, concurrencyText] = process.argv.slice(2);
const parsed = new URL(url);
const connection = { host: parsed.hostname, port: Number(parsed.port || 6379), db: Number(parsed.pathname.slice(1) || 0) };
const n = Number(nText);
const ms = Number(secondsText) * 1000;

async function add() {
  const queue = new Queue(name, { connection });
  for (let first = 0; first < n; first += 1000) {
    const batch = [];
    for (let i = first; i < Math.min(first + 1000, n); i++) batch.push({ name: kind, data: { i } });
    await queue.addBulk(batch);
  }
  await queue.close();
}

async function work() {
  let done = 0;
  const began = Date.now();
  let finish;
  const finished = new Promise((resolve) => { finish = resolve; });
  const processor = kind === 'sleep' ? async () => { await new Promise((r) => setTimeout(r, ms)); return null; }
    : async () => null;
  const worker = new Worker(name, processor, { connection, concurrency: Number(concurrencyText || 1) });
  const count = () => { done += 1; if (done >= n) finish(); };
  worker.on('completed', count);
  worker.on('failed', count);
  const timer = setTimeout(() => finish(), 60000 + n * 100);
  await finished;
  clearTimeout(timer);
  await worker.close();
  console.log(JSON.stringify({ done, wall_ms: Date.now() - began }));
  if (done < n) process.exitCode = 1;
}

(command === 'add' ? add() : work()).catch((e) => { console.error(e); process.exit(1); });
