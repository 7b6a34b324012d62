// Roadmap pages: status badge colors (set through the CSSOM: no inline style attributes under
// the CSP) and similar ideas shown while typing a new idea's title (debounced, through the
// search suggest endpoint, ideas only).
(function () {
  "use strict";

  // Black or white, whichever has the higher WCAG contrast with the badge's color: one of the
  // two always reaches 4.5:1 (a brightness guess put white on the light cyan #0dcaf0, 1.95:1).
  function readableText(hex) {
    var n = parseInt(hex.slice(1), 16);
    var linear = [16, 8, 0].map(function (shift) {
      var c = ((n >> shift) & 255) / 255;
      return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
    return (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) ? "#000" : "#fff";
  }

  function colorBadges() {
    document.querySelectorAll("[data-status-color]").forEach(function (el) {
      var color = el.getAttribute("data-status-color");
      if (/^#[0-9a-fA-F]{6}$/.test(color)) {
        el.style.backgroundColor = color;
        el.style.color = readableText(color);
      }
    });
  }

  function similarIdeas() {
    var input = document.querySelector("[data-similar-ideas]");
    if (!input) return;
    var box = document.getElementById(input.getAttribute("data-similar-ideas"));
    var list = box.querySelector("ul");
    var url = input.getAttribute("data-suggest-url");
    var timer = null, last = "";
    function show(results) {
      list.textContent = "";
      results.forEach(function (r) {
        var li = document.createElement("li");
        var a = document.createElement("a");
        a.href = r.url;
        a.textContent = r.title;
        a.target = "_blank";
        li.appendChild(a);
        list.appendChild(li);
      });
      box.hidden = results.length === 0;
    }
    function lookUp() {
      var text = input.value.trim();
      if (text === last) return;
      last = text;
      if (text.length < 3) { show([]); return; }
      fetch(url + "?kind=idea&q=" + encodeURIComponent(text), {
        headers: { Accept: "application/json" }, credentials: "same-origin"
      })
        .then(function (r) { return r.ok ? r.json() : { results: [] }; })
        .then(function (data) {
          if (input.value.trim() !== text) return;
          show((data.results || []).filter(function (r) { return r.kind === "idea"; }));
        })
        .catch(function () { show([]); });
    }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(lookUp, 250);
    });
  }

  function init() { colorBadges(); similarIdeas(); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
