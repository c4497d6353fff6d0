// keyledger's only script: progressive enhancement. Every flow works
// without it; it adds copy buttons, the quick copy, the / shortcut and
// confirmation prompts.
(function () {
  "use strict";

  // announce says msg through the page's live region.
  function announce(msg) {
    var live = document.getElementById("live-status");
    if (!live) return;
    live.textContent = "";
    setTimeout(function () { live.textContent = msg; }, 50);
  }

  // copied flips a copy button's visible word to "Copied" for a moment;
  // its accessible name stays what it copies.
  function copied(btn, word) {
    var label = btn.querySelector(".copy-label") || btn;
    var was = label.getAttribute("data-label") || label.textContent;
    label.setAttribute("data-label", was);
    label.textContent = word;
    announce(word);
    setTimeout(function () { label.textContent = was; }, 1500);
  }

  // post sends a form's fields (its _csrf included) and asks for JSON.
  function post(form, extra) {
    var body = new URLSearchParams(new FormData(form));
    for (var k in extra) body.set(k, extra[k]);
    return fetch(form.action, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json" }
    });
  }

  // writeClipboard copies the text a promise gives. A ClipboardItem takes
  // the promise itself, so browsers that want the copy inside the click
  // (Safari) still allow it after the network round trip.
  function writeClipboard(text) {
    if (window.ClipboardItem && navigator.clipboard.write) {
      var blob = text.then(function (t) { return new Blob([t], { type: "text/plain" }); });
      return navigator.clipboard.write([new ClipboardItem({ "text/plain": blob })]);
    }
    return text.then(function (t) { return navigator.clipboard.writeText(t); });
  }

  // The reveal result remembers the shell whose line was copied last, for
  // the key list's quick copy.
  function rememberShell(shell) {
    var form = document.querySelector("form[data-shell-choice]");
    if (!form || !shell) return;
    var select = form.querySelector("select[name=shell]");
    if (select) select.value = shell;
    post(form, { shell: shell }).catch(function () {});
  }

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("button[data-copy-target]");
    if (!btn) return;
    ev.preventDefault();
    var el = document.getElementById(btn.getAttribute("data-copy-target"));
    if (!el || !navigator.clipboard) return;
    navigator.clipboard.writeText(el.textContent).then(function () {
      copied(btn, "Copied");
      var row = btn.closest("[data-shell]");
      if (row) rememberShell(row.getAttribute("data-shell"));
    });
  });

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var msg = form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); return; }
    if (form.hasAttribute("data-copy-export") && navigator.clipboard) {
      // The quick copy: the reveal form's POST answers the line in JSON.
      ev.preventDefault();
      var btn = form.querySelector("button[type=submit]");
      var failure = null;
      var line = post(form, {}).then(function (resp) {
        return resp.json().then(function (j) {
          if (!resp.ok || !j.line) {
            failure = (j.error && j.error.message) || "Could not copy.";
            throw new Error(failure);
          }
          return j.line;
        });
      });
      writeClipboard(line).then(function () {
        copied(btn, "Copied");
      }, function () {
        // Refused (the message says why) or no clipboard: show the way to
        // the full reveal form instead.
        announce(failure || "Could not copy: reveal the key from its page.");
        var link = form.querySelector(".copy-export-fallback");
        if (link) { link.hidden = false; btn.hidden = true; }
        var note = form.querySelector(".copy-export-error") || document.createElement("small");
        note.className = "copy-export-error field-error";
        note.textContent = failure || "Could not copy.";
        form.appendChild(note);
      });
      return;
    }
    if (form.hasAttribute("data-shell-choice")) {
      // Saved in place: the reveal result cannot be reloaded.
      ev.preventDefault();
      post(form, {}).then(function (resp) {
        announce(resp.ok ? "Saved" : "Could not save the shell.");
      });
    }
  });

  // "/" focuses the quick search, unless the person is typing somewhere.
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "/" || ev.ctrlKey || ev.metaKey || ev.altKey || ev.defaultPrevented) return;
    var t = ev.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    var q = document.getElementById("quick-q");
    if (!q) return;
    ev.preventDefault();
    q.focus();
    q.select();
  });

  // Copy buttons only make sense when the clipboard API is there: shown
  // on load, and in content swapped in later (the key list's live
  // filters send "keyledger:swapped" from the new results).
  function showCopyButtons(root) {
    if (!navigator.clipboard) return;
    root.querySelectorAll("button[data-copy-target]").forEach(function (b) { b.hidden = false; });
    root.querySelectorAll("form[data-copy-export]").forEach(function (f) {
      var link = f.querySelector(".copy-export-fallback");
      var btn = f.querySelector("button[type=submit]");
      if (link && btn) { link.hidden = true; btn.hidden = false; }
    });
  }
  showCopyButtons(document);
  document.addEventListener("keyledger:swapped", function (ev) { showCopyButtons(ev.target); });
})();
