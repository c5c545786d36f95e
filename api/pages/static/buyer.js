// After an action the page says what happened once; a reload does not say it again.
if (new URLSearchParams(location.search).has("done")) {
  const url = new URL(location.href);
  url.searchParams.delete("done");
  history.replaceState(null, "", url);
}
// The buyer's page: ask before cancelling. (Live updates are htmx polling in the markup.)
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// "Add evidence" in the agent's question opens the form below it.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a.open-evidence");
  const form = document.getElementById("add-evidence");
  if (!link || !form) return;
  event.preventDefault();
  form.open = true;
  form.scrollIntoView({ behavior: "smooth", block: "start" });
  const first = form.querySelector("textarea");
  if (first) first.focus();
});
