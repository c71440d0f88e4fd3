// stream() against a real node:http server on loopback, with Node's real fetch; follow() against
// a scripted EventSource (Node 20 has none).
import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";

import { follow, stream } from "../../src/sserelay/web/static/sserelay.js";

const TIMEOUT = { timeout: 20_000 }; // a hang fails the test instead of stalling the suite
const TOKENS = Array.from({ length: 6 }, (_, i) => ({ id: `s1:${i + 1}`, data: `tok${i + 1}` }));
const DONE = "data: [DONE]\n\n";

function encode(events) {
  return events.map(({ id, data }) => `id: ${id}\ndata: ${data}\n\n`).join("");
}

/** Tokens strictly after the Last-Event-ID the request carries, as an honest server resumes. */
function tokensAfter(request) {
  const last = request.headers["last-event-id"];
  return last === undefined ? TOKENS : TOKENS.slice(TOKENS.findIndex((t) => t.id === last) + 1);
}

function asYielded(tokens) {
  return tokens.map(({ id, data }) => ({ event: "message", data, id }));
}

async function startServer(t, handler) {
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const request = {
      index: requests.length,
      method: req.method,
      headers: req.headers,
      body: Buffer.concat(chunks).toString("utf8"),
      closed: new Promise((resolve) => res.on("close", resolve)),
    };
    requests.push(request);
    handler(request, res);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${server.address().port}/v1/streams/s1`, requests };
}

function startEventStream(res) {
  res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store" });
}

/** Write `text`, then cut the TCP connection without ending the chunked body. */
function writeThenDrop(res, text) {
  startEventStream(res);
  res.write(text, () => res.socket.destroy());
}

function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

async function collect(iterable) {
  const events = [];
  for await (const event of iterable) events.push(event);
  return events;
}

test("a dropped POST stream resumes with Last-Event-ID and the same body, yielding every event once", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    if (request.index === 0) {
      // Three whole events, then half of the fourth: the half must be discarded, not resumed past.
      writeThenDrop(res, encode(TOKENS.slice(0, 3)) + "id: s1:4\ndata: to");
    } else {
      startEventStream(res);
      res.end(encode(tokensAfter(request)) + DONE);
    }
  });
  const body = { model: "demo", messages: [{ role: "user", content: "hi" }] };

  const events = await collect(
    stream(server.url, { body, headers: { Authorization: "Bearer t0ken" }, backoffMs: 1 }),
  );

  assert.deepEqual(events, asYielded(TOKENS));
  assert.equal(server.requests.length, 2);
  const [first, second] = server.requests;
  assert.equal(first.headers["last-event-id"], undefined);
  assert.equal(second.headers["last-event-id"], "s1:3");
  for (const request of server.requests) {
    assert.equal(request.method, "POST");
    assert.deepEqual(JSON.parse(request.body), body);
    assert.equal(request.headers["content-type"], "application/json");
    assert.equal(request.headers.accept, "text/event-stream");
    assert.equal(request.headers.authorization, "Bearer t0ken");
  }
});

test("a GET stream whose body ends cleanly without the end marker reconnects and stops at event: end", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    startEventStream(res);
    if (request.index === 0) res.end(encode(TOKENS.slice(0, 2)));
    else res.end(encode(tokensAfter(request)) + "event: end\ndata: {}\n\n");
  });
  const reconnects = [];

  const events = await collect(
    stream(server.url, { backoffMs: 1, onReconnect: (attempt, delayMs) => reconnects.push([attempt, delayMs]) }),
  );

  assert.deepEqual(events, asYielded(TOKENS), "the end event is not yielded");
  assert.deepEqual(server.requests.map((r) => [r.method, r.body, r.headers["last-event-id"]]), [
    ["GET", "", undefined],
    ["GET", "", "s1:2"],
  ]);
  assert.deepEqual(reconnects, [[1, 1]]);
});

test("the [DONE] end marker ends the iteration without being yielded and without a second request", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    startEventStream(res);
    // The connection stays open after [DONE]: ending must not depend on the server closing it.
    res.write(": keep-alive\n\n" + encode(TOKENS) + DONE);
  });

  const events = await collect(stream(server.url, { body: {}, backoffMs: 1 }));

  assert.deepEqual(events, asYielded(TOKENS));
  assert.equal(server.requests.length, 1);
  await server.requests[0].closed; // the client released the connection
});

test("an event named done ends the iteration", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    startEventStream(res);
    res.end(encode(TOKENS.slice(0, 1)) + "event: done\ndata: ok\n\n" + encode(TOKENS.slice(1)));
  });
  assert.deepEqual(await collect(stream(server.url, { backoffMs: 1 })), asYielded(TOKENS.slice(0, 1)));
});

test("the server's retry: field is the base reconnect delay", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    if (request.index === 0) writeThenDrop(res, "retry: 7\n" + encode(TOKENS.slice(0, 1)));
    else {
      startEventStream(res);
      res.end(encode(tokensAfter(request)) + DONE);
    }
  });
  const reconnects = [];

  const events = await collect(
    stream(server.url, { backoffMs: 1, onReconnect: (attempt, delayMs) => reconnects.push([attempt, delayMs]) }),
  );

  assert.deepEqual(events, asYielded(TOKENS));
  assert.deepEqual(reconnects, [[1, 7]]);
});

test("event: error with a JSON payload throws its message and code after the events before it", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    startEventStream(res);
    const error = { error: { message: "upstream overloaded", code: "upstream_error", type: "server_error" } };
    res.end(encode(TOKENS.slice(0, 2)) + `event: error\ndata: ${JSON.stringify(error)}\n\n` + DONE);
  });
  const events = [];

  await assert.rejects(
    async () => {
      for await (const event of stream(server.url, { body: {}, backoffMs: 1 })) events.push(event);
    },
    (error) => {
      assert.equal(error.message, "upstream overloaded");
      assert.equal(error.code, "upstream_error");
      return true;
    },
  );
  assert.deepEqual(events, asYielded(TOKENS.slice(0, 2)));
  assert.equal(server.requests.length, 1, "a typed ending is not retried");
});

test("event: error with plain-text data throws that text with a null code", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    startEventStream(res);
    res.end("event: error\ndata: the model is unavailable\n\n");
  });
  await assert.rejects(collect(stream(server.url, { backoffMs: 1 })), (error) => {
    assert.equal(error.message, "the model is unavailable");
    assert.equal(error.code, null);
    return true;
  });
});

test("HTTP 204 on the first request ends the iteration quietly", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    res.writeHead(204);
    res.end();
  });
  assert.deepEqual(await collect(stream(server.url, { body: {}, backoffMs: 1 })), []);
  assert.equal(server.requests.length, 1);
});

test("HTTP 204 on a reconnect ends the iteration quietly after the events already received", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    if (request.index === 0) writeThenDrop(res, encode(TOKENS.slice(0, 2)));
    else {
      res.writeHead(204);
      res.end();
    }
  });
  assert.deepEqual(await collect(stream(server.url, { backoffMs: 1 })), asYielded(TOKENS.slice(0, 2)));
  assert.equal(server.requests.length, 2);
});

test("HTTP 401 throws with the status and the server's message, and is not retried", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    sendJson(res, 401, { error: { message: "Invalid API key", type: "invalid_request_error", code: "invalid_api_key" } });
  });
  await assert.rejects(collect(stream(server.url, { body: {}, backoffMs: 1 })), (error) => {
    assert.equal(error.status, 401);
    assert.equal(error.message, "Invalid API key");
    assert.equal(error.code, "invalid_api_key");
    return true;
  });
  assert.equal(server.requests.length, 1);
});

test("HTTP 429 without Retry-After throws and is not retried", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    sendJson(res, 429, { error: { message: "slow down" } });
  });
  await assert.rejects(collect(stream(server.url, { backoffMs: 1 })), { status: 429, message: "slow down" });
  assert.equal(server.requests.length, 1);
});

test("HTTP 429 with Retry-After and HTTP 503 are retried, waiting Retry-After", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    if (request.index === 0) sendJson(res, 429, { error: { message: "slow down" } }, { "Retry-After": "0" });
    else if (request.index === 1) sendJson(res, 503, { error: { message: "restarting" } });
    else {
      startEventStream(res);
      res.end(encode(TOKENS) + DONE);
    }
  });
  const reconnects = [];

  const events = await collect(
    stream(server.url, { backoffMs: 1, onReconnect: (attempt, delayMs) => reconnects.push([attempt, delayMs]) }),
  );

  assert.deepEqual(events, asYielded(TOKENS));
  assert.deepEqual(reconnects, [[1, 0], [2, 2]]);
});

test("a 200 response that is not text/event-stream throws without retrying", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    sendJson(res, 200, { choices: [] });
  });
  await assert.rejects(collect(stream(server.url, { backoffMs: 1 })), /expected text\/event-stream/);
  assert.equal(server.requests.length, 1);
});

test("retries are bounded: a server that always drops fails after maxRetries reconnects", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    res.socket.destroy();
  });
  const reconnects = [];

  await assert.rejects(
    collect(
      stream(server.url, {
        body: {},
        maxRetries: 3,
        backoffMs: 1,
        onReconnect: (attempt, delayMs) => reconnects.push([attempt, delayMs]),
      }),
    ),
    /failed after 3 reconnect attempts/,
  );
  assert.equal(server.requests.length, 4);
  assert.deepEqual(reconnects, [[1, 1], [2, 2], [3, 4]], "the delay doubles on each consecutive failure");
});

test("heartbeat comments are not progress: a stream of only comments still exhausts the retries", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    writeThenDrop(res, ": ping\n\n: ping\n\n");
  });
  await assert.rejects(collect(stream(server.url, { maxRetries: 2, backoffMs: 1 })), /failed after 2/);
  assert.equal(server.requests.length, 3);
});

test("each received event resets the retry budget, so a long stream survives more drops than maxRetries", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    const rest = tokensAfter(request);
    if (rest.length > 0) writeThenDrop(res, encode(rest.slice(0, 1)));
    else {
      startEventStream(res);
      res.end(DONE);
    }
  });

  const events = await collect(stream(server.url, { body: {}, maxRetries: 1, backoffMs: 1 }));

  assert.deepEqual(events, asYielded(TOKENS));
  assert.equal(server.requests.length, TOKENS.length + 1);
  assert.deepEqual(
    server.requests.map((r) => r.headers["last-event-id"]),
    [undefined, ...TOKENS.map((token) => token.id)],
  );
});

test("a stream without ids that breaks after yielding throws instead of repeating its text", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    writeThenDrop(res, "data: hello\n\n");
  });
  await assert.rejects(collect(stream(server.url, { body: {}, backoffMs: 1 })), /cannot be resumed/);
  assert.equal(server.requests.length, 1);
});

test("the lastEventId option resumes from the first request on", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    startEventStream(res);
    res.end(encode(tokensAfter(request)) + DONE);
  });
  const events = await collect(stream(server.url, { lastEventId: "s1:4", backoffMs: 1 }));
  assert.deepEqual(events, asYielded(TOKENS.slice(4)));
  assert.equal(server.requests[0].headers["last-event-id"], "s1:4");
});

test("aborting the signal mid-stream rejects with AbortError and closes the connection", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    startEventStream(res);
    res.write(encode(TOKENS.slice(0, 1))); // then hold the connection open
  });
  const controller = new AbortController();
  const events = [];

  await assert.rejects(
    async () => {
      for await (const event of stream(server.url, { body: {}, signal: controller.signal, backoffMs: 1 })) {
        events.push(event);
        controller.abort();
      }
    },
    { name: "AbortError" },
  );
  assert.deepEqual(events, asYielded(TOKENS.slice(0, 1)));
  await server.requests[0].closed;
  assert.equal(server.requests.length, 1);
});

test("aborting while the body is being read stops the reader", TIMEOUT, async (t) => {
  const controller = new AbortController();
  const server = await startServer(t, (request, res) => {
    startEventStream(res);
    res.write(": waiting for the first token\n\n", () => controller.abort());
  });
  await assert.rejects(collect(stream(server.url, { signal: controller.signal, backoffMs: 1 })), {
    name: "AbortError",
  });
  await server.requests[0].closed;
});

test("aborting during the reconnect wait stops reconnecting", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    res.socket.destroy();
  });
  const controller = new AbortController();

  await assert.rejects(
    collect(
      stream(server.url, {
        signal: controller.signal,
        backoffMs: 60_000,
        onReconnect: () => controller.abort(),
      }),
    ),
    { name: "AbortError" },
  );
  assert.equal(server.requests.length, 1);
});

test("breaking out of the loop early closes the connection", TIMEOUT, async (t) => {
  const server = await startServer(t, (request, res) => {
    startEventStream(res);
    res.write(encode(TOKENS.slice(0, 2)));
  });
  for await (const event of stream(server.url, { backoffMs: 1 })) {
    assert.equal(event.data, "tok1");
    break;
  }
  await server.requests[0].closed;
  assert.equal(server.requests.length, 1);
});

// follow(): EventSource is scripted, since Node 20 has none.

function scriptedEventSource() {
  const created = [];
  class ScriptedEventSource {
    constructor(url, init) {
      this.url = url;
      this.init = init;
      this.readyState = 1;
      this.listeners = new Map();
      created.push(this);
    }
    addEventListener(type, listener) {
      if (!this.listeners.has(type)) this.listeners.set(type, []);
      this.listeners.get(type).push(listener);
    }
    close() {
      this.readyState = 2;
    }
    emit(type, fields = {}) {
      for (const listener of this.listeners.get(type) ?? []) listener({ type, ...fields });
    }
  }
  return { EventSource: ScriptedEventSource, created };
}

test("follow delivers messages, then closes the EventSource on [DONE] and calls onEnd", () => {
  const { EventSource, created } = scriptedEventSource();
  const messages = [];
  let ended = 0;
  follow("/v1/streams/s1", {
    EventSource,
    withCredentials: true,
    onMessage: (event) => messages.push(event.data),
    onEnd: () => (ended += 1),
  });
  const [source] = created;
  assert.deepEqual([source.url, source.init], ["/v1/streams/s1", { withCredentials: true }]);

  source.emit("message", { data: "a", lastEventId: "s1:1" });
  source.emit("message", { data: "[DONE]" });
  source.emit("message", { data: "late" });

  assert.deepEqual(messages, ["a"]);
  assert.equal(ended, 1);
  assert.equal(source.readyState, 2);
});

test("follow forwards the named events it is asked for and ends on an end event", () => {
  const { EventSource, created } = scriptedEventSource();
  const messages = [];
  let ended = 0;
  follow("/s", {
    EventSource,
    events: ["usage"],
    onMessage: (event) => messages.push([event.type, event.data]),
    onEnd: () => (ended += 1),
  });
  const [source] = created;

  source.emit("usage", { data: "{}" });
  source.emit("end", { data: "{}" });

  assert.deepEqual(messages, [["usage", "{}"]]);
  assert.equal(ended, 1);
  assert.equal(source.readyState, 2);
});

test("follow surfaces a server-sent event: error through onError and closes", () => {
  const { EventSource, created } = scriptedEventSource();
  const errors = [];
  follow("/s", { EventSource, onError: (error) => errors.push(error) });
  const [source] = created;

  source.emit("error", { data: JSON.stringify({ error: { message: "quota exceeded", code: "quota" } }) });

  assert.equal(errors.length, 1);
  assert.equal(errors[0].message, "quota exceeded");
  assert.equal(errors[0].code, "quota");
  assert.equal(source.readyState, 2);
});

test("follow lets EventSource reconnect after a transport error and reports only a final close", () => {
  const { EventSource, created } = scriptedEventSource();
  const errors = [];
  follow("/s", { EventSource, onError: (error) => errors.push(error) });
  const [source] = created;

  source.readyState = 0; // CONNECTING: the browser retries by itself with Last-Event-ID
  source.emit("error");
  assert.deepEqual(errors, []);

  source.readyState = 2; // CLOSED: the browser gave up (non-200, wrong type, or 204)
  source.emit("error");
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /will not reconnect/);
});

test("follow's close() closes the EventSource", () => {
  const { EventSource, created } = scriptedEventSource();
  const handle = follow("/s", { EventSource });
  handle.close();
  assert.equal(created[0].readyState, 2);
});
