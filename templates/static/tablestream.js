// The live status of a streamed table page (templates/table.html), with no per-row work.
//
// Loaded with `async` from the page head: it may run before the table exists or after the
// whole page is parsed, so it looks elements up by id on every tick and never assumes either.
// Rows are counted incrementally: each tick walks only the rows added since the last one
// (nextElementSibling from the last row counted, then on into the next <tbody>: the page opens
// one per batch of rows), so a 1M-row page costs O(rows) in total, not O(rows) per tick.
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
//             equal to the rows on the page: "N rows, complete"
//   error     the server's error marker was parsed, or parsing ended without the footer (a
//             browser that finishes a cut document) or with a different row count.
// The page is served with `script-src 'self'`: this file is the only script, nothing inline.
(() => {
  "use strict";
  const TICK_MS = 250;
  const MARKER_MS = 1000; // the error marker comes after the last row: look once rows stop
  const STALL_MS = 5000;
  const ASK_MS = 2000; // rows stopped this long: ask the server, then again every ASK_MS
  const ANSWER_MS = 5000; // an ask unanswered this long is abandoned and asked again
  const number = new Intl.NumberFormat("en-US");
  // Live: reading .length walks the document only after it changed, i.e. once per quiet spell.
  const markers = document.getElementsByClassName("ts-error");
  let counted = 0;
  let last = null;
  let timer = 0;
  let grewAt = performance.now();
  let askedAt = 0;
  let asking = false;
  let serverSays = null; // the last answer of /streams/<request id>

  let group = null; // the <tbody> being counted: the page opens one per batch of rows

  function countRows() {
    if (!group) {
      const table = document.getElementById("ts-table");
      group = table && table.tBodies[0];
      if (!group) return counted;
    }
    for (;;) {
      let row = last ? last.nextElementSibling : group.firstElementChild;
      if (row) grewAt = performance.now();
      while (row) {
        counted += 1;
        last = row;
        row = row.nextElementSibling;
      }
      const next = group.nextElementSibling;
      if (!next || next.tagName !== "TBODY") return counted;
      group = next;
      last = null;
    }
  }

  function show(state, text) {
    const status = document.getElementById("ts-status");
    if (!status) return;
    status.hidden = false;
    status.dataset.state = state;
    status.textContent = text;
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
      .then((response) => (response.ok ? response.json() : null))
      .then((answer) => { serverSays = answer; })
      .catch(() => {})
      .finally(() => { clearTimeout(deadline); asking = false; });
  }

  function cutOnServer(rows, answer) {
    clearInterval(timer);
    const why = answer.outcome === "error" ? "failed on the server" : "was cut by the server";
    show("error", `error: the stream ${why} after ${number.format(answer.rows_sent)} rows ` +
      `(${number.format(rows)} shown); the table is incomplete`);
  }

  function tick() {
    const rows = countRows();
    const now = performance.now();
    const quiet = now - grewAt;
    const ended = serverSays && (serverSays.outcome === "error" ||
      serverSays.outcome === "cut" || serverSays.outcome === "client_aborted");
    if (quiet >= ASK_MS && now - askedAt >= ASK_MS) ask();
    if (quiet >= MARKER_MS && markers.length) {
      failed(rows);
    } else if (quiet >= MARKER_MS && ended) {
      cutOnServer(rows, serverSays);
    } else if (quiet < STALL_MS) {
      show("loading", `loading… ${number.format(rows)} rows so far`);
    } else {
      show("stalled", `no new rows for ${Math.floor(quiet / 1000)} s (${number.format(rows)} ` +
        "so far): the source is slow or the stream was cut");
    }
  }

  function finish() {
    clearInterval(timer);
    const rows = countRows();
    const footer = document.getElementById("ts-complete");
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
  }

  if (document.readyState === "loading") {
    tick();
    timer = setInterval(tick, TICK_MS);
    document.addEventListener("DOMContentLoaded", finish, { once: true });
  } else {
    finish();
  }
})();
