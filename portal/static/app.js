// Progressive enhancement only: every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  const firstInvalid = document.querySelector("[aria-invalid='true']");
  if (firstInvalid) firstInvalid.focus();
});
