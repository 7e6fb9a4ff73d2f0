// jobs-web: the little the dashboard does in the browser. Every page works
// without it; this refreshes the overview's numbers and asks before
// destructive actions.
(function () {
  "use strict";

  // Forms marked data-confirm ask first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // The overview's live region is fetched again every few seconds and
  // swapped in, unless the tab is hidden or the pointer rests on it (so
  // a button does not move under a click).
  var live = document.querySelector("[data-live]");
  if (!live || !window.fetch) {
    return;
  }
  var url = live.getAttribute("data-live");
  var hovering = false;
  live.addEventListener("mouseenter", function () { hovering = true; });
  live.addEventListener("mouseleave", function () { hovering = false; });
  function refresh() {
    if (document.hidden || hovering) {
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null) {
          live.innerHTML = html;
          live.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () { /* the next round tries again */ });
  }
  window.setInterval(refresh, 5000);
})();
