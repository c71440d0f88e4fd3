// sserelay.js: a browser client for sserelay's server-sent event streams.
// An ES module with no build step and no dependencies:
//   import { stream, follow, SSEParser } from "/static/sserelay.js";
//
// Decoding follows the WHATWG HTML Living Standard, section "Server-sent events"
// (https://html.spec.whatwg.org/multipage/server-sent-events.html), cited below as
// "WHATWG SSE". The same rules, and the same test vectors, as sserelay's Python decoder.

const DEFAULT_MAX_LINE_LENGTH = 1024 * 1024;
const DEFAULT_MAX_DATA_LENGTH = 4 * 1024 * 1024;
const END_MARKER = "[DONE]";
const ENDING_EVENT_TYPES = new Set(["end", "done"]);
const LINE_BREAK = /[\r\n]/g;
const ASCII_DIGITS = /^[0-9]+$/;

/**
 * @typedef {object} SSEEvent
 * @property {string} event  The event type ("message" unless the server named it).
 * @property {string} data   The data lines joined with "\n".
 * @property {string} id     The last event id when the event was dispatched (sticky, "" if none).
 * @property {number|null} retry  The reconnection time in force (ms), null if never set.
 */

/**
 * An incremental, sans-IO server-sent events decoder: bytes in, events out.
 *
 * Feed it network reads in any chunking (a line, a CRLF or a UTF-8 character may be split
 * across reads); it returns the events completed by each read. `close()` ends one stream: the
 * unterminated event is discarded and the parser is ready for the next connection, keeping
 * `lastEventId` and `retry` as EventSource does across reconnects.
 */
export class SSEParser {
  /**
   * @param {object} [options]
   * @param {number} [options.maxLineLength=1048576] Longest line accepted, in characters.
   * @param {number} [options.maxDataLength=4194304] Largest data of one event, in characters.
   * @param {string} [options.lastEventId=""] Last event id to start from (e.g. a resumed stream).
   */
  constructor({
    maxLineLength = DEFAULT_MAX_LINE_LENGTH,
    maxDataLength = DEFAULT_MAX_DATA_LENGTH,
    lastEventId = "",
  } = {}) {
    this.maxLineLength = maxLineLength;
    this.maxDataLength = maxDataLength;
    this._lastEventId = lastEventId;
    this._idBuffer = lastEventId;
    this._retry = null;
    this._failure = null;
    this._startStream();
  }

  /** The id a reconnect sends as `Last-Event-ID` ("" = none). @returns {string} */
  get lastEventId() {
    return this._lastEventId;
  }

  /** The server's reconnection time in ms (null: never sent). @returns {number|null} */
  get retry() {
    return this._retry;
  }

  /**
   * Decode one network read.
   * @param {Uint8Array|ArrayBuffer|string} chunk Bytes (UTF-8), or text that is encoded as UTF-8.
   * @returns {SSEEvent[]} The events this chunk completed, in order.
   * @throws {Error} When a line or an event's data exceeds its limit; the parser then stays failed.
   */
  feed(chunk) {
    if (this._failure) throw this._failure;
    // Strings go through the same byte decoder so that mixed feeds cannot reorder text.
    const bytes = typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk;
    const events = [];
    try {
      this._processText(this._decoder.decode(bytes, { stream: true }), events);
    } catch (error) {
      this._failure = error;
      throw error;
    }
    return events;
  }

  /**
   * End the current stream. WHATWG SSE: "Once the end of the file is reached, any pending data
   * must be discarded", so an event without its blank line is never dispatched.
   */
  close() {
    this._decoder.decode(); // flush: any leftover bytes belong to the discarded tail
    this._failure = null;
    this._startStream();
  }

  _startStream() {
    // ignoreBOM keeps the BOM in the text so that exactly one can be stripped by hand:
    // the default would strip it too, but WHATWG SSE says one BOM, and only at the start.
    this._decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
    this._atStreamStart = true;
    this._line = "";
    this._skipLeadingLF = false;
    this._data = "";
    this._eventType = "";
    this._idBuffer = this._lastEventId;
  }

