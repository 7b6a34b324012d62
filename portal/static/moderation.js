// Keyboard shortcuts for the review queue: j/k move, a approve, r reject, e edit, x select.
(() => {
  const items = () => Array.from(document.querySelectorAll(".mod-item"));
  const typing = (el) => el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  const current = () => document.activeElement && document.activeElement.closest(".mod-item");
  let autofocused = null;  // the item focused on load: the first "j" lands on it, not past it
  const move = (step) => {
    const list = items();
    if (!list.length) return;
    const here = current();
    if (here && here === autofocused && step > 0) {
      autofocused = null;
      here.scrollIntoView({ block: "nearest" });
      return;
    }
    autofocused = null;
    const index = list.indexOf(here);
    const next = list[Math.min(list.length - 1, Math.max(0, index + step))] || list[0];
    next.focus();
    next.scrollIntoView({ block: "nearest" });
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const item = current();
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "a": if (item) item.querySelector(".mod-approve").requestSubmit(); else return; break;
      case "r": if (item) item.querySelector(".mod-reason").focus(); else return; break;
      case "e": {
        const details = item && item.querySelector(".mod-edit");
        if (!details) return;
        details.open = true;
        details.querySelector("textarea").focus();
        break;
      }
      case "x": { const box = item && item.querySelector(".mod-select"); if (!box) return; box.checked = !box.checked; break; }
      default: return;
    }
    event.preventDefault();
  });
  const first = items()[0];
  if (first && !document.querySelector("[aria-invalid='true']")) {
    first.focus();
    autofocused = first;
  }
})();
