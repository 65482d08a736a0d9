// Drives mnemo's MCP endpoint with the official TypeScript SDK client
// (@modelcontextprotocol/sdk, Streamable HTTP transport), as an agent would:
// connect, list the tools, remember a text-only memory, recall it by text alone,
// check a tool failure and a protocol error, ping, end the session.
//
//   node client.mjs http://127.0.0.1:PORT/mcp SPACE
//
// Prints one JSON line with what it saw; exits 1 on the first mismatch.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, space] = process.argv.slice(2);
if (!url || !space) {
  console.error("usage: node client.mjs MCP_URL SPACE");
  process.exit(2);
}

function fail(msg, detail) {
  console.error("FAIL: " + msg + (detail === undefined ? "" : "\n" + JSON.stringify(detail, null, 2)));
  process.exit(1);
}

// a hung server must not hang the test
setTimeout(() => fail("timed out after 60 s"), 60000).unref();

const REQUIRED_TOOLS = ["remember", "recall", "forget", "list_spaces", "consolidate", "recognize",
  "reminisce"];
const CONTENT = "The spare key is under the blue flowerpot by the back door";

async function main() {
  const client = new Client({ name: "mnemo-integration-test", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);

  if (!transport.sessionId) fail("no Mcp-Session-Id after initialize");
  const info = client.getServerVersion();
  if (!info || info.name !== "mnemo") fail("serverInfo.name is not mnemo", info);
  if (!client.getServerCapabilities()?.tools) fail("no tools capability", client.getServerCapabilities());

  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  for (const n of REQUIRED_TOOLS) {
    if (!names.includes(n)) fail("tool missing: " + n, names);
  }
  for (const t of tools) {
    if (t.inputSchema?.type !== "object") fail("tool without an object inputSchema: " + t.name, t);
  }

  // text only: no embedding anywhere; the space is created by the first remember
  const r1 = await client.callTool({ name: "remember", arguments: { space, content: CONTENT, tags: ["home"] } });
  if (r1.isError) fail("remember failed", r1);
  const id = r1.structuredContent?.id;
  if (typeof id !== "string" || id.length !== 36) fail("remember returned no id", r1);
  if (!r1.content?.some((c) => c.type === "text" && c.text.includes(id))) fail("remember summary lacks the id", r1);

  const r2 = await client.callTool({ name: "recall", arguments: { space, text: "where is the spare key?" } });
  if (r2.isError) fail("recall failed", r2);
  const hits = r2.structuredContent?.results;
  if (!Array.isArray(hits) || hits.length < 1) fail("recall returned nothing", r2);
  if (hits[0].memory?.id !== id || hits[0].memory?.content !== CONTENT) fail("recall did not bring the memory back", hits[0]);
  if (!(hits[0].confidence?.value > 0)) fail("recall result without a confidence", hits[0]);
  if (!r2.content?.some((c) => c.type === "text" && c.text.includes("blue flowerpot"))) fail("recall summary lacks the content", r2);

  // a tool failure is a result with isError, not an exception
  const r3 = await client.callTool({ name: "recall", arguments: { space: "no-such-space-mcp", text: "x" } });
  if (!r3.isError || r3.structuredContent?.error?.code !== "space_not_found") fail("recall of a missing space is not an isError result", r3);

  // an unknown tool is a protocol error (-32602)
  let code = null;
  try {
    await client.callTool({ name: "no_such_tool", arguments: {} });
  } catch (e) {
    code = e.code;
  }
  if (code !== -32602) fail("unknown tool did not give -32602, got " + code);

  await client.ping();
  const protocolVersion = transport.protocolVersion;
  await transport.terminateSession();
  await client.close();
  console.log(JSON.stringify({ ok: true, protocolVersion, tools: names, id }));
}

main().catch((e) => fail("exception: " + (e && e.stack ? e.stack : e)));