  _processText(text, events) {
    if (text === "") return; // a partial UTF-8 character: nothing decoded yet
    let pos = 0;
    if (this._atStreamStart) {
      this._atStreamStart = false;
      if (text.charCodeAt(0) === 0xfeff) pos = 1;
    }
    // WHATWG SSE: CRLF is one line ending even when the CR ended the previous read.
    if (this._skipLeadingLF) {
      this._skipLeadingLF = false;
      if (text.charCodeAt(pos) === 0x0a) pos += 1;
    }
    while (pos < text.length) {
      LINE_BREAK.lastIndex = pos;
      const found = LINE_BREAK.exec(text);
      if (found === null) {
        this._line += text.slice(pos);
        this._checkLineLength(this._line.length);
        return;
      }
      const end = found.index;
      const line = this._line + text.slice(pos, end);
      this._line = "";
      this._checkLineLength(line.length);
      this._processLine(line, events);
      pos = end + 1;
      if (text.charCodeAt(end) === 0x0d) {
        if (pos === text.length) this._skipLeadingLF = true;
        else if (text.charCodeAt(pos) === 0x0a) pos += 1;
      }
    }
  }

  _checkLineLength(length) {
    if (length > this.maxLineLength) {
      throw new Error(
        `SSE line longer than maxLineLength (${this.maxLineLength} characters): ` +
          "the stream is not server-sent events, or the limit is too low",
      );
    }
  }

  _processLine(line, events) {
    if (line === "") {
      this._dispatch(events);
      return;
    }
    if (line.charCodeAt(0) === 0x3a) return; // ":" starts a comment (heartbeats)
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon !== -1) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 0x20) value = value.slice(1); // one space, never a tab
    }
    // Field names are case-sensitive; unknown fields are ignored (WHATWG SSE "process the field").
    switch (field) {
      case "data":
        this._data += value + "\n";
        if (this._data.length > this.maxDataLength) {
          throw new Error(
            `SSE event data longer than maxDataLength (${this.maxDataLength} characters) ` +
              "without a blank line to end the event",
          );
        }
        break;
      case "event":
        this._eventType = value;
        break;
      case "id":
        // WHATWG SSE: an id containing U+0000 NULL is ignored, so it can never reach a header.
        if (!value.includes("\0")) this._idBuffer = value;
        break;
      case "retry":
        if (ASCII_DIGITS.test(value)) this._retry = Number.parseInt(value, 10);
        break;
      default:
        break;
    }
  }

  _dispatch(events) {
    // WHATWG SSE "dispatch the event": the id is committed first, even for blocks without data,
    // and it is sticky: it stays until the server sends another id.
    this._lastEventId = this._idBuffer;
    const data = this._data;
    const type = this._eventType;
    this._data = "";
    this._eventType = "";
    if (data === "") return;
    events.push({
      event: type === "" ? "message" : type,
      data: data.slice(0, -1),
      id: this._lastEventId,
      retry: this._retry,
    });
  }
}

/**
 * Stream a server-sent event response with fetch, resuming by itself after network errors.
 *
 * POSTs `body` as JSON (GET when `body` is undefined) and yields each event `{event, data, id}`.
 * It returns on the end marker (data exactly `[DONE]`, or an event named `end` or `done`) and on
 * HTTP 204 (the server has nothing more to resume); neither is yielded. A typed ending
 * (`event: error`) throws an Error with the server's message and `.code`.
 *
 * When the connection fails or the body ends before the end marker, it requests the same URL
 * again (same method and body) with `Last-Event-ID`, waiting the server's `retry:` time (or
 * `backoffMs`) doubled on each consecutive failure; any event received resets the count. If
 * events were yielded but there is no last event id, they cannot be resumed without repeating
 * them, so it throws instead. After `maxRetries` consecutive failures it throws the last error.
 *
 * A non-2xx status throws an Error with `.status` and the server's message; 5xx and 429 with
 * `Retry-After` are retried, other 4xx are not. Aborting `signal` cancels the request, the
 * reader and any backoff wait, and the iteration rejects with `signal.reason`.
 *
 * @param {string|URL} url
 * @param {object} [options]
 * @param {unknown} [options.body] JSON-serialisable request body; undefined sends a GET.
 * @param {AbortSignal} [options.signal]
 * @param {string} [options.lastEventId] Resume after this id from the first request on.
 * @param {HeadersInit} [options.headers] Extra request headers (e.g. Authorization).
 * @param {number} [options.maxRetries=5] Consecutive failed reconnects allowed.
 * @param {number} [options.backoffMs=500] First reconnect delay when the server sent no `retry:`.
 * @param {number} [options.maxBackoffMs=30000] Cap on the doubled delay.
 * @param {(attempt: number, delayMs: number) => void} [options.onReconnect] Called before
 *   each reconnect wait, e.g. to show a "reconnecting" state.
 * @param {typeof fetch} [options.fetch=globalThis.fetch]
 * @returns {AsyncGenerator<{event: string, data: string, id: string}, void, undefined>}
 */
