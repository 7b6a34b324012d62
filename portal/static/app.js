// Progressive enhancement only: every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  const firstInvalid = document.querySelector("[aria-invalid='true']");
  if (firstInvalid) firstInvalid.focus();
  document.querySelectorAll("[data-markdown-preview]").forEach(setUpMarkdownPreview);
  document.querySelectorAll("[data-draft]").forEach(setUpDraft);
  // An image in a post opens full size in a new tab: a screenshot scaled down to the column
  // is often unreadable. An image inside a link follows the link instead.
  document.addEventListener("click", (event) => {
    const image = event.target.closest && event.target.closest("main img[src^='/uploads/']");
    if (image && !image.closest("a")) window.open(image.src, "_blank", "noopener");
  });
  // Drafts stay with the person: signing out leaves none in this browser for the next one.
  document.querySelectorAll('form[action="/sign-out"]').forEach((form) => {
    form.addEventListener("submit", () => Drafts.clearAll());
  });
});

// Drafts of new posts, in this browser's storage, keyed by person, page and field. Anything
// older than a week is dropped; storage that is full or off (private windows) is no error.
const Drafts = {
  PREFIX: "cocreate-draft:",
  MAX_AGE_MS: 7 * 24 * 3600 * 1000,
  read(key) {
    try {
      const stored = JSON.parse(window.localStorage.getItem(this.PREFIX + key) || "null");
      if (stored && typeof stored.text === "string" && Date.now() - stored.saved < this.MAX_AGE_MS) {
        return stored.text;
      }
    } catch (_error) { /* unreadable: as if none */ }
    this.remove(key);
    return "";
  },
  write(key, text) {
    try {
      if (text.trim()) {
        window.localStorage.setItem(this.PREFIX + key, JSON.stringify({ text: text, saved: Date.now() }));
      } else {
        this.remove(key);
      }
    } catch (_error) { /* full or off */ }
  },
  remove(key) {
    try { window.localStorage.removeItem(this.PREFIX + key); } catch (_error) { /* off */ }
  },
  clearAll() {
    try {
      Object.keys(window.localStorage)
        .filter((name) => name.startsWith(this.PREFIX))
        .forEach((name) => window.localStorage.removeItem(name));
    } catch (_error) { /* off */ }
  },
};

function setUpDraft(editor) {
  const textarea = editor.querySelector("textarea");
  const owner = document.querySelector('meta[name="draft-owner"]');
  if (!textarea || !owner) return;
  const key = `${owner.getAttribute("content")}:${window.location.pathname}:${textarea.name}`;
  const draft = Drafts.read(key);
  if (draft && !textarea.value) {
    textarea.value = draft;
    const note = document.createElement("div");
    note.className = "small text-body-secondary mb-1";
    note.setAttribute("role", "status");
    note.setAttribute("data-draft-note", "");
    note.textContent = editor.getAttribute("data-draft-restored-text") + " ";
    const discard = document.createElement("button");
    discard.type = "button";
    discard.className = "btn btn-link btn-sm p-0 align-baseline";
    discard.textContent = editor.getAttribute("data-draft-discard-text");
    discard.addEventListener("click", () => {
      textarea.value = "";
      Drafts.remove(key);
      note.remove();
      textarea.focus();
    });
    note.appendChild(discard);
    textarea.before(note);
  }
  let timer = null;
  const save = () => Drafts.write(key, textarea.value);
  textarea.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(save, 400);
  });
  // Written at once when the page is left (the last keystrokes may not have been saved).
  window.addEventListener("pagehide", () => { if (timer) save(); });
  const form = textarea.form;
  if (form) {
    form.addEventListener("submit", () => {
      clearTimeout(timer);
      timer = null;
      Drafts.remove(key);
    });
  }
}

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

  if (editor.hasAttribute("data-image-upload")) {
    setUpImageUpload(editor, textarea, meta.getAttribute("content"), () => {
      select("write");
      shown = null;
    });
  }

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

// Images into a Markdown field: the "Add image" button, or pasting or dropping image files on
// the text. Each is uploaded (one after another, in order) and its Markdown written at the
// cursor; the server re-encodes it and answers with its URL, or says why it refused it.
function setUpImageUpload(editor, textarea, token, beforeInsert) {
  const input = editor.querySelector("[data-image-input]");
  const status = editor.querySelector("[data-image-status]");
  const url = editor.getAttribute("data-image-upload");
  let queue = Promise.resolve();

  const tell = (text, failed) => {
    status.textContent = text;
    status.classList.toggle("text-danger", Boolean(failed));
    status.classList.toggle("text-body-secondary", !failed);
  };
  const insert = (markdown) => {
    beforeInsert();
    const start = textarea.selectionStart, end = textarea.selectionEnd;
    const before = textarea.value.slice(0, start), after = textarea.value.slice(end);
    const lead = before && !before.endsWith("\n\n") ? (before.endsWith("\n") ? "\n" : "\n\n") : "";
    const piece = lead + markdown + "\n\n";
    textarea.value = before + piece + after;
    const caret = (before + piece).length;
    textarea.setSelectionRange(caret, caret);
    textarea.focus();
    textarea.dispatchEvent(new Event("input", { bubbles: true }));  // the draft keeps it too
  };
  const upload = async (file) => {
    tell(editor.getAttribute("data-uploading-text").replace("{name}", file.name || "image"));
    const body = new FormData();
    body.append("file", file, file.name || "image.png");
    try {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRFToken": token },
        body: body,
      });
      const data = await response.json().catch(() => null);
      if (response.ok && data && typeof data.markdown === "string") {
        insert(data.markdown);
        tell("");
        return;
      }
      const error = data && data.error;
      const reason = error && ((error.fields && error.fields.file && error.fields.file[0]) || error.message);
      tell(reason || editor.getAttribute("data-upload-error-text"), true);
    } catch (_error) {
      tell(editor.getAttribute("data-upload-error-text"), true);
    }
  };
  // Chosen with the button: every file (the server says why one is refused); pasted or dropped
  // on the text: only image files (other files, and text, paste and drop as usual).
  const uploadAll = (files, chosen) => {
    const images = Array.from(files || []).filter((file) => chosen || file.type.startsWith("image/"));
    images.forEach((file) => { queue = queue.then(() => upload(file)); });
    return images.length > 0;
  };

  if (input) {
    input.addEventListener("change", () => {
      uploadAll(input.files, true);
      input.value = "";
    });
  }
  textarea.addEventListener("paste", (event) => {
    if (event.clipboardData && uploadAll(event.clipboardData.files)) event.preventDefault();
  });
  textarea.addEventListener("dragover", (event) => {
    if (event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files")) {
      event.preventDefault();
    }
  });
  textarea.addEventListener("drop", (event) => {
    if (event.dataTransfer && uploadAll(event.dataTransfer.files)) event.preventDefault();
  });
}
