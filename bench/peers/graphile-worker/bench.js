"use strict";
// graphile-worker 0.17.3 peer figures for `ospdeck bench queue`, measured the
// way graphile-worker's own perfTest/ measures them (run.js, init.js,
// latencyTest.js, graphile.config.js), in one process, on a database that
// run.sh created for this run and drops afterwards.
//
// Usage (run.sh sets this up): node bench.js --jobs N --latency-samples N
//   --backlog N [--batch N]; PEER_DB_URL = URL of the benchmark's own database.
// Prints one JSON object on stdout; progress on stderr only on a terminal.
const { performance } = require("perf_hooks");
const { Pool } = require("pg");
const { run, runOnce, runMigrations, Logger } = require("graphile-worker");

const VERSION = "0.17.3";
// perfTest/graphile.config.js
const CONCURRENCY = 24;
const LOCAL_QUEUE = 500;
// perfTest/init.js adds its jobs in slices of this many per add_jobs call.
const PERFTEST_BATCH = 1000000;
// Jobs for this task are queued but no worker has it in its task list, so
// they stay queued in front of the served jobs: the "backlog trap".
const BACKLOG_TASK = "backlog_trap";
const TASK = "log_if_999";
const LATENCY_TASK = "latency";
const LATENCY_SPACING_MS = 15;
const WAIT_LIMIT_MS = 120000;

const showProgress = Boolean(process.stderr.isTTY);
const progress = (msg) => {
  if (showProgress) process.stderr.write(`graphile-worker peer: ${msg}\n`);
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();

function parseArgs(argv) {
  const out = {
    jobs: null,
    latencySamples: null,
    backlog: null,
    batch: PERFTEST_BATCH,
  };
  const keys = {
    "--jobs": "jobs",
    "--latency-samples": "latencySamples",
    "--backlog": "backlog",
    "--batch": "batch",
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = keys[argv[i]];
    const value = argv[i + 1];
    if (!key || value === undefined || !/^[0-9]+$/.test(value)) {
      throw new Error(
        `bad argument ${argv[i]} ${value === undefined ? "" : value}`.trim(),
      );
    }
    out[key] = Number(value);
  }
  for (const [flag, key] of Object.entries(keys)) {
    if (out[key] === null) throw new Error(`${flag} is required`);
  }
  if (out.jobs < 1 || out.latencySamples < 1 || out.batch < 1) {
    throw new Error("--jobs, --latency-samples and --batch must be at least 1");
  }
  return out;
}

// Warnings and errors from graphile-worker still reach stderr: a benchmark that
// went wrong quietly would report a number nobody can explain.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || (showProgress && level === "warning")) {
    process.stderr.write(`graphile-worker ${level}: ${message}\n`);
  }
});

// perfTest/graphile.config.js, with perfTest's own choices kept: pollInterval
// is left at graphile-worker's default (perfTest does not set it; new jobs
// arrive by LISTEN/NOTIFY).
function perfPreset(connectionString) {
  return {
    worker: {
      connectionString,
      logger,
      gracefulShutdownAbortTimeout: 2500,
      concurrentJobs: CONCURRENCY,
      maxPoolSize: CONCURRENCY + 1,
      localQueue: { size: LOCAL_QUEUE, refetchDelay: { durationMs: 10 } },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
    },
  };
}

// Jobs are built before the clock starts, as in perfTest/init.js; the clock
// covers slicing, JSON encoding and the add_jobs calls.
async function addJobs(pool, count, identifier, batch) {
  const jobs = [];
  for (let i = 0; i < count; i++) jobs.push({ identifier, payload: { id: i } });
  const start = now();
  while (jobs.length > 0) {
    const slice = jobs.splice(0, batch);
    await pool.query(
      `select 1 from graphile_worker.add_jobs(array(select json_populate_recordset(null::graphile_worker.job_spec, $1::json)))`,
      [JSON.stringify(slice)],
    );
  }
  return now() - start;
}

// The backlog is not measured, so it is generated in the server in one call.
async function addBacklog(pool, count) {
  await pool.query(
    `select graphile_worker.add_jobs(coalesce((
       select array_agg(json_populate_record(null::graphile_worker.job_spec,
         json_build_object('identifier', $2::text, 'payload', json_build_object('id', i))))
       from generate_series(1, $1::int) i), '{}'))`,
    [count, BACKLOG_TASK],
  );
}

async function queued(pool, identifier) {
  const { rows } = await pool.query(
    `select count(*)::int as n from graphile_worker._private_jobs j
       join graphile_worker._private_tasks t on t.id = j.task_id
      where t.identifier = $1`,
    [identifier],
  );
  return rows[0].n;
}

// A fresh database has no statistics and autovacuum wakes up when it likes;
// settling both before each timed run keeps run-to-run noise down.
async function settle(pool) {
  await pool.query(`vacuum analyze graphile_worker._private_jobs`);
  await pool.query(`vacuum analyze graphile_worker._private_job_queues`);
}

// perfTest/run.js times `graphile-worker --once` until it exits (the queue has
// no job it can run) and subtracts the time of a `--once` on an empty queue;
// runOnce() is the same code path without the process start.
async function timedRunOnce(preset) {
  const start = now();
  await runOnce({ preset, noHandleSignals: true, taskList: { [TASK]: noop } });
  return now() - start;
}

// perfTest/tasks/log_if_999.js without its one log line: a no-op.
function noop() {}

