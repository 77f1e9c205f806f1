// Interop with the official TypeScript SDK client: connect over stdio (or
// with --http, over Streamable HTTP to `fleetmcp --http`), page tools/list,
// call every read tool (the SDK validates structuredContent against each
// outputSchema), ping, and check the annotations contract.
// Usage: node sdk-client.mjs path/to/fleetmcp [--http]   (FM_CONFIG: optional config)
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const server = process.argv[2] || "build/fleetmcp";
const overHttp = process.argv.includes("--http");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fm-sdk-"));
let passed = 0, failed = 0;
const check = (cond, what) => { if (cond) passed++; else { failed++; console.log("FAIL:", what); } };

// Arguments for read tools that need some; every other read tool is called
// with {}.  Node names come from the stack when it is up.
const node = (process.env.FM_NODES || "gpu-a01").split(" ")[0];
const sampleArgs = {
  slurm_node: { node },
  gpu_health: { node },
  grafana_query: { promql: "up" },
  node_diag_bundle: { node },
  diagnose: { signals: { node, kernel_log: ["NVRM: Xid (PCI:0000:18:00): 79, pid=123, GPU has fallen off the bus."] } },
  runbook_get: { id: "rb-gpu-fallen-off-bus" },
  ticket_get: { key: "FM-1" },
  plan_get: { plan_id: "pl-0000000000000000" },
  workflow_get: { workflow_id: "wf-0000000000000000" },
};

async function main() {
  // A small page size so the client really pages.
  let config = process.env.FM_CONFIG;
  if (!config) {
    config = path.join(tmp, "sdk.yaml");
    fs.writeFileSync(config, "limits:\n  tools_page_size: 3\n");
  }
  const env = { ...process.env, FLEETMCP_DB: path.join(tmp, "sdk.db") };
  let transport, child;
  if (overHttp) {
    // Port 0: the server picks a free port and names it on stderr.
    child = spawn(server, ["--config", config, "--http", "127.0.0.1:0"], { env, stdio: ["ignore", "ignore", "pipe"] });
    const url = await new Promise((resolve, reject) => {
      let err = "";
      const timer = setTimeout(() => reject(new Error(`no listen line within 10 s: ${err}`)), 10000);
      child.stderr.on("data", (d) => {
        err += d;
        const m = err.match(/serving MCP on (http:\/\/\S+)/);
        if (m) { clearTimeout(timer); resolve(m[1]); }
      });
      child.on("exit", (code) => reject(new Error(`server exited ${code}: ${err}`)));
    });
    transport = new StreamableHTTPClientTransport(new URL(url));
  } else {
    transport = new StdioClientTransport({ command: server, args: ["--config", config], env, stderr: "pipe" });
  }
  const client = new Client({ name: "fleetmcp-sdk-interop", version: "1.0.0" });
  await client.connect(transport);
  check(client.getServerVersion()?.name === "fleetmcp", "serverInfo.name");
  check(client.getServerCapabilities()?.tools !== undefined, "tools capability");

  const tools = [];
  let cursor, pages = 0;
  do {
    const res = await client.listTools(cursor ? { cursor } : {});
    tools.push(...res.tools);
    cursor = res.nextCursor;
    pages++;
  } while (cursor && pages < 100);
  check(tools.length >= 4, `listed ${tools.length} tools`);
  if (!process.env.FM_CONFIG) check(pages > 1, `paged tools/list (${pages} pages)`);
  check(new Set(tools.map((t) => t.name)).size === tools.length, "no tool listed twice");

  for (const t of tools) {
    const a = t.annotations || {};
    // Hints equal to the spec's defaults are left out; what is given differs.
    const dflt = { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true };
    check(Object.entries(dflt).every(([k, d]) => a[k] === undefined || (typeof a[k] === "boolean" && a[k] !== d)),
      `${t.name}: annotations given only where they differ from the defaults`);
    check((a.readOnlyHint === true) === (t._meta?.autonomy === "read"), `${t.name}: readOnlyHint matches its autonomy`);
    check(typeof t._meta?.autonomy === "string", `${t.name} declares autonomy in _meta`);
    check(t.outputSchema?.type === "object", `${t.name} has an outputSchema`);
  }

  for (const t of tools.filter((x) => x._meta?.autonomy === "read")) {
    const args = sampleArgs[t.name] || {};
    let res;
    try {
      res = await client.callTool({ name: t.name, arguments: args });
    } catch (e) {
      check(false, `${t.name}: SDK rejected the result: ${e.message}`);
      continue;
    }
    const text = res.content?.[0]?.text || "";
    if (res.isError) {
      // Acceptable only when a backend is not configured or the sample
      // object does not exist; anything else is a failure.
      check(/^(NOTCONFIGURED|NOTFOUND|UNAVAILABLE):/.test(text), `${t.name} errored: ${text}`);
    } else {
      check(res.structuredContent && typeof res.structuredContent === "object",
        `${t.name} returned structuredContent`);
      check(JSON.stringify(JSON.parse(text)) === JSON.stringify(res.structuredContent),
        `${t.name} text mirrors structuredContent`);
    }
  }

  const pong = await client.ping();
  check(pong && typeof pong === "object", "ping");
  await client.close();
  if (child) {
    // SIGTERM is a graceful stop: the server exits 0 on its own.
    const code = await new Promise((resolve) => {
      const timer = setTimeout(() => { child.kill("SIGKILL"); resolve("killed after 10 s"); }, 10000);
      child.on("exit", (c) => { clearTimeout(timer); resolve(c); });
      child.kill("SIGTERM");
    });
    check(code === 0, `server exits 0 on SIGTERM (got ${code})`);
  }
}

main().then(() => {
  console.log(`sdk-interop: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}).catch((e) => {
  console.log("FAIL:", e.stack || e.message);
  console.log(`sdk-interop: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
