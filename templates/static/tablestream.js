// The live status of a streamed table page (templates/table.html), and the bounded window of
// rows a long page keeps in the reader's memory. No per-row work.
//
// Loaded with `async` from the page head: it may run before the table exists or after the
// whole page is parsed, so it looks elements up by id on every tick and never assumes either.
// Rows are counted incrementally: each tick looks only at the row groups added since the last
// one (the page opens a <tbody> per batch of rows; the parser's groups follow each other), so a
// 1M-row page costs O(groups) in total, not O(rows) per tick.
//
// The states, in #ts-status[data-state]:
//   loading   the document is still being parsed: "loading… N rows so far"
//   stalled   still parsing, but no row came for STALL_MS: the source is slow, or the stream
//             was cut. Chromium cannot tell these apart from inside the page: when a chunked
//             body is cut it stops the parser, drops what it had not parsed yet (the server's
//             error marker with it) and leaves the document "loading" for ever, with no event.
//             So once rows stop for ASK_MS the script asks the server (#ts-status's
//             data-status-url, GET /streams/<request id>) what became of the stream; an "error",
//             "cut" or "client_aborted" answer turns the status into an error.
//   complete  parsing ended and the success footer #ts-complete is there, its data-rows-sent
//             equal to the rows the page received: "N rows, complete"
//   error     the server's error marker was parsed, or parsing ended without the footer (a
//             browser that finishes a cut document) or with a different row count.
//
// The window (docs/browser-page.md). A browser keeps every parsed row in memory, ~1.7 KiB each
// in Chromium: 10M rows would take 17 GiB. When the table carries data-rows-url (the server
// can give any rows again, byte for byte: ?fragment=rows&offset=N&limit=K), the page keeps at
// most data-page-rows rows: past them it is "windowed": the rows [winStart, winEnd) stay in the
// document between two gaps, every row group the parser adds afterwards is hidden at once and
// removed once complete (the counter still counts it), and scrolling near a gap fetches the
// next rows back while the far end of the window is released. A bar stands for the whole
// table: a slider and "go to row N". Counting never depends on the window: it walks the
// parser's groups, which are always the table's last children (the parser appends there).
// Resuming (issue 31; docs/browser-page.md). A cut stream (a drain, a source error, a lost
// connection) is continued where it stopped: every 8th batch of the page carries the URL that
// resumes after that batch's last row (<!--ts-after URL-->), and the error marker carries one
// too (data-resume). Once the document's stream is over, the script stops the document
// (window.stop), drops the rows after the last resume point it parsed, fetches the URL through
// the same origin (a balancer sends it to a live instance) and appends that page's row groups
// as the parser would have, batch by batch, so the counter, the window and the footer's check
// work on them unchanged. A continuation cut in turn is continued again; MAX_FAILURES attempts
// in a row that bring no row (backoff from BACKOFF_MS, doubled) end in the error state.
// The page is served with `script-src 'self'`: this file is the only script, nothing inline.
(() => {
  "use strict";
  const TICK_MS = 250;
  const MARKER_MS = 1000; // the error marker comes after the last row: look once rows stop
  const STALL_MS = 5000;
  const ASK_MS = 2000; // rows stopped this long: ask the server, then again every ASK_MS
  const ANSWER_MS = 5000; // an ask unanswered this long is abandoned and asked again
  const MAX_FAILURES = 5; // continuations in a row that bring no row before the page gives up
  const MAX_RESUMES = 100;
  const BACKOFF_MS = 500;
  const number = new Intl.NumberFormat("en-US");
  // Live: reading .length walks the document only after it changed, i.e. once per quiet spell.
  const markers = document.getElementsByClassName("ts-error");
  let counted = 0;
  let timer = 0;
  let grewAt = performance.now();
  let askedAt = 0;
  let asking = false;
  let serverSays = null; // the last answer of /streams/<request id>

  let group = null; // the parser's <tbody> being counted: the page opens one per batch of rows
  let groupStart = 0; // the index of its first row

  function countRows() {
    if (!group) {
      if (resume.table) return counted; // resuming, before the continuation's first group
      const table = document.getElementById("ts-table");
      group = table && table.tBodies[0];
      if (!group) return counted;
      resume.table = table;
      configure(table);
      startGroup(group);
    }
    for (;;) {
      const rows = rowsIn(group);
      if (groupStart + rows > counted) {
        counted = groupStart + rows;
        grewAt = performance.now();
      }
      const next = group.nextElementSibling;
      if (!next || next.tagName !== "TBODY") return counted;
      groupDone(group, groupStart, rows);
      group = next;
      groupStart = counted;
      startGroup(group);
    }
  }

  // A group holds only its rows (the parser puts anything else before the table), and
  // childElementCount makes no object per row: rows released never linger as JS wrappers. Past
  // the window of a page whose script reports, a batch comes as its count, "<!--ts-rows N-->"
  // (service/stream/pacing.py): N rows read by the server, to be fetched by range when wanted.
  function rowsIn(g) {
    const rows = g.childElementCount;
    if (rows || !config) return rows;
    let packed = 0;
    for (let node = g.firstChild; node; node = node.nextSibling) {
      // substringData: only the head of the comment is made a string, never its rows.
      if (node.nodeType === Node.COMMENT_NODE && node.substringData(0, 8) === "ts-rows ") {
        packed += parseInt(node.substringData(8, 16), 10) || 0;
      }
    }
    return packed;
  }

  function show(state, text) {
    const status = document.getElementById("ts-status");
    if (!status) return;
    status.hidden = false;
    status.dataset.state = state;
    status.textContent = resume.count ? `${text} (${resumedText()})` : text;
  }

  function resumedText() {
    return resume.count === 1 ? "resumed once" : `resumed ${resume.count} times`;
  }

  function failed(rows) {
    clearInterval(timer);
    show("error", `error: the server reported a failure after ${number.format(rows)} rows; ` +
      "the table is incomplete");
  }

  function ask() {
    const status = document.getElementById("ts-status");
    const url = status && status.dataset.statusUrl;
    if (!url || asking || !window.fetch) return;
    asking = true;
    askedAt = performance.now();
    // A fetch has no deadline of its own: one that hangs (a connection the browser reused just
    // as the server closed it, a busy proxy) would stop every later ask, and the page would say
    // "stalled" for ever. Abort it and ask again on the next round.
    const abort = window.AbortController ? new AbortController() : null;
    const deadline = abort ? setTimeout(() => abort.abort(), ANSWER_MS) : 0;
    fetch(url, { cache: "no-store", credentials: "same-origin", signal: abort && abort.signal })
      // 404: whoever answered does not know the stream (its instance is gone, behind a
      // balancer); no answer at all: the server is unreachable. Either way it ended here.
      .then((response) => (response.ok ? response.json() :
        response.status === 404 ? { outcome: "unknown" } : null))
      .then((answer) => { serverSays = answer; })
      .catch(() => { serverSays = { outcome: "unreachable" }; })
      .finally(() => { clearTimeout(deadline); asking = false; });
  }

  // How far the parser has got, for a page that can release rows: the server keeps its stream
  // at most data-page-rows rows ahead of it (service/stream/pacing.py), since Chromium would
  // otherwise hold all it has received but not parsed (~1 GB of a 10M-row page).
  let reporting = false;
  let reported = -1;

  function report(rows, to) {
    const status = document.getElementById("ts-status");
    const url = to || (status && status.dataset.statusUrl);
    if (!url || reporting) return;
    reporting = true;
    reported = rows;
    const abort = window.AbortController ? new AbortController() : null;
    const deadline = abort ? setTimeout(() => abort.abort(), ANSWER_MS) : 0;
    fetch(`${url}${url.includes("?") ? "&" : "?"}parsed=${rows}`,
      { cache: "no-store", credentials: "same-origin", signal: abort && abort.signal })
      .catch(() => {})
      .finally(() => { clearTimeout(deadline); reporting = false; });
  }

  function cutOnServer(rows, answer) {
    clearInterval(timer);
    const why = answer.outcome === "error" ? "failed on the server" : "was cut by the server";
    show("error", `error: the stream ${why} after ${number.format(answer.rows_sent)} rows ` +
      `(${number.format(rows)} shown); the table is incomplete`);
  }

  function tick() {
    const rows = countRows();
    if (resume.active) {
      resumingTick(rows);
      return;
    }
    const now = performance.now();
    const quiet = now - grewAt;
    const ended = serverSays && ENDED.has(serverSays.outcome);
    if (quiet >= ASK_MS && now - askedAt >= ASK_MS) ask();
    if (config && rows !== reported) report(rows);
    if (quiet >= MARKER_MS && markers.length) {
      if (!resumeFrom(markerPoint())) failed(rows);
    } else if (quiet >= MARKER_MS && ended && resumeFrom(lastPoint())) {
      show("resuming", `the stream was cut after ${number.format(counted)} rows: resuming…`);
    } else if (quiet >= MARKER_MS && ended && serverSays.rows_sent !== undefined) {
      cutOnServer(rows, serverSays);
    } else if (quiet < STALL_MS) {
      show("loading", `loading… ${number.format(rows)} rows so far`);
    } else {
      show("stalled", `no new rows for ${Math.floor(quiet / 1000)} s (${number.format(rows)} ` +
        "so far): the source is slow or the stream was cut");
    }
    if (windowed) {
      updateGaps();
      review();
    }
  }

  function finish() {
    if (resume.active) return; // window.stop() ends the document: the continuation goes on
    const rows = countRows();
    const footer = document.getElementById("ts-complete");
    // A browser that parses a cut document to its end: resume from the marker, else from the
    // last batch parsed.
    if (!footer && resumeFrom(markers.length ? markerPoint() : lastPoint())) return;
    clearInterval(timer);
    if (windowed && group) {
      group.remove(); // the last group is complete now: its rows are fetched back when wanted
      group = null;
      review();
    }
    const sent = footer ? Number(footer.dataset.rowsSent) : NaN;
    if (markers.length) {
      failed(rows);
    } else if (footer && sent === rows) {
      show("complete", `${number.format(rows)} rows, complete`);
    } else if (footer) {
      show("error", `error: the server sent ${number.format(sent)} rows, the page has ` +
        `${number.format(rows)}; the table is incomplete`);
    } else {
      show("error", `error: the stream was cut after ${number.format(rows)} rows; ` +
        "the table is incomplete");
    }
    updateBar();
  }

  // ---- resuming a cut stream -------------------------------------------------------------
  const ENDED = new Set(["error", "cut", "client_aborted", "unknown", "unreachable"]);
  const SILENCE_MS = 30000; // a continuation that sends nothing this long is dropped and resumed
  const resume = {
    table: null, // the page's table, once found
    at: null, // {rows, url}: the last resume point of a group counted
    active: false, // the document's stream is over: continuations bring the rows
    count: 0, // continuations the server answered
    failures: 0, // attempts in a row that brought no row
    from: 0, // rows before the continuation in flight
    waiting: true, // no continuation is streaming (between attempts)
    heard: 0, // when the continuation in flight last gave bytes
    abort: null,
    statusUrl: "", // the continuation's /streams/<request id>, for its progress reports
    reported: -1,
  };

  // A group's own resume point, <!--ts-after URL--> after its rows: only a complete group has it.
  function pointIn(g) {
    for (let node = g.lastChild; node; node = node.previousSibling) {
      if (node.nodeType === Node.ELEMENT_NODE) return null;
      if (node.nodeType === Node.COMMENT_NODE && node.data.startsWith("ts-after ")) {
        try {
          return decodeURIComponent(node.data.slice(9));
        } catch (e) {
          return null;
        }
      }
    }
    return null;
  }

  function lastPoint() {
    const url = group && pointIn(group);
    return url ? { rows: groupStart + rowsIn(group), url: url } : resume.at;
  }

  function markerPoint() {
    const url = markers.length ? markers[markers.length - 1].dataset.resume : "";
    return url ? { rows: countRows(), url: url } : null;
  }

  function sameOrigin(url) {
    try {
      return new URL(url, location.href).origin === location.origin;
    } catch (e) {
      return false;
    }
  }

  // The document's stream is over: stop it (nothing more of it may come in), keep the rows up
  // to the resume point and fetch the rest.
  function resumeFrom(point) {
    if (!point || !sameOrigin(point.url) || !window.fetch || !window.TextDecoder) return false;
    resume.active = true;
    if (document.readyState === "loading") window.stop();
    for (const marker of [...markers]) marker.remove();
    cutTo(point.rows);
    follow(point);
    return true;
  }

  // Rows after `rows` came from a stream that did not reach its next resume point: they go,
  // and come again from the continuation (at most the rows between two resume points).
  function cutTo(rows) {
    countRows();
    if (group) {
      const n = rowsIn(group);
      if (groupStart + n > rows) {
        while (group.childElementCount > rows - groupStart && group.lastElementChild) {
          group.lastElementChild.remove();
        }
        if (!group.childElementCount) group.remove();
        else groupDone(group, groupStart, group.childElementCount);
      } else {
        groupDone(group, groupStart, n);
      }
      group = null;
    }
    // Groups counted before, after the point (a page has a resume point every few batches):
    // those still in the window go too; past the window they are gone already.
    while (shown.length && shown[shown.length - 1].first >= rows) shown.pop().el.remove();
    const last = shown[shown.length - 1];
    if (last && last.first + last.n > rows) {
      while (last.el.childElementCount > rows - last.first) last.el.lastElementChild.remove();
      last.n = rows - last.first;
    }
    winEnd = last ? last.first + last.n : winStart;
    counted = rows;
    if (windowed) updateGaps();
  }

  function follow(point) {
    resume.from = point.rows;
    resume.waiting = true;
    resume.heard = performance.now();
    resume.abort = window.AbortController ? new AbortController() : null;
    fetch(point.url, { cache: "no-store", credentials: "same-origin",
      signal: resume.abort && resume.abort.signal })
      .then((response) => {
        if (!response.ok) {
          const why = new Error(`the server answered ${response.status}`);
          // Refused (a token another deployment signed, a table gone, no access): asking
          // again cannot help. Busy, draining or unreachable can.
          why.final = response.status >= 400 && response.status < 500 && response.status !== 429;
          throw why;
        }
        if (!response.body) throw new Error("the browser cannot read a body as it comes");
        resume.count += 1;
        resume.waiting = false;
        // The continuation is a page of its own: told how far the script has taken it, its
        // stream stays near the page and sends the rows past the window as counts, as the
        // document's did (stream/pacing.py; /streams/<its request id>).
        const id = response.headers.get("X-Request-ID");
        const own = document.getElementById("ts-status").dataset.statusUrl || "";
        resume.statusUrl = id && own ? own.replace(/[^/]*$/, encodeURIComponent(id)) : "";
        resume.reported = -1;
        return continuation(response.body.getReader());
      })
      .then(completed)
      .catch(retry);
  }

  function retry(why) {
    resume.waiting = true;
    resume.failures = counted > resume.from ? 0 : resume.failures + 1;
    const next = why && why.point !== undefined ? why.point : lastPoint();
    if (!next || !sameOrigin(next.url) || (why && why.final) || resume.failures >= MAX_FAILURES ||
        resume.count >= MAX_RESUMES) {
      clearInterval(timer);
      const tried = resume.failures > 1 ? ` after ${resume.failures} attempts in a row` : "";
      show("error", `error: the stream was cut after ${number.format(counted)} rows and could ` +
        `not be resumed${tried} (${why && why.message}); the table is incomplete`);
      return;
    }
    cutTo(next.rows);
    setTimeout(() => follow(next), BACKOFF_MS * 2 ** resume.failures);
  }

  function cut(point, message) {
    const why = new Error(message);
    why.point = point;
    return why;
  }

  // The continuation is the same page: its row groups are appended one by one, as the parser
  // appends the document's, each once complete (its </tbody> came); a marker inside one ends
  // it with the rows before it, whole, and the marker's own resume point.
  async function continuation(reader) {
    const decoder = new TextDecoder();
    let text = "";
    let inRows = false;
    let rowsEnded = false;
    for (;;) {
      const { done, value } = await reader.read();
      resume.heard = performance.now();
      text += done ? decoder.decode() : decoder.decode(value, { stream: true });
      if (!inRows && !rowsEnded) {
        const at = text.indexOf("<tbody>");
        if (at >= 0) {
          text = text.slice(at + 7);
          inRows = true;
        }
      }
      while (inRows) {
        const close = text.indexOf("</tbody>");
        const marker = text.indexOf('<p class="ts-error"');
        if (marker >= 0 && (close < 0 || marker < close)) {
          const end = text.indexOf(">", marker);
          if (end < 0) break;
          if (text.slice(0, marker).trim()) appendGroup(text.slice(0, marker));
          const url = markerUrl(text.slice(marker, end + 1));
          throw cut(url ? { rows: countRows(), url: url } : null, "cut again");
        }
        if (close < 0 || (!done && text.length < close + 15)) break;
        appendGroup(text.slice(0, close));
        if (text.startsWith("<tbody>", close + 8)) {
          text = text.slice(close + 15);
        } else {
          text = text.slice(close + 8);
          inRows = false;
          rowsEnded = true;
        }
      }
      if (done) break;
    }
    const footer = rowsEnded && /<footer class="ts-footer" id="ts-complete" data-rows-sent="(\d+)"/.exec(text);
    if (!footer) {
      const marker = text.indexOf('<p class="ts-error"');
      const url = marker >= 0 ? markerUrl(text.slice(marker, text.indexOf(">", marker) + 1)) : "";
      throw cut(url ? { rows: countRows(), url: url } : lastPoint(),
        "the continuation ended without its footer");
    }
    const next = /<a rel="next" href="([^"]*)">/.exec(text);
    return { sent: resume.from + Number(footer[1]), next: next ? markerUrl(`<a href="${next[1]}">`, "href") : "" };
  }

  // An attribute of one tag, read by the browser's parser in an inert template.
  function markerUrl(tag, attribute = "data-resume") {
    const template = document.createElement("template");
    template.innerHTML = tag;
    const el = template.content.firstElementChild;
    return (el && el.getAttribute(attribute)) || "";
  }

  function appendGroup(markup) {
    const g = document.createElement("tbody");
    g.className = "ts-resumed";
    if (windowed) {
      // Past the window the group would be released at once: its rows are only counted, as
      // the stream counts them for a page that reports, and fetched by range when wanted.
      g.append(document.createComment(`ts-rows ${rowsInMarkup(markup)}`));
      const after = markup.lastIndexOf("<!--ts-after ");
      if (after >= 0) {
        g.append(document.createComment(markup.slice(after + 4, markup.indexOf("-->", after))));
      }
    } else {
      g.innerHTML = markup;
    }
    resume.table.append(g);
    if (!group) {
      group = g;
      groupStart = counted;
      startGroup(g);
    }
    countRows();
  }

  // Every row's markup opens with <tr (the row template's contract); cells are escaped, so
  // no cell can hold one. A batch past a paced continuation's window is its count.
  function rowsInMarkup(markup) {
    let n = 0;
    for (const packed of markup.matchAll(/<!--ts-rows (\d+)-->/g)) n += Number(packed[1]);
    for (let at = markup.indexOf("<tr"); at >= 0; at = markup.indexOf("<tr", at + 3)) {
      const next = markup.charCodeAt(at + 3);
      if (next === 62 || next === 32 || next === 9 || next === 10) n += 1; // > space tab LF
    }
    return n;
  }

  function completed(result) {
    clearInterval(timer);
    const rows = countRows();
    if (windowed && group) {
      group.remove();
      group = null;
      review();
    }
    const footer = element("footer", { class: "ts-footer", id: "ts-complete",
      "data-rows-sent": String(result.sent) }, `${number.format(result.sent)} rows, complete.`);
    resume.table.after(footer);
    if (result.next && sameOrigin(result.next)) {
      // The continuation's "next" is after the same last row; the page's own limit stays.
      const next = new URL(result.next, location.href);
      const limit = new URLSearchParams(location.search).get("limit");
      if (limit !== null) next.searchParams.set("limit", limit);
      const link = element("a", { rel: "next", href: next.pathname + next.search },
        `next ${number.format(Number(limit))} rows`);
      const p = element("p", { class: "ts-next" });
      p.append(link);
      footer.after(p);
    }
    if (result.sent === rows) {
      show("complete", `${number.format(rows)} rows, complete`);
    } else {
      show("error", `error: the server sent ${number.format(result.sent)} rows, the page has ` +
        `${number.format(rows)}; the table is incomplete`);
    }
    updateBar();
  }

  function resumingTick(rows) {
    const now = performance.now();
    if (!resume.waiting && now - resume.heard > SILENCE_MS && resume.abort) resume.abort.abort();
    if (resume.waiting) {
      show("resuming", `the stream was cut after ${number.format(rows)} rows: resuming…`);
    } else {
      if (config && resume.statusUrl && rows !== resume.reported) {
        resume.reported = rows;
        report(rows - resume.from, resume.statusUrl);
      }
      show("loading", `loading… ${number.format(rows)} rows so far`);
    }
    if (windowed) {
      updateGaps();
      review();
    }
  }

  // ---- the window --------------------------------------------------------------------------
  let config = null; // from the table's data attributes; null: the page keeps every row
  let windowed = false;
  let shown = []; // the row groups in the window, in order: {el, first, n}
  let winStart = 0; // rows [winStart, winEnd) are in the document
  let winEnd = 0;
  let topGap = null;
  let bottomGap = null;
  let fetching = false;
  let pending = 0; // a scheduled review (requestAnimationFrame id)

  function configure(table) {
    const data = table.dataset;
    const keep = Number(data.pageRows);
    if (!data.rowsUrl || !(keep > 0) || !window.fetch) return;
    config = {
      url: data.rowsUrl,
      keep: keep,
      offset: Number(data.offset) || 0,
      chunk: Math.max(1, Number(data.fragmentRows) || 1000),
      columns: data.columns ? JSON.parse(data.columns) : [],
      table: table,
    };
  }

  function startGroup(g) {
    g.dataset.first = String(groupStart); // past the window, CSS hides it (.ts-gap-bottom ~)
  }

  function groupDone(g, first, n) {
    const url = pointIn(g);
    if (url) resume.at = { rows: first + n, url: url };
    if (windowed) {
      g.remove();
      return;
    }
    shown.push({ el: g, first: first, n: n });
    winEnd = first + n;
    if (config && winEnd >= config.keep) openWindow(g);
  }

  function openWindow(lastKept) {
    windowed = true;
    document.documentElement.classList.add("ts-windowed");
    topGap = gap("ts-gap-top");
    bottomGap = gap("ts-gap-bottom");
    config.table.tHead.after(topGap);
    lastKept.after(bottomGap); // the parser goes on appending after it, hidden
    makeBar();
    updateGaps();
    addEventListener("scroll", schedule, { passive: true });
    addEventListener("resize", schedule, { passive: true });
  }

  function gap(name) {
    const g = document.createElement("tbody");
    g.className = "ts-gap " + name;
    g.setAttribute("aria-hidden", "true");
    return g;
  }

  function updateGaps() {
    topGap.hidden = winStart === 0;
    topGap.dataset.label = `rows 1–${number.format(winStart)} are not in the page: ` +
      "scroll up to bring them back";
    const more = counted > winEnd;
    bottomGap.hidden = !more && document.readyState !== "loading";
    bottomGap.dataset.label = more ?
      `rows ${number.format(winEnd + 1)}–${number.format(counted)} are not in the page: ` +
        "scroll down to bring them back" :
      "more rows are on their way";
    updateBar();
  }

  function schedule() {
    if (!pending) pending = requestAnimationFrame(() => { pending = 0; review(); });
  }

  // Fetch rows back when a gap comes near the viewport (within two screens).
  function review() {
    updateSlider();
    if (fetching || !windowed) return;
    const margin = 2 * innerHeight;
    if (winStart > 0 && topGap.getBoundingClientRect().bottom > -margin) {
      const from = Math.max(0, winStart - config.chunk);
      load(from, winStart).then((g) => g && keepPlace(firstRow(shown[0]), () => {
        (shown.length ? shown[0].el : bottomGap).before(g.el);
        shown.unshift(g);
        winStart = from;
        while (winEnd - winStart - shown[shown.length - 1].n >= config.keep) drop(shown.pop());
        winEnd = shown[shown.length - 1].first + shown[shown.length - 1].n;
      }));
    } else if (winEnd < counted && bottomGap.getBoundingClientRect().top < innerHeight + margin) {
      const to = Math.min(counted, winEnd + config.chunk);
      load(winEnd, to).then((g) => g && keepPlace(lastRow(shown[shown.length - 1]), () => {
        bottomGap.before(g.el);
        shown.push(g);
        winEnd = to;
        while (winEnd - winStart - shown[0].n >= config.keep) drop(shown.shift());
        winStart = shown[0].first;
      }));
    }
  }

  function drop(g) {
    g.el.remove();
  }

  // Rows [from, to) from the server as a <tbody>, or null (said in the gap) when they are not
  // exactly those rows. One fetch at a time.
  function load(from, to) {
    fetching = true;
    const url = `${config.url}&offset=${config.offset + from}&limit=${to - from}`;
    return fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then((response) => {
        if (!response.ok) throw new Error(`the server answered ${response.status}`);
        return response.text();
      })
      .then((markup) => {
        const el = document.createElement("tbody");
        el.className = "ts-fetched";
        el.innerHTML = markup;
        if (el.rows.length !== to - from) {
          throw new Error(`${el.rows.length} rows came for ${to - from}`);
        }
        el.dataset.first = String(from);
        return { el: el, first: from, n: to - from };
      })
      .catch((why) => {
        const where = from < winStart ? topGap : bottomGap;
        where.dataset.label = `rows ${number.format(from + 1)}–${number.format(to)} could not ` +
          `be loaded (${why.message}): scroll to try again`;
        return null;
      })
      .finally(() => { fetching = false; });
  }

  // Change the window without moving what the reader sees: `anchor`, a row that stays (the
  // window's first row when rows come above it, its last when they come below and the top
  // goes), is where it was, and so is everything near it.
  function keepPlace(anchor, change) {
    const before = anchor && anchor.getBoundingClientRect().top;
    const root = document.documentElement;
    root.style.overflowAnchor = "none"; // the browser's own anchoring would move it twice
    change();
    updateGaps();
    if (anchor && anchor.isConnected) scrollBy(0, anchor.getBoundingClientRect().top - before);
    requestAnimationFrame(() => { root.style.overflowAnchor = ""; schedule(); });
  }

  function firstRow(g) {
    return g ? g.el.firstElementChild : null;
  }

  function lastRow(g) {
    return g ? g.el.lastElementChild : null;
  }

  // The first row under the sticky header, if a window row is there.
  function rowAtTop() {
    const table = config.table;
    const box = table.getBoundingClientRect();
    const y = Math.max(table.tHead.getBoundingClientRect().bottom, 0) + 2;
    const hit = document.elementFromPoint(box.left + 4, Math.min(y, innerHeight - 1));
    const row = hit && hit.closest("tr");
    return row && row.parentElement && row.parentElement.dataset.first !== undefined &&
      !row.parentElement.hidden ? row : null;
  }

  function firstRowInView() {
    const row = rowAtTop();
    if (row) return Number(row.parentElement.dataset.first) + row.sectionRowIndex;
    if (!shown.length) return 0;
    return topGap.getBoundingClientRect().bottom > 0 ? winStart : Math.max(0, winEnd - 1);
  }

  // Row `n` (from 1) in view: from the window when it is there, else its rows are fetched and
  // replace the window.
  function jump(n) {
    if (!windowed || !counted) return;
    const target = Math.min(Math.max(1, Math.floor(n) || 1), counted) - 1;
    if (target >= winStart && target < winEnd) {
      reveal(target);
      return;
    }
    if (fetching) {
      setTimeout(() => jump(n), 50);
      return;
    }
    const from = Math.max(0, Math.min(target - (config.chunk >> 1), counted - config.chunk));
    const to = Math.min(counted, from + config.chunk);
    load(from, to).then((g) => {
      if (!g) return;
      for (const old of shown) drop(old);
      bottomGap.before(g.el);
      shown = [g];
      winStart = from;
      winEnd = to;
      updateGaps();
      reveal(target);
    });
  }

  function reveal(index) {
    for (const g of shown) {
      if (index >= g.first && index < g.first + g.n) {
        const row = g.el.rows[index - g.first];
        row.scrollIntoView({ block: "center" });
        row.classList.add("ts-target");
        setTimeout(() => row.classList.remove("ts-target"), 2000);
        schedule();
        return;
      }
    }
  }

  // ---- the bar: the whole table in one control, and the search find-in-page cannot do -----
  let bar = null;

  function makeBar() {
    bar = document.createElement("div");
    bar.className = "ts-bar";
    bar.id = "ts-bar";
    bar.setAttribute("role", "region");
    bar.setAttribute("aria-label", "rows of the table");
    const slider = element("input", { type: "range", id: "ts-slider", min: "1", step: "1",
      "aria-label": "row of the table at the top of the view" });
    slider.addEventListener("change", () => jump(Number(slider.value)));
    const goto = element("form", { id: "ts-goto" });
    const row = element("input", { type: "number", min: "1", name: "row", id: "ts-row",
      placeholder: "row", "aria-label": "row number" });
    goto.append(row, element("button", { type: "submit" }, "go to row"));
    goto.addEventListener("submit", (event) => {
      event.preventDefault();
      jump(Number(row.value));
    });
    const note = element("p", { class: "ts-find", id: "ts-find" },
      "Find in page (Ctrl+F) sees only the rows in the page. To search every row, filter: ");
    note.append(filterForm());
    bar.append(slider, goto, element("span", { id: "ts-shown" }), note);
    document.body.append(bar);
    updateBar();
  }

  // column contains text → the same page with ?COLUMN__contains=TEXT, the query grammar of
  // docs/queries.md (the server filters every row; the counter then counts the matches).
  function filterForm() {
    const form = element("form", { id: "ts-filter" });
    const column = element("select", { name: "column", "aria-label": "column" });
    for (const name of config.columns) column.append(element("option", { value: name }, name));
    const text = element("input", { type: "search", name: "text", "aria-label": "text",
      placeholder: "contains…", required: "" });
    form.append(column, text, element("button", { type: "submit" }, "filter"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const params = new URLSearchParams(location.search);
      params.delete("offset");
      params.delete("_after");
      params.append(`${column.value}__contains`, text.value);
      location.assign(`${location.pathname}?${params}`);
    });
    return form;
  }

  function element(tag, attributes, text) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, value);
    if (text) el.textContent = text;
    return el;
  }

  function updateBar() {
    if (!bar) return;
    const slider = document.getElementById("ts-slider");
    slider.max = String(Math.max(1, counted));
    document.getElementById("ts-row").max = String(Math.max(1, counted));
    document.getElementById("ts-shown").textContent = `rows ${number.format(winStart + 1)}–` +
      `${number.format(winEnd)} of ${number.format(counted)} in the page`;
    updateSlider();
  }

  function updateSlider() {
    const slider = bar && document.getElementById("ts-slider");
    if (slider && document.activeElement !== slider) slider.value = String(firstRowInView() + 1);
  }

  if (document.readyState === "loading") {
    tick();
    timer = setInterval(tick, TICK_MS);
    document.addEventListener("DOMContentLoaded", finish, { once: true });
  } else {
    finish();
  }
})();
