// chat.js: the chat page at "/". A conversation over sserelay's resumable streams:
//   POST /v1/streams {messages, model?} -> {id, url}; GET url follows the answer as SSE
//   (Chat Completions chunks, ids "<stream>:<seq>"); DELETE url stops the model upstream.
// sserelay.js's stream() resumes a dropped connection by itself with Last-Event-ID, and the
// server replays strictly after that id, so the text is never duplicated.
import { stream } from "./sserelay.js";
import { renderMarkdown } from "./markdown.js";

// stream()'s reconnect budget: delays of 0.5, 1, 2, 4 and 8 s, about 15 s in all before the
// page gives up and offers to resume by hand.
const MAX_RETRIES = 5;

const $ = (id) => document.getElementById(id);
const ui = {
  conversation: $("conversation"),
  messages: $("messages"),
  empty: $("empty"),
  status: $("status"),
  form: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  model: $("model"),
  newChat: $("new-chat"),
};

/** The conversation so far, as sent to the model: [{role, content}]. */
const history = [];
/** The answer in progress (or waiting to be resumed by hand), else null. */
let turn = null;

// --- page state ----------------------------------------------------------------------------

// body[data-state] is one of: idle, sending, streaming, reconnecting, stopping, done, stopped,
// error. CSS and the browser tests read it; the status line says the same in words.
function setState(state, message = "", { error = false } = {}) {
  document.body.dataset.state = state;
  ui.status.textContent = message;
  ui.status.classList.toggle("error", error);
  const busy = turn !== null && turn.active;
  ui.send.disabled = busy;
  ui.stop.disabled = !busy;
  ui.newChat.disabled = busy;
  ui.messages.setAttribute("aria-busy", String(busy));
}

function addMessage(role, text = "") {
  ui.empty.hidden = true;
  const item = document.createElement("li");
  item.className = `message ${role}`;
  const who = document.createElement("h3");
  who.className = "visually-hidden";
  who.textContent = role === "user" ? "You said:" : "Answer:";
  const content = document.createElement("div");
  content.className = "content";
  // The person's own words are shown as typed: plain text, never Markdown or HTML.
  if (role === "user") content.textContent = text;
  const note = document.createElement("p");
  note.className = "note";
  note.hidden = true;
  item.append(who, content, note);
  ui.messages.append(item);
  scrollToEnd(true);
  return { item, content, note };
}

function setNote(view, text, { error = false, action = null } = {}) {
  view.note.replaceChildren(document.createTextNode(text));
  view.note.hidden = text === "";
  view.note.classList.toggle("error", error);
  if (action) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "resume";
    button.textContent = action.label;
    button.addEventListener("click", action.run, { once: true });
    view.note.append(" ", button);
  }
}

// Follow the answer only when the reader is already at the bottom: never yank them back up.
function scrollToEnd(force = false) {
  const box = ui.conversation;
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 48;
  if (force || atEnd) box.scrollTop = box.scrollHeight;
}

// Markdown is re-rendered from the whole answer so far: cheap at chat sizes, and constructs
// that complete later (a closing ``` or **) are then shown right. At most once per frame.
function scheduleRender(current) {
  if (current.renderQueued) return;
  current.renderQueued = true;
  requestAnimationFrame(() => renderAnswer(current));
}

function renderAnswer(current) {
  current.renderQueued = false;
  const atEnd =
    ui.conversation.scrollHeight - ui.conversation.scrollTop - ui.conversation.clientHeight < 48;
  current.view.content.replaceChildren(renderMarkdown(current.text));
  if (atEnd) ui.conversation.scrollTop = ui.conversation.scrollHeight;
}

// --- errors in words -----------------------------------------------------------------------

// sserelay's error messages are written for people; the page adds what to do about them.
function startFailure(error) {
  if (error.status === undefined) {
    return (
      "Could not reach sserelay. Check that the server is running and that you are online, " +
      "then send again."
    );
  }
  const said = (fallback) => {
    const text = error.message || fallback;
    return /[.!?]$/.test(text) ? text : `${text}.`;
  };
  if (error.code === "model_not_found") {
    return `${said("That model is not available here")} Pick another model.`;
  }
  if (error.status === 413) {
    return `${said("The conversation is too long")} Start a new chat, or shorten the message.`;
  }
  if (error.status === 429) {
    const wait = error.retryAfter ? `in ${error.retryAfter} seconds` : "in a moment";
    return `${said("Too many requests")} Send again ${wait}.`;
  }
  if (error.status >= 500) {
    const fallback = `The model provider could not answer (HTTP ${error.status})`;
    return `${said(fallback)} Try again in a moment.`;
  }
  return said(`sserelay refused the message (HTTP ${error.status})`);
}

