// Progressive enhancement only: every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  const firstInvalid = document.querySelector("[aria-invalid='true']");
  if (firstInvalid) firstInvalid.focus();
  document.querySelectorAll("[data-markdown-preview]").forEach(setUpMarkdownPreview);
});

// Write/Preview on a Markdown textarea: the preview is rendered by the server with the policy
// used when the post is saved, so what is shown is what will be published. The HTML it
// returns is sanitized there (the one HTML policy), as every stored post is.
function setUpMarkdownPreview(editor) {
  const textarea = editor.querySelector("textarea");
  const output = editor.querySelector("[data-markdown-output]");
  const tabs = editor.querySelector("[data-markdown-tabs]");
  const buttons = editor.querySelectorAll("[data-markdown-tab]");
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (!textarea || !output || !tabs || !meta) return;
  tabs.hidden = false;
  let shown = null;  // the source the output shows, so switching back and forth costs nothing

  const select = (name) => {
    buttons.forEach((button) => {
      const on = button.getAttribute("data-markdown-tab") === name;
      button.classList.toggle("active", on);
      button.setAttribute("aria-pressed", on ? "true" : "false");
    });
    textarea.hidden = name !== "write";
    output.hidden = name !== "preview";
  };
  const say = (text) => {
    output.textContent = "";
    const p = document.createElement("p");
    p.className = "text-body-secondary mb-0";
    p.textContent = text;
    output.appendChild(p);
  };

  const preview = async () => {
    select("preview");
    const source = textarea.value;
    if (!source.trim()) {
      shown = null;
      say(editor.getAttribute("data-empty-text"));
      return;
    }
    if (source === shown) return;
    output.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(editor.getAttribute("data-markdown-preview"), {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "Accept": "application/json",
          "X-CSRFToken": meta.getAttribute("content"),
        },
        body: JSON.stringify({ source: source, images: editor.hasAttribute("data-preview-images") }),
      });
      const data = await response.json().catch(() => null);
      if (response.ok && data && typeof data.html === "string") {
        output.innerHTML = data.html;  // sanitized by the server's HTML policy
        shown = source;
      } else {
        const fields = data && data.error && data.error.fields;
        const reason = fields && fields.source && fields.source[0];
        say(reason || editor.getAttribute("data-error-text"));
        shown = null;
      }
    } catch (_error) {
      say(editor.getAttribute("data-error-text"));
      shown = null;
    } finally {
      output.removeAttribute("aria-busy");
    }
  };

  // A required field left empty while the preview shows: show the field the browser complains of.
  textarea.addEventListener("invalid", () => select("write"));
  buttons.forEach((button) => {
    button.addEventListener("click", () => {
      if (button.getAttribute("data-markdown-tab") === "preview") {
        preview();
      } else {
        select("write");
        textarea.focus();
      }
    });
  });
}
