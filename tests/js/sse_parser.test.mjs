// SSEParser against the shared decoder vectors (../shared/reference/vectors/parser_vectors.json),
// the same cases the Python decoder passes, at every chunking the vectors' semantics demand.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

import { SSEParser } from "../../src/sserelay/web/static/sserelay.js";

const VECTORS_PATH = fileURLToPath(
  new URL("../../../shared/reference/vectors/parser_vectors.json", import.meta.url),
);
const RANDOM_SPLITS_PER_CASE = 25;

function loadVectors() {
  if (!existsSync(VECTORS_PATH)) {
    throw new Error(
      `decoder vectors not found at ${VECTORS_PATH}: ` +
        "the tests expect the shared/ checkout beside the repository (<repo>/../shared)",
    );
  }
  return JSON.parse(readFileSync(VECTORS_PATH, "utf8"));
}

function hexToBytes(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function inputBytes(vector) {
  return vector.input_hex !== undefined
    ? hexToBytes(vector.input_hex)
    : new TextEncoder().encode(vector.input);
}

// Deterministic PRNG (mulberry32) so a failing random split can be reproduced from its seed.
function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomChunks(bytes, random) {
  const chunks = [];
  let pos = 0;
  while (pos < bytes.length) {
    const size = 1 + Math.floor(random() * 16);
    chunks.push(bytes.subarray(pos, pos + size));
    pos += size;
  }
  return chunks;
}

function decode(chunks) {
  const parser = new SSEParser();
  const events = [];
  for (const chunk of chunks) {
    for (const { event, data, id } of parser.feed(chunk)) events.push({ event, data, id });
  }
  parser.close();
  return { events, retry: parser.retry, lastEventId: parser.lastEventId };
}

function assertDecodes(vector, chunks, how) {
  const got = decode(chunks);
  const label = `${vector.name} (${how})`;
  assert.deepEqual(got.events, vector.expected, `${label}: events`);
  assert.equal(got.retry, vector.expected_retry, `${label}: retry`);
  assert.equal(got.lastEventId, vector.expected_last_event_id, `${label}: lastEventId`);
}

const vectors = loadVectors();

test("the decoder vectors file holds cases", () => {
  assert.ok(Array.isArray(vectors.cases) && vectors.cases.length > 0, `no cases in ${VECTORS_PATH}`);
});

for (const vector of vectors.cases) {
  const bytes = inputBytes(vector);

  test(`vector ${vector.name} decodes per WHATWG whole, byte by byte and at every 2-way split`, () => {
    assertDecodes(vector, [bytes], "whole");
    assertDecodes(
      vector,
      Array.from(bytes, (_, i) => bytes.subarray(i, i + 1)),
      "byte by byte",
    );
    for (let split = 1; split < bytes.length; split += 1) {
      assertDecodes(vector, [bytes.subarray(0, split), bytes.subarray(split)], `split at byte ${split}`);
    }
  });

  if (vector.chunks !== undefined) {
    test(`vector ${vector.name} decodes with its own chunk boundaries, as bytes and as strings`, () => {
      const encoder = new TextEncoder();
      assertDecodes(vector, vector.chunks.map((chunk) => encoder.encode(chunk)), "given chunks as bytes");
      assertDecodes(vector, vector.chunks, "given chunks as strings");
    });
  }

  test(`vector ${vector.name} decodes the same at seeded random splits`, () => {
    for (let seed = 1; seed <= RANDOM_SPLITS_PER_CASE; seed += 1) {
      assertDecodes(vector, randomChunks(bytes, mulberry32(seed)), `random split, seed ${seed}`);
    }
  });
}

// limit_cases: a decoder must bound its buffers (sse-rules.md, "Decoding").

function limitCase(name) {
  const found = (vectors.limit_cases ?? []).find((c) => c.name === name);
  assert.ok(found, `limit case ${name} missing from ${VECTORS_PATH}`);
  return found.input_generator;
}

function feedInPieces(parser, text, pieceLength = 64 * 1024) {
  const events = [];
  for (let pos = 0; pos < text.length; pos += pieceLength) {
    events.push(...parser.feed(text.slice(pos, pos + pieceLength)));
  }
  return events;
}

test("an endless line without a newline throws a clear error at maxLineLength (limit unterminated-huge-line)", () => {
  const gen = limitCase("unterminated-huge-line");
  const parser = new SSEParser();
  assert.throws(
    () => feedInPieces(parser, gen.prefix + gen.repeat.repeat(gen.count)),
    /line longer than maxLineLength \(1048576 characters\)/,
  );
  assert.throws(() => parser.feed("\n\n"), /maxLineLength/, "a failed parser keeps failing");
});

test("terminated data lines without a blank line throw at maxDataLength (limit many-data-lines-no-blank)", () => {
  const gen = limitCase("many-data-lines-no-blank");
  const parser = new SSEParser();
  assert.throws(
    () => feedInPieces(parser, gen.line.repeat(gen.repeat_lines)),
    /data longer than maxDataLength/,
  );
});

test("a huge event is delivered whole when the limits are raised above it (limit huge-event-ok)", () => {
  const gen = limitCase("huge-event-ok");
  const parser = new SSEParser({ maxLineLength: 8 * 1024 * 1024, maxDataLength: 8 * 1024 * 1024 });
  const events = feedInPieces(parser, gen.prefix + gen.repeat.repeat(gen.count) + gen.suffix);
  assert.equal(events.length, 1);
  assert.equal(events[0].data.length, gen.count);
  assert.equal(events[0].data, gen.repeat.repeat(gen.count));
});

test("a line exactly maxLineLength long is accepted; one character more throws", () => {
  const ok = new SSEParser({ maxLineLength: 10 });
  assert.deepEqual(ok.feed("data: 1234\n\n").map((e) => e.data), ["1234"]);
  const tooLong = new SSEParser({ maxLineLength: 10 });
  assert.throws(() => tooLong.feed("data: 12345\n\n"), /maxLineLength \(10 characters\)/);
});

// Behaviour beyond the vectors: what stream() relies on across reconnects.

test("close() discards the unterminated event but keeps lastEventId and retry for the next connection", () => {
  const parser = new SSEParser();
  parser.feed("retry: 250\nid: 7\ndata: seven\n\nid: 8\ndata: partial");
  parser.close();
  assert.equal(parser.lastEventId, "7");
  assert.equal(parser.retry, 250);
  assert.deepEqual(parser.feed("data: next\n\n"), [{ event: "message", data: "next", id: "7", retry: 250 }]);
});

test("exactly one leading BOM is stripped: a second one makes the first field name unknown", () => {
  const parser = new SSEParser();
  // BOM, BOM, "data: a", LF LF, "data: b", LF LF
  const events = parser.feed(hexToBytes("efbbbfefbbbf646174613a20610a0a646174613a20620a0a"));
  assert.deepEqual(events.map((e) => e.data), ["b"]);
});

test("close() starts a new stream whose own leading BOM is stripped", () => {
  const parser = new SSEParser();
  parser.feed(hexToBytes("efbbbf646174613a20610a0a")); // BOM, "data: a", LF LF
  parser.close();
  const events = parser.feed(hexToBytes("efbbbf646174613a20620a0a")); // BOM, "data: b", LF LF
  assert.deepEqual(events.map((e) => e.data), ["b"]);
});

test("an initial lastEventId is sticky until the server sends an id", () => {
  const parser = new SSEParser({ lastEventId: "s1:4" });
  assert.equal(parser.lastEventId, "s1:4");
  assert.deepEqual(parser.feed("data: x\n\nid: s1:5\ndata: y\n\n").map((e) => e.id), ["s1:4", "s1:5"]);
});

test("each event reports the reconnection time in force when it was dispatched", () => {
  const parser = new SSEParser();
  const events = parser.feed("data: a\n\nretry: 900\n\ndata: b\n\n");
  assert.deepEqual(events.map((e) => e.retry), [null, 900]);
});