async function createStream(messages, model) {
  const body = { messages };
  if (model) body.model = model; // none: the server's default model
  let response;
  try {
    response = await fetch("/v1/streams", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
  } catch (cause) {
    throw new Error("network error", { cause });
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    // The status alone still explains a failure.
  }
  if (!response.ok || payload === null || typeof payload.url !== "string") {
    const detail = payload && typeof payload.error === "object" ? payload.error : {};
    const error = new Error(typeof detail?.message === "string" ? detail.message : "");
    error.status = response.status;
    error.code = detail?.code;
    error.retryAfter = response.headers.get("retry-after");
    throw error;
  }
  return payload;
}

// --- a turn: send, stream, stop, resume ------------------------------------------------------

async function send(text) {
  if (turn?.active) return;
  if (turn) abandon(turn); // a broken answer the person chose not to resume
  const question = { role: "user", content: text };
  const questionView = addMessage("user", text);
  const current = {
    active: true,
    text: "",
    view: addMessage("assistant"),
    url: null,
    lastEventId: "",
    stopRequested: false,
    renderQueued: false,
  };
  turn = current;
  ui.prompt.value = "";
  setState("sending", "Sending…");

  let created;
  try {
    created = await createStream([...history, question], ui.model.value);
  } catch (error) {
    // Nothing was generated: take the message back so that it can be sent again as it is.
    questionView.item.remove();
    current.view.item.remove();
    ui.empty.hidden = history.length > 0;
    if (ui.prompt.value === "") ui.prompt.value = text;
    turn = null;
    setState("error", `${startFailure(error)} Your message is back in the box.`, { error: true });
    return;
  }
  history.push(question);
  current.url = created.url;
  if (current.stopRequested) void requestStop(current);
  await follow(current);
}

async function follow(current) {
  current.active = true;
  current.controller = new AbortController();
  showWorking(current);
  setNote(current.view, "");
  current.view.item.classList.add("streaming");
  let finish = null;
  let ending = null; // a typed error ending from the server
  let gap = null;
  let broken = null; // the connection failed for good
  try {
    for await (const event of stream(current.url, {
      signal: current.controller.signal,
      lastEventId: current.lastEventId,
      maxRetries: MAX_RETRIES,
      onReconnect: (attempt) =>
        setState(
          "reconnecting",
          `Connection lost. Reconnecting (attempt ${attempt} of ${MAX_RETRIES})…`,
        ),
    })) {
      current.lastEventId = event.id;
      if (document.body.dataset.state === "reconnecting") showWorking(current);
      if (event.event === "gap") {
        gap = parseJSON(event.data)?.gap?.message ?? "Part of the answer was lost.";
        continue;
      }
      const chunk = parseJSON(event.data);
      if (chunk === null) continue;
      if (chunk.error) {
        ending = chunk.error; // `data: [DONE]` follows; stream() returns on it
        continue;
      }
      const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined;
      const piece = choice?.delta?.content;
      if (typeof piece === "string" && piece !== "") {
        current.text += piece;
        scheduleRender(current);
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
    }
  } catch (error) {
    if (!current.controller.signal.aborted) broken = error;
  }
  current.view.item.classList.remove("streaming");
  renderAnswer(current);
  current.active = false;
  conclude(current, { finish, ending, gap, broken });
}

function showWorking(current) {
  if (current.stopRequested) setState("stopping", "Stopping…");
  else setState("streaming", "Answering…");
}

function conclude(current, { finish, ending, gap, broken }) {
  const focusWasOnStop = document.activeElement === ui.stop;
  if (broken && broken.status === 404) {
    commit(current);
    setNote(current.view, "Incomplete.", { error: true });
    setState(
      "error",
      "The server no longer has this answer (it has expired). Send your message again.",
      { error: true },
    );
  } else if (broken) {
    // The server keeps generating into the stream log: nothing is lost by resuming later.
    setNote(current.view, "Incomplete: the connection was lost.", {
      error: true,
      action: { label: "Resume", run: () => resume(current) },
    });
    const why =
      broken.status === undefined
        ? `Lost the connection to sserelay and could not reconnect after ${MAX_RETRIES} ` +
          "attempts. Check that you are online, then choose Resume"
        : `sserelay could not continue this answer (HTTP ${broken.status}). Choose Resume ` +
          "in a moment";
    setState("error", `${why} to continue where the answer stopped.`, { error: true });
  } else if (ending) {
    commit(current);
    setNote(current.view, "Incomplete: the answer was cut short.", { error: true });
    const message = typeof ending.message === "string" ? ending.message : "The answer failed.";
    setState(
      "error",
      `${message} What is shown is incomplete; send your message again to retry.`,
      { error: true },
    );
  } else if (finish === "cancelled" || (current.stopRequested && finish === null)) {
    commit(current);
    setNote(current.view, "Stopped.");
    if (current.stopFailed) {
      setState(
        "stopped",
        "Stopped showing the answer, but could not reach sserelay to stop the model.",
        { error: true },
      );
    } else {
      setState("stopped", "Stopped. The model was told to stop; the answer so far is kept.");
    }
  } else if (finish === null) {
    commit(current);
    setNote(current.view, "Incomplete.", { error: true });
    setState(
      "error",
      "The server ended this answer without finishing it. Send your message again.",
      { error: true },
    );
  } else {
    commit(current);
    if (finish === "length") setNote(current.view, "Cut off at the length limit.");
    if (gap) setNote(current.view, gap, { error: true });
    setState("done", finish === "length" ? "The answer reached the length limit." : "");
  }
  if (focusWasOnStop || document.activeElement === document.body) ui.prompt.focus();
}

// The answer joins the history once it is settled, so the next question sends it too.
function commit(current) {
  if (turn === current) turn = null;
  if (current.text !== "") history.push({ role: "assistant", content: current.text });
}

// A broken answer the person did not resume: keep what arrived, and stop it upstream.
function abandon(current) {
  turn = null;
  setNote(current.view, "Incomplete.", { error: true });
  if (current.text !== "") history.push({ role: "assistant", content: current.text });
  fetch(current.url, { method: "DELETE" }).catch(() => {});
}

function resume(current) {
  if (turn !== current || current.active) return;
  ui.prompt.focus();
  void follow(current);
}

async function requestStop(current) {
  current.stopRequested = true;
  setState("stopping", "Stopping…");
  if (current.url === null) return; // still being created: send() stops it once it has a URL
  try {
    const response = await fetch(current.url, { method: "DELETE" });
    // 200 means it had already ended; 404 that it expired. Either way nothing runs upstream.
    if (!response.ok && response.status !== 404) throw new Error(`HTTP ${response.status}`);
    // The stream itself now ends with finish_reason "cancelled" and [DONE].
  } catch {
    current.stopFailed = true;
    current.controller?.abort(); // follow() then ends and says so
  }
}

function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// --- model picker --------------------------------------------------------------------------

// Filled from GET /v1/models when the server offers it (OpenAI's shape); "default" stays first
// and sends no model at all, so the page works against servers without the endpoint too.
async function loadModels() {
  let ids = [];
  try {
    const response = await fetch("/v1/models", { headers: { Accept: "application/json" } });
    if (response.ok) {
      const body = await response.json();
      if (Array.isArray(body?.data)) {
        ids = body.data.map((model) => model?.id).filter((id) => typeof id === "string" && id);
      }
    }
  } catch {
    // No list: the default model is still there.
  }
  for (const id of new Set(ids)) {
    const option = document.createElement("option");
    option.value = id;
    option.textContent = id;
    ui.model.append(option);
  }
  ui.model.dataset.source = ids.length > 0 ? "server" : "fallback";
}

// --- input ---------------------------------------------------------------------------------

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (turn?.active) {
    ui.status.textContent = "Wait for the answer, or press Escape to stop it.";
    return;
  }
  const text = ui.prompt.value;
  if (text.trim() === "") {
    setState(document.body.dataset.state, "Type a message first.");
    return;
  }
  void send(text);
});

ui.prompt.addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter is a new line; never while an input method is composing text.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});

ui.stop.addEventListener("click", () => {
  if (turn?.active && !turn.stopRequested) void requestStop(turn);
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && turn?.active && !turn.stopRequested) {
    event.preventDefault();
    void requestStop(turn);
  }
});

ui.newChat.addEventListener("click", () => {
  if (turn?.active) return;
  if (turn) abandon(turn);
  history.length = 0;
  ui.messages.replaceChildren();
  ui.empty.hidden = false;
  setState("idle", "");
  ui.prompt.focus();
});

setState("idle");
void loadModels();