export async function* stream(
  url,
  {
    body,
    signal,
    lastEventId = "",
    headers,
    maxRetries = 5,
    backoffMs = 500,
    maxBackoffMs = 30000,
    onReconnect,
    fetch: fetchImpl = globalThis.fetch,
  } = {},
) {
  const parser = new SSEParser({ lastEventId });
  const requestBody = body === undefined ? undefined : JSON.stringify(body);
  let failures = 0;
  let yieldedAny = false;

  for (;;) {
    throwIfAborted(signal);
    let failure;
    let retryAfterMs = null;
    let response;
    try {
      response = await fetchImpl(url, {
        method: requestBody === undefined ? "GET" : "POST",
        headers: requestHeaders(headers, requestBody !== undefined, parser.lastEventId),
        body: requestBody,
        signal,
      });
    } catch (error) {
      throwIfAborted(signal);
      failure = error;
    }

    if (response !== undefined) {
      // WHATWG SSE: 204 No Content means "stop reconnecting"; sserelay answers it once a
      // stream is no longer replayable.
      if (response.status === 204) return;
      if (!response.ok) {
        const error = await httpError(response);
        retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
        const retriable =
          response.status >= 500 || (response.status === 429 && retryAfterMs !== null);
        if (!retriable) throw error;
        failure = error;
      } else if (!isEventStream(response)) {
        // WHATWG SSE fails the connection on any other Content-Type; retrying would not help.
        await response.body?.cancel().catch(() => {});
        const type = response.headers.get("content-type") || "no Content-Type";
        const error = new Error(`expected text/event-stream from ${url}, got ${type}`);
        error.status = response.status;
        throw error;
      } else {
        const reader = (response.body ?? new Response("").body).getReader();
        try {
          for (;;) {
            let read;
            try {
              read = await reader.read();
            } catch (error) {
              throwIfAborted(signal);
              failure = error;
              break;
            }
            if (read.done) {
              failure = new Error("the event stream ended before its end marker");
              break;
            }
            const events = parser.feed(read.value);
            if (events.length > 0) failures = 0; // progress: the retry budget starts over
            for (const event of events) {
              if (event.data === END_MARKER || ENDING_EVENT_TYPES.has(event.event)) return;
              if (event.event === "error") throw errorFromPayload(event.data);
              yieldedAny = true;
              yield { event: event.event, data: event.data, id: event.id };
              throwIfAborted(signal);
            }
          }
        } finally {
          parser.close();
          // Frees the connection when the caller stops early, the stream ends or we reconnect.
          reader.cancel().catch(() => {});
        }
      }
    }

    if (yieldedAny && parser.lastEventId === "") {
      // Without an id to resume after, the server would start over: the caller would see
      // the text twice.
      throw withCause(
        "the event stream broke and cannot be resumed (the server sent no event ids)",
        failure,
      );
    }
    failures += 1;
    if (failures > maxRetries) {
      throw withCause(`the event stream failed after ${maxRetries} reconnect attempts`, failure);
    }
    // WHATWG SSE: the server's `retry:` sets the reconnection time; it is doubled per failure.
    const base = parser.retry ?? backoffMs;
    const delayMs =
      retryAfterMs ?? Math.min(base * 2 ** (failures - 1), Math.max(maxBackoffMs, base));
    onReconnect?.(failures, delayMs);
    await sleep(delayMs, signal);
  }
}

/**
 * Follow a stream with the browser's EventSource (GET only; cookies with `withCredentials`).
 *
 * Calls `onMessage(event)` for each unnamed event and for the named ones listed in `events`
 * (EventSource only delivers named events to listeners registered by name). On the end marker
 * (`[DONE]`, or an `end`/`done` event) it closes the EventSource and calls `onEnd()`; on a typed
 * ending (`event: error` with data) it closes and calls `onError(Error)` with the server's
 * message and `.code`. After a transport error EventSource reconnects by itself, sending
 * `Last-Event-ID`; only when it gives up (readyState CLOSED) is `onError` called.
 *
 * @param {string|URL} url
 * @param {object} [options]
 * @param {(event: MessageEvent) => void} [options.onMessage]
 * @param {(error: Error) => void} [options.onError]
 * @param {() => void} [options.onEnd]
 * @param {boolean} [options.withCredentials=false]
 * @param {string[]} [options.events=[]] Named event types to deliver to onMessage as well.
 * @param {typeof EventSource} [options.EventSource=globalThis.EventSource] For tests and polyfills.
 * @returns {{close(): void}}
 */
