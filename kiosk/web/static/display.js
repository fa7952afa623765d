// Gate display: poll the last decision every 0.5 s; show a new one full screen, then idle.
// Colours: grant green, deny red, refer amber, fever red and blinking with the temperature
// large; the words come from the server's catalogue.
"use strict";
(function () {
  const body = document.body;
  const clearMs = Number(body.dataset.clearMs);
  const offlineAfter = 6;  // failed polls (3 s) before the screen says "out of service"
  let lastSeq = Number(body.dataset.lastSeq);
  let clearTimer = null;
  let failures = 0;

  function screen(name) {
    ["idle", "result", "offline"].forEach((id) => { document.getElementById(id).hidden = id !== name; });
  }

  function idle() {
    body.className = "idle";
    screen("idle");
  }

  function kind(decision) {  // same rules as the dashboard's decision_class filter
    if (decision.reason === "fever") return "fever";
    return ["grant", "deny", "refer"].includes(decision.outcome) ? decision.outcome : "deny";
  }

  function show(decision) {
    body.className = kind(decision);
    document.getElementById("message-vi").textContent = decision.message_vi || "";
    document.getElementById("message-en").textContent = decision.message_en || "";
    document.getElementById("temperature").textContent =
      decision.temperature_c == null ? "" : decision.temperature_c.toFixed(1) + " °C";
    screen("result");
    clearTimeout(clearTimer);
    clearTimer = setTimeout(idle, clearMs);
  }

  async function poll() {
    try {
      const response = await fetch("/display/last.json", { cache: "no-store" });
      if (!response.ok) throw new Error(String(response.status));
      const decision = (await response.json()).decision;
      if (failures >= offlineAfter) idle();
      failures = 0;
      if (decision && decision.seq !== lastSeq) {
        lastSeq = decision.seq;
        show(decision);
      }
    } catch (error) {
      failures += 1;
      if (failures === offlineAfter) {
        clearTimeout(clearTimer);
        body.className = "offline";
        screen("offline");
      }
    }
  }

  setInterval(poll, 500);
})();
