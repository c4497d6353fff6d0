// keyledger's only script: progressive enhancement. Every flow works
// without it; it adds copy buttons and confirmation prompts.
(function () {
  "use strict";
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("button[data-copy-target]");
    if (!btn) return;
    ev.preventDefault();
    var el = document.getElementById(btn.getAttribute("data-copy-target"));
    if (!el || !navigator.clipboard) return;
    navigator.clipboard.writeText(el.textContent).then(function () {
      // The button keeps its name ("Copy bash / zsh line"); the visible
      // word flips to "Copied" and the live region says it aloud.
      var label = btn.querySelector(".copy-label") || btn;
      label.textContent = "Copied";
      var live = document.getElementById("live-status");
      if (live) {
        live.textContent = "";
        setTimeout(function () { live.textContent = "Copied"; }, 50);
      }
      setTimeout(function () { label.textContent = "Copy"; }, 1500);
    });
  });
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });
  // Copy buttons only make sense when the clipboard API is there.
  if (navigator.clipboard) {
    document.querySelectorAll("button[data-copy-target]").forEach(function (b) { b.hidden = false; });
  }
})();
