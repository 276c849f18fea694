"use strict";
// Creates or drops the benchmark's own database on the server of PEER_DB_URL.
// Usage: node db.js create|drop <name>   (PEER_DB_URL in the environment, so a
// password never shows in `ps`).
const { Client } = require("pg");

// The only names this script will ever create or drop: a typo or a hostile
// argument must not be able to reach anybody else's database.
const NAME = /^ospdeck_peer_gw_[0-9]+_[0-9a-f]+$/;

async function main() {
  const [action, name] = process.argv.slice(2);
  if (!["create", "drop"].includes(action) || !NAME.test(name || "")) {
    throw new Error(`usage: db.js create|drop ospdeck_peer_gw_<pid>_<hex>`);
  }
  const url = process.env.PEER_DB_URL;
  if (!url) throw new Error("PEER_DB_URL is not set");
  let parsed = null;
  try {
    parsed = new URL(url);
  } catch (_) {
    // reported below
  }
  if (!parsed || !/^postgres(ql)?:$/.test(parsed.protocol)) {
    throw new Error("--db is not a postgres:// URL");
  }
  const client = new Client({
    connectionString: url,
    connectionTimeoutMillis: 10000,
  });
  client.on("error", () => {});
  await client.connect();
  try {
    const ident = client.escapeIdentifier(name);
    if (action === "create") {
      await client.query(`create database ${ident}`);
    } else {
      // A worker killed midway can leave backends behind; they would block the
      // drop. pg_terminate_backend + drop works on servers older than 13 too
      // (no `with (force)`).
      await client.query(
        `select pg_terminate_backend(pid) from pg_stat_activity
          where datname = $1 and pid <> pg_backend_pid()`,
        [name],
      );
      await client.query(`drop database if exists ${ident}`);
    }
  } finally {
    await client.end().catch(() => {});
  }
}

main().catch((e) => {
  const msg = String((e && e.message) || e).split("\n")[0];
  console.error(
    `graphile-worker peer: cannot ${process.argv[2] || "use"} database ${
      process.argv[3] || ""
    }: ${msg}`,
  );
  process.exit(1);
});
