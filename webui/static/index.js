// "/": make a test address, wait, and show the report when the mail arrives (no reload).
import { api, showError } from "/static/common.js";
import { renderReport } from "/static/render.js";

const $ = (id) => document.getElementById(id);

async function showDelivery(id, n) {
  const base = `/api/v1/tests/${id}/deliveries/${n}`;
  const report = await api(base);
  $("status").textContent = `Delivery ${n} arrived: the report is below.`;
  renderReport(report, $("report"), { rawUrl: `${base}/raw` });
}

$("new").addEventListener("click", async () => {
  $("new").disabled = true;
  try {
    const test = await api("/api/v1/tests", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    $("address").textContent = test.address;
    $("test-link").href = `/t/${test.id}`;
    $("waiting").hidden = false;
    $("copy").focus();
    const events = new EventSource(`/api/v1/tests/${test.id}/events`);
    events.addEventListener("delivery", (e) => {
      const line = JSON.parse(e.data);
      showDelivery(test.id, line.delivery).catch((err) => showError(err.message));
    });
  } catch (err) {
    showError(`Could not make a test address: ${err.message}`);
    $("new").disabled = false;
  }
});

$("copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("address").textContent);
    $("copy").textContent = "Copied";
  } catch {
    const range = document.createRange();
    range.selectNodeContents($("address"));
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
  }
});
