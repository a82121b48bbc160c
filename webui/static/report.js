// "/t/{id}/d/{n}": one report.
import { api, showError, location_parts } from "/static/common.js";
import { renderReport } from "/static/render.js";

const { id, n } = location_parts();
document.getElementById("back").href = `/t/${id}`;
const base = `/api/v1/tests/${id}/deliveries/${n}`;
Promise.all([api(base), fetch(`${base}/raw`).then((r) => (r.ok ? r.text() : null))])
  .then(([report, raw]) => {
    document.title = `mxlens — ${report.score.value.toFixed(1)}/10 — delivery ${n}`;
    renderReport(report, document.getElementById("report"), { rawUrl: `${base}/raw`, raw: raw ?? undefined });
  })
  .catch((err) => {
    document.getElementById("report").replaceChildren();
    showError(`No report: ${err.message}`);
  });
