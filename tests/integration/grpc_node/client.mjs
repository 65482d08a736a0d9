// Drives mnemo's gRPC API with @grpc/grpc-js and @grpc/proto-loader, loading
// api/proto/mnemo/v1/mnemo.proto at run time (no generated code).
//
//   node client.mjs HOST:PORT PROTO_FILE SPACE
//
// Creates SPACE, watches it, remembers (unary and client-streaming), recalls by
// vector and by text, reads an error's mnemo-error-code, and prints one JSON
// object with what came back; test_grpc.py checks it.
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const [target, protoFile, space] = process.argv.slice(2);
const def = protoLoader.loadSync(protoFile, {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
});
const { Mnemo } = grpc.loadPackageDefinition(def).mnemo.v1;
const client = new Mnemo(target, grpc.credentials.createInsecure());
const deadline = () => ({ deadline: Date.now() + 20000 });

const unary = (method, req) =>
  new Promise((resolve, reject) =>
    client[method](req, deadline(), (err, resp) => (err ? reject(err) : resolve(resp))),
  );

const out = {};
const space_ = await unary("CreateSpace", { name: space, dim: 3, metric: "METRIC_COSINE" });
out.space = { name: space_.name, dim: space_.dim, metric: space_.metric };

// a watch first: once its head arrived the subscription is live
const watch = client.Watch({ space }, deadline());
const events = [];
const gotEvents = new Promise((resolve, reject) => {
  watch.on("data", (ev) => {
    events.push({ seq: Number(ev.seq), kind: ev.kind, id: ev.id || null });
    if (events.length === 3) resolve();
  });
  watch.on("error", (e) => {
    if (e.code !== grpc.status.CANCELLED) reject(e);
  });
});
await new Promise((resolve) => watch.on("metadata", resolve));

const one = await unary("Remember", {
  space,
  memory: {
    content: "the spare key is under the blue flowerpot",
    embedding: [0.9, 0.1, 0.0],
    tags: ["home"],
    context: { who: ["ann"], session: "s1" },
  },
});
out.remembered = one.id;

const batchIds = await new Promise((resolve, reject) => {
  const call = client.RememberBatch(deadline(), (err, resp) => (err ? reject(err) : resolve(resp.ids)));
  call.write({ space, memory: { content: "the car is parked on level 3", embedding: [0.1, 0.9, 0.0] } });
  call.write({ space, memory: { content: "dinner is at eight", embedding: [0.0, 0.1, 0.9] } });
  call.end();
});
out.batch = batchIds;

const byVector = await unary("Recall", { space, embedding: [1.0, 0.05, 0.0], k: 2 });
out.recall = {
  path: byVector.path,
  ids: byVector.results.map((h) => h.id),
  top: byVector.results[0].memory.content,
  category: byVector.results[0].confidence.category,
};
const byText = await unary("Recall", { space, text: "where is the car parked?", k: 1 });
out.recall_text = { path: byText.path, top: byText.results[0].memory.content };

try {
  await unary("Stats", { space: "no-such-space" });
  out.error = null;
} catch (e) {
  out.error = {
    code: e.code,
    details: e.details,
    mnemo_code: e.metadata.get("mnemo-error-code")[0] || null,
  };
}

await gotEvents;
out.events = events;
watch.cancel();
client.close();
console.log(JSON.stringify(out));
