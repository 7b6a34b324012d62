// Search as you type and click recording. Progressive enhancement: without this file the
// search form and the result links work as plain HTML.
//
// Any <input data-suggest-source="..."> gets suggestions (debounced, from /search/suggest)
// rendered as a list of links into [data-suggest-for="<the input's name>"]. Arrow keys move
// through the list, Escape closes it. Clicks on suggestions and on result links
// ([data-search-log] lists) are recorded with POST /search/click before navigating.
(() => {
  const DEBOUNCE_MS = 200;
  const csrfToken = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  };

  // Record a click, then go. Anonymous pages have no CSRF token: just navigate.
  const recordThenGo = (logId, kind, id, href) => {
    const token = csrfToken();
    if (!logId || !token) {
      window.location.assign(href);
      return;
    }
    let gone = false;
    const go = () => { if (!gone) { gone = true; window.location.assign(href); } };
    const timer = setTimeout(go, 300);  // never hold the person back for long...
    fetch("/search/click", {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,  // ...and the request still completes after the page has changed
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify({ log_id: Number(logId), kind: kind, id: Number(id) }),
    }).catch(() => null).finally(() => { clearTimeout(timer); go(); });
  };

  const plainClick = (event) =>
    event.button === 0 && !event.ctrlKey && !event.metaKey && !event.shiftKey && !event.altKey;

  const setUp = (input) => {
    const box = document.querySelector(`[data-suggest-for="${CSS.escape(input.name)}"]`);
    if (!box) return;
    const source = input.getAttribute("data-suggest-source") || "page";
    if (!box.id) box.id = `suggest-${input.name}`;
    box.setAttribute("role", "listbox");
    box.setAttribute("aria-label", box.getAttribute("aria-label") || "Suggestions");
    input.setAttribute("aria-controls", box.id);
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("autocomplete", "off");
    let timer = null;
    let controller = null;
    let lastQuery = "";
    let logId = null;

    const close = () => {
      box.replaceChildren();
      input.setAttribute("aria-expanded", "false");
    };
    const links = () => Array.from(box.querySelectorAll("a"));

    const render = (data) => {
      box.replaceChildren();
      logId = data.log_id;
      if (!data.results.length) {
        input.setAttribute("aria-expanded", "false");
        return;
      }
      for (const item of data.results) {
        const link = document.createElement("a");
        link.className = "list-group-item list-group-item-action";
        link.href = item.url;
        link.textContent = item.title;  // text, never HTML
        link.setAttribute("role", "option");
        link.dataset.searchKind = item.kind;
        link.dataset.searchId = item.id;
        box.appendChild(link);
      }
      input.setAttribute("aria-expanded", "true");
    };

    const fetchSuggestions = () => {
      const q = input.value.trim();
      if (q === lastQuery) return;
      lastQuery = q;
      if (q.length < 2) {
        close();
        return;
      }
      if (controller) controller.abort();
      controller = new AbortController();
      const url = `/search/suggest?source=${encodeURIComponent(source)}&q=${encodeURIComponent(q)}`;
      fetch(url, { credentials: "same-origin", signal: controller.signal, headers: { Accept: "application/json" } })
        .then((response) => (response.ok ? response.json() : null))
        .then((data) => { if (data && input.value.trim() === q) render(data); })
        .catch(() => null);
    };

    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(fetchSuggestions, DEBOUNCE_MS);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" && links().length) {
        event.preventDefault();
        links()[0].focus();
      } else if (event.key === "Escape") {
        close();
      }
    });
    box.addEventListener("keydown", (event) => {
      const list = links();
      const index = list.indexOf(document.activeElement);
      if (event.key === "ArrowDown") {
        event.preventDefault();
        list[Math.min(list.length - 1, index + 1)].focus();
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        if (index <= 0) input.focus(); else list[index - 1].focus();
      } else if (event.key === "Escape") {
        close();
        input.focus();
      }
    });
    box.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-search-id]");
      if (!link || !plainClick(event)) return;
      event.preventDefault();
      recordThenGo(logId, link.dataset.searchKind, link.dataset.searchId, link.href);
    });
  };

  document.querySelectorAll("input[data-suggest-source]").forEach(setUp);

  // Result lists of the search page.
  document.querySelectorAll("[data-search-log]").forEach((list) => {
    list.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-search-id]");
      if (!link || !plainClick(event)) return;
      event.preventDefault();
      recordThenGo(list.dataset.searchLog, link.dataset.searchKind, link.dataset.searchId, link.href);
    });
  });
})();
