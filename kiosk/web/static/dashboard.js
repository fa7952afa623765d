// Live dashboard: every 2 s refresh the health figures, the last decision and add new events
// (no libraries). Words come from the page (data-* attributes filled from the catalogue).
"use strict";
(function () {
  const main = document.getElementById("dashboard");
  const events = document.getElementById("events");
  const chart = document.getElementById("chart");
  const stale = document.getElementById("stale");
  const lastCard = document.getElementById("last-decision");
  const language = document.documentElement.lang === "en" ? "en" : "vi";
  const reasons = JSON.parse(main.dataset.reasons);
  const outcomes = JSON.parse(main.dataset.outcomes);
  let after = Number(main.dataset.after);
  const pageSize = Number(main.dataset.page);

  function get(state, path) {
    return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), state);
  }

  function fmt(value) {  // same rules as the server's "fmt" filter
    if (value === null || value === undefined) return "—";
    if (typeof value === "boolean") return value ? main.dataset.yes : main.dataset.no;
    if (Array.isArray(value)) return value.length ? value.join(", ") : "—";
    return String(value);
  }

  function localTimes(root) {
    root.querySelectorAll("time[data-ts]").forEach((t) => {
      t.textContent = new Date(Number(t.dataset.ts)).toLocaleString();
    });
  }

  function showState(state) {
    main.querySelectorAll("[data-k]").forEach((el) => { el.textContent = fmt(get(state, el.dataset.k)); });
    main.querySelectorAll("[data-ok]").forEach((el) => {
      const ok = Boolean(get(state, el.dataset.ok));
      el.className = ok ? "ok" : "bad";
      el.textContent = ok ? el.dataset.good : el.dataset.bad;
    });
    main.querySelectorAll("[data-on]").forEach((el) => {
      const on = get(state, el.dataset.on);  // an empty list is "off", as in the template
      el.className = (Array.isArray(on) ? on.length : on) ? "bad" : "ok";
    });
  }

  function row(event) {
    const data = event.data || {};
    const decision = event.type === "decision";
    const temperature = (decision && data.temperature) || {};
    const cells = [
      event.seq, null, event.type,
      decision ? (outcomes[data.outcome] || data.outcome) : "",
      decision ? (reasons[data.reason] || data.reason) : "",
      decision ? (data.subject || "") : "",
      temperature.celsius == null ? "" : temperature.celsius,
      decision ? "" : JSON.stringify(data),
    ];
    const tr = document.createElement("tr");
    tr.className = decision ? data.outcome : "";
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 4 && decision) td.title = data.reason;
      if (i === 1) {
        const time = document.createElement("time");
        time.dataset.ts = event.ts_ms;
        td.appendChild(time);
      } else {
        td.textContent = text;
      }
      tr.appendChild(td);
    });
    localTimes(tr);
    return tr;
  }

  async function fetchJson(url) {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) { location.reload(); throw new Error("logged out"); }
    if (!response.ok) throw new Error(response.status + " " + url);
    return response.json();
  }

  function kind(decision) {  // same rules as the server's decision_class filter
    return decision.reason === "fever" ? "fever" : decision.outcome;
  }

  function showLast(decision) {
    if (!decision || String(decision.seq) === lastCard.dataset.seq) return;
    lastCard.dataset.seq = decision.seq;
    lastCard.className = "decision " + kind(decision);
    lastCard.querySelector(".words").textContent = decision["message_" + language] || "";
    lastCard.querySelector(".celsius").textContent =
      decision.temperature_c == null ? "" : decision.temperature_c.toFixed(1) + " °C";
  }

  async function poll() {
    try {
      showState(await fetchJson("/api/v1/status"));
      showLast((await fetchJson("/display/last.json")).decision);
      if (main.dataset.live) {
        const query = new URLSearchParams({ after: after, limit: pageSize });
        if (main.dataset.type) query.set("type", main.dataset.type);
        if (main.dataset.outcome) query.set("outcome", main.dataset.outcome);
        const fresh = await fetchJson("/api/v1/events?" + query);
        if (fresh.length) {
          events.querySelectorAll("tr.empty").forEach((tr) => tr.remove());
          fresh.slice().reverse().forEach((event) => events.prepend(row(event)));
          while (events.rows.length > pageSize) events.deleteRow(-1);
          after = fresh[0].seq;
          if (fresh.some((event) => event.type === "decision")) {
            const src = new URL(chart.src);
            src.searchParams.set("t", Date.now());
            chart.src = src.toString();
          }
        }
      }
      stale.hidden = true;
    } catch (error) {
      stale.hidden = false;
    }
  }

  localTimes(document);
  setInterval(poll, 2000);
})();
