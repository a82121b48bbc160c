// "/t/{id}/d/{n}": one report.
import { api, showError, location_parts, scoreText } from "/static/common.js";
import { renderReport } from "/static/render.js";

const { id, n } = location_parts();
document.getElementById("back").href = `/t/${id}`;
const base = `/api/v1/tests/${id}/deliveries/${n}`;
// The report carries the message's headers: the message itself (up to the size limit) is only
// downloaded when asked for.
api(base)
  .then((report) => {
    document.title = `mxlens — ${scoreText(report.score)} — delivery ${n}`;
    renderReport(report, document.getElementById("report"), { rawUrl: `${base}/raw` });
  })
  .catch((err) => {
    document.getElementById("report").replaceChildren();
    showError(`No report: ${err.message}`);
  });
