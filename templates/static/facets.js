// A page's facets (templates/table.html, when its URL asks with ?_facet=COLUMN): how many rows
// of this filter hold each value of a column, each value a link that adds it as a filter.
//
// The counts are a separate request (GET /tables/<name>/facets.json, service/views/facets.py),
// made by this script once the page head has arrived, so the table's first byte never waits
// for a count; the rows stream while the database counts. A facet whose count took longer than
// the server's limit comes back "timed_out" and says so. Every value comes from the data: it is
// only ever set as text or as an attribute through the DOM, never as markup.
(() => {
  "use strict";
  const number = new Intl.NumberFormat("en-US");

  function element(tag, attributes, text) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) el.setAttribute(name, value);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // The server's link adds the value as a filter to the table's query; the page keeps asking
  // for its facets, and starts from the first row of the new filter.
  function link(url, asked) {
    const target = new URL(url, location.href);
    if (target.origin !== location.origin) return null;
    target.searchParams.delete("_after");
    target.searchParams.delete("offset");
    for (const column of asked) target.searchParams.append("_facet", column);
    return target.pathname + target.search;
  }

  function facet(column, counted, asked) {
    const box = element("section", { class: "ts-facet", "data-column": column });
    box.append(element("h2", {}, column));
    if (counted.timed_out) {
      box.append(element("p", { class: "ts-facet-note ts-facet-timeout" },
        "counting took longer than the server's limit; a filter makes it cheaper"));
      return box;
    }
    const list = element("ul");
    for (const { value, count, url } of counted.values) {
      const item = element("li");
      const label = value === null ? "(empty)" : String(value);
      const href = link(url, asked);
      const name = href ? element("a", { href: href }, label) : element("span", {}, label);
      if (value === null) name.classList.add("ts-null");
      item.append(name, " ", element("span", { class: "ts-count" }, number.format(count)));
      list.append(item);
    }
    box.append(list);
    if (!counted.values.length) box.append(element("p", { class: "ts-facet-note" }, "no rows"));
    if (counted.truncated) {
      box.append(element("p", { class: "ts-facet-note" }, "and more values (the most frequent shown)"));
    }
    return box;
  }

  function failed(where, status, text) {
    // facets.json refuses with {"error": message}; anything else in front of it (a proxy, the
    // sign-in gate) with a page, whose message is read as text from an inert document.
    let said = "";
    try {
      said = String(JSON.parse(text).error || "");
    } catch (notJson) {
      const page = new DOMParser().parseFromString(text, "text/html");
      said = (page.querySelector("main p, p") || page.body || { textContent: "" }).textContent;
    }
    where.append(element("p", { class: "ts-facet-note ts-facet-error" },
      `facets could not be counted (${status}): ${said.trim().slice(0, 300)}`));
  }

  function load() {
    const where = document.getElementById("ts-facets");
    if (!where || !where.dataset.facetsUrl || !window.fetch) return;
    const asked = new URLSearchParams(location.search).getAll("_facet");
    where.hidden = false;
    where.dataset.state = "loading";
    const waiting = element("p", { class: "ts-facet-note" }, "counting…");
    where.append(waiting);
    fetch(where.dataset.facetsUrl, { cache: "no-store", credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : response.text().then((text) => {
        failed(where, response.status, text);
        return null;
      })))
      .then((answer) => {
        if (!answer) return;
        for (const column of Object.keys(answer.facets)) {
          where.append(facet(column, answer.facets[column], asked));
        }
      })
      .catch((why) => {
        where.append(element("p", { class: "ts-facet-note ts-facet-error" },
          `facets could not be counted: ${why.message}`));
      })
      .finally(() => {
        waiting.remove();
        where.dataset.state = "done";
      });
  }

  // Loaded with `async` from the page head: the section may not be parsed yet.
  if (document.getElementById("ts-facets")) {
    load();
  } else {
    const wait = setInterval(() => {
      if (document.getElementById("ts-facets") || document.readyState !== "loading") {
        clearInterval(wait);
        load();
      }
    }, 20);
  }
})();
