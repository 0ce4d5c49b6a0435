// The live status of a streamed table page (templates/table.html), with no per-row work.
//
// Loaded with `async` from the page head: it may run before the table exists or after the
// whole page is parsed, so it looks elements up by id on every tick and never assumes either.
// Rows are counted incrementally: each tick walks only the rows added since the last one
// (nextElementSibling from the last row counted), so a 1M-row page costs O(rows) in total,
// not O(rows) per tick as `tbody.rows.length` does after every insertion.
//
// The states, in #ts-status[data-state]:
//   loading   the document is still being parsed: "loading… N rows so far"
//   complete  parsing ended and the success footer #ts-complete is there, its data-rows-sent
//             equal to the rows on the page: "N rows, complete"
//   error     parsing ended without that footer (the server cut the stream, the network
//             failed, the user stopped the load) or the counts differ: the table is incomplete.
// The page is served with `script-src 'self'`: this file is the only script, nothing inline.
(() => {
  "use strict";
  const TICK_MS = 250;
  const number = new Intl.NumberFormat("en-US");
  let counted = 0;
  let last = null;
  let timer = 0;

  function countRows() {
    const table = document.getElementById("ts-table");
    const body = table && table.tBodies[0];
    if (!body) return counted;
    let row = last ? last.nextElementSibling : body.firstElementChild;
    while (row) {
      counted += 1;
      last = row;
      row = row.nextElementSibling;
    }
    return counted;
  }

  function show(state, text) {
    const status = document.getElementById("ts-status");
    if (!status) return;
    status.hidden = false;
    status.dataset.state = state;
    status.textContent = text;
  }

  function tick() {
    show("loading", `loading… ${number.format(countRows())} rows so far`);
  }

  function finish() {
    clearInterval(timer);
    const rows = countRows();
    const footer = document.getElementById("ts-complete");
    const sent = footer ? Number(footer.dataset.rowsSent) : NaN;
    if (footer && sent === rows) {
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
