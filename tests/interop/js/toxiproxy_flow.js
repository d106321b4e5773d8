// toxiproxy-node-client (npm, not written here) drives `ncat-trio toxiproxy` through its
// normal flow.  Usage: node toxiproxy_flow.js API_URL ECHO_PORT
// Prints one line per step; exits 0 only if every check held.
"use strict";

const assert = require("node:assert/strict");
const net = require("node:net");
const { Toxiproxy, ToxiproxyError } = require("toxiproxy-node-client");

const [apiUrl, echoPort] = process.argv.slice(2);
const upstream = `127.0.0.1:${echoPort}`;

function portOf(proxy) {
  return Number(proxy.listen.split(":").pop());
}

function connect(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}

// Send `data`, wait until `expect` bytes come back; resolves with {data, ms}.
// `ended` and `error` report how the connection ended if it did before that.
function exchange(socket, data, expect, waitEnd = false) {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    let got = Buffer.alloc(0);
    const done = (how) => {
      socket.removeAllListeners("data");
      resolve({ data: got, ms: Number(process.hrtime.bigint() - start) / 1e6, how });
    };
    socket.on("data", (chunk) => {
      got = Buffer.concat([got, chunk]);
      if (!waitEnd && got.length >= expect) done("data");
    });
    socket.once("end", () => done("end"));
    socket.once("error", (err) => done(err.code));
    socket.write(data);
  });
}

async function roundTrip(port) {
  const socket = await connect(port);
  const result = await exchange(socket, "ping", 4);
  socket.destroy();
  assert.equal(result.data.toString(), "ping");
  return result.ms;
}

function step(name) {
  console.log(`ok ${name}`);
}

async function main() {
  const toxiproxy = new Toxiproxy(apiUrl);
  const version = JSON.parse(await toxiproxy.getVersion());
  assert.match(version.version, /^2\./);
  step("version");

  const proxy = await toxiproxy.createProxy({ name: "node_echo", listen: "127.0.0.1:0", upstream });
  assert.equal(proxy.enabled, true);
  assert.notEqual(portOf(proxy), 0);
  const port = portOf(proxy);
  assert.ok((await roundTrip(port)) < 1000);
  step("create proxy, talk through it");

  const latency = await proxy.addToxic({
    type: "latency", stream: "downstream", toxicity: 1, attributes: { latency: 300, jitter: 0 },
  });
  assert.equal(latency.name, "latency_downstream");
  assert.ok((await roundTrip(port)) >= 300);
  step("latency 300 ms");

  const slower = await latency.update({ attributes: { latency: 600 } });
  assert.equal(slower.attributes.latency, 600);
  assert.equal((await proxy.getToxic("latency_downstream")).attributes.latency, 600);
  assert.ok((await roundTrip(port)) >= 600);
  step("update toxic to 600 ms");

  await slower.remove();
  assert.ok((await roundTrip(port)) < 600);
  step("remove toxic");

  const reset = await proxy.addToxic({
    type: "reset_peer", stream: "upstream", toxicity: 1, attributes: { timeout: 0 },
  });
  let socket = await connect(port);
  let result = await exchange(socket, "ping", 4, true);
  assert.equal(result.how, "ECONNRESET");
  socket.destroy();
  await reset.remove();
  step("reset_peer resets");

  const limit = await proxy.addToxic({
    type: "limit_data", stream: "downstream", toxicity: 1, attributes: { bytes: 5 },
  });
  socket = await connect(port);
  result = await exchange(socket, "0123456789", 10, true);
  assert.equal(result.data.toString(), "01234");
  assert.equal(result.how, "end");
  socket.destroy();
  await limit.remove();
  step("limit_data closes after 5 bytes");

  const timeout = await proxy.addToxic({
    type: "timeout", stream: "downstream", toxicity: 1, attributes: { timeout: 300 },
  });
  socket = await connect(port);
  result = await exchange(socket, "ping", 4, true);
  assert.equal(result.data.length, 0);
  assert.ok(result.ms >= 300, `closed after ${result.ms} ms`);
  socket.destroy();
  await timeout.remove();
  step("timeout holds data, closes after 300 ms");

  const down = await proxy.update({ ...proxy.toJson(), enabled: false });
  assert.equal(down.enabled, false);
  await assert.rejects(connect(port), { code: "ECONNREFUSED" });
  const up = await proxy.update({ ...proxy.toJson(), enabled: true });
  assert.equal(up.listen, proxy.listen);
  assert.ok((await roundTrip(port)) < 1000);
  step("update enabled false/true");

  await proxy.addToxic({ type: "latency", toxicity: 1, attributes: { latency: 1000, jitter: 0 } });
  await toxiproxy.reset();
  const all = await toxiproxy.getAll();
  assert.deepEqual(Object.keys(all), ["node_echo"]);
  const listed = await toxiproxy.getApi().get(`${apiUrl}/proxies/node_echo/toxics`);
  assert.deepEqual(listed.data, []);
  step("reset removes toxics");

  const populated = await toxiproxy.populate([
    { name: "node_pop", listen: "127.0.0.1:0", upstream, enabled: true },
  ]);
  assert.ok(portOf(populated.node_pop) > 0);
  assert.ok((await roundTrip(portOf(populated.node_pop))) < 1000);
  step("populate");

  await proxy.remove();
  await populated.node_pop.remove();
  await assert.rejects(toxiproxy.get("node_echo"), ToxiproxyError);
  await assert.rejects(connect(port), { code: "ECONNREFUSED" });
  assert.deepEqual(await toxiproxy.getAll(), {});
  step("delete");
}

main().then(
  () => console.log("all steps passed"),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