async function processAll(pool, preset, jobs, startupMs) {
  const ms = await timedRunOnce(preset);
  const left = await queued(pool, TASK);
  if (left !== 0) {
    throw new Error(
      `runOnce returned with ${left} of ${jobs} jobs still queued`,
    );
  }
  const net = ms - startupMs > 0 ? ms - startupMs : ms;
  progress(
    `  ${ms.toFixed(0)} ms, less ${startupMs.toFixed(0)} ms worker start/stop`,
  );
  return (1000 * jobs) / net;
}

function pick(sorted, q) {
  // Same rank rule as ospdeck's p50_p99, so both columns mean the same thing.
  return sorted[Math.round((sorted.length - 1) * q)];
}

// perfTest/latencyTest.js: a worker with the perf config, warmed up, then
// single add_job calls; latency = task start minus the moment before add_job.
// Unlike latencyTest (which waits for each job), samples are spaced
// LATENCY_SPACING_MS apart like ospdeck's insert-to-start measurement.
async function latency(pool, preset, samples) {
  const started = new Map();
  const waiters = new Map();
  const taskList = {
    [LATENCY_TASK]: (payload) => {
      const t = now();
      started.set(payload.id, t);
      const w = waiters.get(payload.id);
      if (w) w();
    },
  };
  const runner = await run({ preset, noHandleSignals: true, taskList });
  const waitFor = (ids) =>
    Promise.race([
      Promise.all(
        ids.map((id) =>
          started.has(id)
            ? null
            : new Promise((resolve) => waiters.set(id, resolve)),
        ),
      ),
      sleep(WAIT_LIMIT_MS).then(() => {
        throw new Error(
          `latency jobs did not start within ${WAIT_LIMIT_MS / 1000} s`,
        );
      }),
    ]);
  try {
    const warm = [];
    for (let i = 1; i <= 20; i++) warm.push(-i);
    await pool.query(
      `select graphile_worker.add_job($1, json_build_object('id', -i)) from generate_series(1, 20) i`,
      [LATENCY_TASK],
    );
    await waitFor(warm);
    await sleep(300);

    const client = await pool.connect();
    const before = new Map();
    try {
      for (let id = 0; id < samples; id++) {
        before.set(id, now());
        await client.query(
          `select graphile_worker.add_job($1, json_build_object('id', $2::int))`,
          [LATENCY_TASK, id],
        );
        await sleep(LATENCY_SPACING_MS);
      }
    } finally {
      client.release();
    }
    const ids = [...before.keys()];
    await waitFor(ids);
    const ms = ids
      .map((id) => started.get(id) - before.get(id))
      .sort((a, b) => a - b);
    return { p50: pick(ms, 0.5), p99: pick(ms, 0.99) };
  } finally {
    await runner.stop();
  }
}

const round = (x, places) => Number(x.toFixed(places));

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const url = process.env.PEER_DB_URL;
  if (!url) throw new Error("PEER_DB_URL is not set");
  const preset = perfPreset(url);
  const pool = new Pool({
    connectionString: url,
    max: 4,
    connectionTimeoutMillis: 10000,
  });
  pool.on("error", () => {});
  try {
    progress("installing the schema");
    await runMigrations({ preset });
    // perfTest/run.js: startup/shutdown of a worker on an empty queue.
    const startupMs = await timedRunOnce(preset);

    progress(`adding ${args.jobs} jobs with add_jobs`);
    const addMs = await addJobs(pool, args.jobs, TASK, args.batch);
    progress(`  ${addMs.toFixed(0)} ms`);
    await settle(pool);
    progress(
      `processing ${args.jobs} jobs (concurrency ${CONCURRENCY}, local queue ${LOCAL_QUEUE})`,
    );
    const processRate = await processAll(pool, preset, args.jobs, startupMs);

    progress(`queuing a backlog of ${args.backlog} jobs no worker serves`);
    await addBacklog(pool, args.backlog);
    await addJobs(pool, args.jobs, TASK, args.batch);
    await settle(pool);
    progress(`processing ${args.jobs} jobs behind the backlog`);
    const backlogRate = await processAll(pool, preset, args.jobs, startupMs);
    const backlogLeft = await queued(pool, BACKLOG_TASK);
    if (backlogLeft !== args.backlog) {
      throw new Error(
        `backlog changed from ${args.backlog} to ${backlogLeft} jobs`,
      );
    }
    await pool.query(
      `delete from graphile_worker._private_jobs j using graphile_worker._private_tasks t
        where t.id = j.task_id and t.identifier = $1`,
      [BACKLOG_TASK],
    );
    await settle(pool);

    progress(`add_job→start latency, ${args.latencySamples} samples`);
    const lat = await latency(pool, preset, args.latencySamples);

    process.stdout.write(
      JSON.stringify({
        peer: "graphile-worker",
        version: VERSION,
        jobs: args.jobs,
        add_jobs_per_sec: round((1000 * args.jobs) / addMs, 1),
        process_jobs_per_sec: round(processRate, 1),
        backlog: args.backlog,
        process_with_backlog_jobs_per_sec: round(backlogRate, 1),
        latency_p50_ms: round(lat.p50, 3),
        latency_p99_ms: round(lat.p99, 3),
        concurrency: CONCURRENCY,
        local_queue: LOCAL_QUEUE,
      }) + "\n",
    );
  } finally {
    await pool.end().catch(() => {});
  }
}

const fail = (e) => {
  const msg = String((e && e.message) || e).split("\n")[0];
  process.stderr.write(`graphile-worker peer: ${msg}\n`);
  process.exit(1);
};
process.on("unhandledRejection", fail);
main().then(() => process.exit(0), fail);
