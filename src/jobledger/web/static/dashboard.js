// Progressive parts of the dashboard: live regions and confirmations. Every page works
// without it; with it, each element marked data-live="URL" is refreshed from URL (an HTML
// fragment rendered by the server) every few seconds, and every form marked
// data-confirm="question" asks before it is sent.
"use strict";
(function () {
  function confirmForms(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      if (form.dataset.bound) { return; }
      form.dataset.bound = "1";
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
      });
    });
  }

  function refresh(el) {
    var url = el.dataset.live;
    fetch(url, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null && html !== el.dataset.last) {
          el.dataset.last = html;
          el.innerHTML = html;
          confirmForms(el);
        }
      })
      .catch(function () { /* the next poll tries again */ });
  }

  function start() {
    confirmForms(document);
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var every = parseInt(el.dataset.every || "1000", 10);
      window.setInterval(function () {
        if (!document.hidden) { refresh(el); }
      }, every);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
