// The reviewer console: ticking countdowns, keyboard shortcuts (j/k/Enter/a/r/n), and a
// case page that notices when the case changed elsewhere. htmx refreshes the queue's rows.
(function () {
  "use strict";
  const zh = document.body.dataset.lang !== "en";

  function fmt(seconds) {
    const minutes = Math.floor(Math.abs(seconds) / 60);
    const h = Math.floor(minutes / 60), m = minutes % 60;
    return h ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m`;
  }

  function tick() {
    const now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach((el) => {
      if (!el.dataset.deadline) return;
      const left = Math.floor((Date.parse(el.dataset.deadline) - now) / 1000);
      let cls = "ok", text = fmt(left);
      if (left <= 0) { cls = "overdue"; text = zh ? `超时 ${fmt(left)}` : `${fmt(left)} over`; }
      else if (left < 3600) cls = "red";
      else if (left < 4 * 3600) cls = "amber";
      el.textContent = text;
      el.className = "countdown " + cls;
    });
  }
  tick();
  setInterval(tick, 1000);

  // --- the queue: j/k select, Enter opens, a/r open the case at approve/reject, n takes the next
  let selected = sessionStorage.getItem("queue-selected") || "";
  function rows() { return Array.from(document.querySelectorAll("tr.row")); }
  function mark() {
    const all = rows();
    let found = false;
    all.forEach((r) => { const on = r.dataset.id === selected; r.classList.toggle("selected", on); found = found || on; });
    if (!found && all.length) { selected = all[0].dataset.id; all[0].classList.add("selected"); }
  }
  function move(step) {
    const all = rows();
    if (!all.length) return;
    let i = all.findIndex((r) => r.dataset.id === selected);
    i = Math.max(0, Math.min(all.length - 1, (i < 0 ? 0 : i + step)));
    selected = all[i].dataset.id;
    sessionStorage.setItem("queue-selected", selected);
    mark();
    all[i].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("click", (event) => {
    const row = event.target.closest("tr.row");
    if (row && !event.target.closest("a, button, form")) window.location = row.dataset.href;
  });
  document.body.addEventListener("htmx:afterSwap", mark);
  mark();

  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select");
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const queue = document.querySelector("tr.row");
    const onCase = document.getElementById("case");
    if (queue) {
      const row = rows().find((r) => r.dataset.id === selected);
      if (event.key === "j") move(1);
      else if (event.key === "k") move(-1);
      else if (event.key === "Enter" && row) window.location = row.dataset.href;
      else if (event.key === "a" && row) window.location = row.dataset.href + "#approve";
      else if (event.key === "r" && row) window.location = row.dataset.href + "#reject";
      else return;
      event.preventDefault();
    }
    if (event.key === "n" && document.getElementById("next-form")) {
      document.getElementById("next-form").submit();
      event.preventDefault();
    }
    if (onCase) {
      if (event.key === "a" && document.getElementById("amount")) document.getElementById("amount").focus();
      else if (event.key === "r" && document.getElementById("reject-template")) document.getElementById("reject-template").focus();
      else if (event.key === "u" || event.key === "Escape") window.location = "/console/queue";
      else return;
      event.preventDefault();
    }
  });

  // --- the case page: opened at #approve / #reject; watch for changes made elsewhere
  const caseEl = document.getElementById("case");
  if (caseEl) {
    if (location.hash === "#approve" && document.getElementById("amount")) document.getElementById("amount").focus();
    if (location.hash === "#reject" && document.getElementById("reject-template")) document.getElementById("reject-template").focus();
    const amount = document.getElementById("amount");
    if (amount && amount.dataset.max) {
      amount.addEventListener("input", () => {
        const fen = Math.round(parseFloat(amount.value) * 100);
        amount.setCustomValidity(!(fen > 0) || fen > Number(amount.dataset.max)
          ? (zh ? "金额须大于 0 且不超过可退金额" : "More than 0 and at most the refundable amount") : "");
      });
    }
    const refund = caseEl.dataset.refund, seen = caseEl.dataset.updated;
    setInterval(async () => {
      try {
        const answer = await fetch(`/console/cases/${encodeURIComponent(refund)}/state`, { headers: { Accept: "application/json" } });
        if (answer.status === 401 || answer.redirected) { window.location = "/console/login?expired=1"; return; }
        const state = await answer.json();
        if (state.updated_at && Date.parse(state.updated_at) > Date.parse(seen)) {
          document.getElementById("changed").classList.remove("hidden");
          const status = document.getElementById("status");
          if (status && state.status_words) status.textContent = state.status_words;
        }
      } catch (e) { /* offline for a moment: try again next time */ }
    }, 4000);
  }
})();