export function follow(
  url,
  {
    onMessage,
    onError,
    onEnd,
    withCredentials = false,
    events = [],
    EventSource: EventSourceImpl = globalThis.EventSource,
  } = {},
) {
  const source = new EventSourceImpl(url, { withCredentials });
  let finished = false;
  const finish = () => {
    finished = true;
    source.close();
  };

  const onData = (event) => {
    if (finished) return;
    if (event.data === END_MARKER || ENDING_EVENT_TYPES.has(event.type)) {
      // Closing is what stops the browser reconnecting and re-running the request.
      finish();
      onEnd?.();
      return;
    }
    onMessage?.(event);
  };
  for (const type of new Set(["message", ...ENDING_EVENT_TYPES, ...events])) {
    source.addEventListener(type, onData);
  }

  source.addEventListener("error", (event) => {
    if (finished) return;
    if (typeof event.data === "string") {
      // A server-sent `event: error` arrives on the same listener as transport errors,
      // but as a MessageEvent carrying data.
      finish();
      onError?.(errorFromPayload(event.data));
      return;
    }
    // WHATWG SSE: readyState CONNECTING means the browser is reconnecting by itself;
    // CLOSED means it failed the connection (non-200, wrong Content-Type, or 204) for good.
    if (source.readyState === 2) {
      finished = true;
      onError?.(
        new Error(
          "the event stream closed and will not reconnect " +
            "(the server refused it or has nothing more to send)",
        ),
      );
    }
  });

  return { close: finish };
}

function requestHeaders(extra, hasBody, lastEventId) {
  const headers = new Headers(extra);
  headers.set("Accept", "text/event-stream");
  if (hasBody && !headers.has("Content-Type")) headers.set("Content-Type", "application/json");
  // WHATWG SSE: Last-Event-ID is sent only when the last event id is not empty.
  if (lastEventId !== "") headers.set("Last-Event-ID", lastEventId);
  return headers;
}

function isEventStream(response) {
  const type = response.headers.get("content-type") || "";
  return type.split(";")[0].trim().toLowerCase() === "text/event-stream";
}

async function httpError(response) {
  let text = "";
  try {
    text = await response.text();
  } catch {
    // The status alone still explains the failure.
  }
  const { message, code, type } = parsePayload(text);
  const error = new Error(message || `HTTP ${response.status} ${response.statusText}`.trim());
  error.status = response.status;
  if (code !== undefined) error.code = code;
  if (type !== undefined) error.type = type;
  return error;
}

function errorFromPayload(data) {
  const { message, code, type } = parsePayload(data);
  const error = new Error(message || "the stream ended with an error");
  error.code = code ?? null;
  if (type !== undefined) error.type = type;
  return error;
}

// Error bodies come as {"error": {"message", "code", "type"}} (OpenAI, sserelay),
// {"message", "code"} (Responses API, vLLM), {"error": "text"}, or plain text.
function parsePayload(text) {
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { message: text.trim() };
  }
  if (parsed === null || typeof parsed !== "object") return { message: text.trim() };
  if (typeof parsed.error === "string") return { message: parsed.error };
  const detail = parsed.error !== null && typeof parsed.error === "object" ? parsed.error : parsed;
  return {
    message: typeof detail.message === "string" ? detail.message : text.trim(),
    code: detail.code,
    type: typeof detail.type === "string" ? detail.type : undefined,
  };
}

// Retry-After is delay-seconds or an HTTP date (RFC 9110 section 10.2.3).
function parseRetryAfter(value) {
  if (value === null) return null;
  if (ASCII_DIGITS.test(value.trim())) return Number.parseInt(value, 10) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

function withCause(summary, cause) {
  const error = new Error(`${summary}: ${cause.message}`, { cause });
  if (cause.status !== undefined) error.status = cause.status;
  return error;
}

function throwIfAborted(signal) {
  if (signal?.aborted) {
    throw signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
