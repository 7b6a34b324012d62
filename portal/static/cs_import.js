// Import job page: poll the job's JSON status and update the progress bar; reload once the
// job has finished so the page shows the result and the row report (no inline script: CSP).
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box || box.dataset.finished === "true") return;
  var url = box.dataset.statusUrl;
  var bar = document.getElementById("import-bar");
  var status = document.getElementById("import-status");
  var delay = 1000;

  function setPercent(percent) {
    if (!bar) return;
    if (percent === null || percent === undefined) {
      bar.removeAttribute("value"); // indeterminate while the total is unknown
    } else {
      bar.value = percent;
      bar.textContent = percent + "%";
    }
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (job) {
        if (status) {
          status.textContent = job.status_label;
          status.dataset.status = job.status;
        }
        setPercent(job.percent);
        if (job.finished) {
          window.location.reload();
          return;
        }
        delay = 1000;
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, 15000);
        window.setTimeout(poll, delay);
      });
  }
  window.setTimeout(poll, 500);
})();
