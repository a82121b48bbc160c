// Shared by the pages. Everything that came from a message or a session is put on the page as
// text (textContent, text nodes): never as HTML.

// el("p", {class: "muted"}, "text", childNode, ...): strings become text nodes.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A link only for http(s) URLs; anything else stays text.
export function link(url, text = url) {
  if (typeof url === "string" && /^https?:\/\//i.test(url)) {
    return el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, text);
  }
  return document.createTextNode(String(text));
}

export async function api(path, options = {}) {
  const res = await fetch(path, options);
  if (res.status === 204) return null;
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(body?.error?.message || `HTTP ${res.status}`);
  return body;
}

export function showError(message) {
  const p = document.getElementById("error");
  if (!p) return;
  p.textContent = message;
  p.hidden = false;
}

// The id and number from /t/{id} and /t/{id}/d/{n}.
export function location_parts() {
  const parts = window.location.pathname.split("/").filter(Boolean);
  return { id: parts[1], n: parts[3] ? Number(parts[3]) : null };
}

export function badge(status) {
  return el("span", { class: `badge ${status}` }, status);
}

// A score as the pages show it: "7.5/10", or "not analysed" for an unscored report (its analysis
// failed, or no check with a weight could be evaluated; score.unscored says why).
export function scoreText(score, suffix = "/10") {
  return typeof score?.value === "number" ? `${score.value.toFixed(1)}${suffix}` : "not analysed";
}
