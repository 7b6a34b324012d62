// A background job's page (a CSV import, a health recompute): poll the job's JSON status and
// update the progress bar; reload once the job has finished so the page shows the result
// (no inline script: CSP). The box names its status URL; its <progress> and status text are
// found inside it.
(function () {
  "use strict";
  var box = document.querySelector("[data-progress-url]");
  if (!box || box.dataset.finished === "true") return;
  var url = box.dataset.progressUrl;
  var bar = box.querySelector("progress");
  var status = box.querySelector("[data-progress-status]");
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
