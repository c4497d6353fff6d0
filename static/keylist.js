// The key list's filters apply as they change. Without this script the
// form's Filter button submits it as usual; with it, the page fetches the
// filtered list and swaps in its results, so typing in the search box
// keeps its focus, and the live region says the new count.
(function () {
  "use strict";
  var form = document.querySelector("form[data-live-filters]");
  var results = document.querySelector("[data-filter-results]");
  if (!form || !results || !window.fetch || !window.AbortController || !window.DOMParser) return;
  var button = form.querySelector("[data-filter-submit]");
  if (button) button.hidden = true;
  var pending = null;
  var timer = 0;

  function target() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (v, k) {
      if (v !== "") params.append(k, v);
    });
    var q = params.toString();
    return form.getAttribute("action") + (q ? "?" + q : "");
  }

  function apply() {
    var url = target();
    if (pending) pending.abort();
    pending = new AbortController();
    fetch(url, { credentials: "same-origin", signal: pending.signal, headers: { Accept: "text/html" } })
      .then(function (r) {
        // A redirect (signed out meanwhile) or an error: load it for real.
        if (!r.ok || r.redirected) throw new Error("status " + r.status);
        return r.text();
      })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").querySelector("[data-filter-results]");
        if (!next) throw new Error("no results in the answer");
        results.replaceWith(next);
        results = next;
        next.dispatchEvent(new CustomEvent("keyledger:swapped", { bubbles: true }));
        history.replaceState(null, "", url);
        var live = document.getElementById("live-status");
        var count = next.querySelector("[data-testid=key-count]");
        if (live && count) live.textContent = count.textContent;
      })
      .catch(function (err) {
        if (err.name !== "AbortError") window.location.assign(url);
      });
  }

  form.addEventListener("change", function (ev) {
    // The search box applies as you type; its change event (on blur)
    // would only repeat that.
    if (ev.target.name !== "q") apply();
  });
  form.addEventListener("input", function (ev) {
    if (ev.target.name !== "q") return;
    clearTimeout(timer);
    timer = setTimeout(apply, 250);
  });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    clearTimeout(timer);
    apply();
  });
})();
