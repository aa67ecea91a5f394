// groundqa chat page: streams /v1/chat/completions, renders citations from the final chunk's
// `groundqa` field, and shows a cited article with the quoted span highlighted.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const messagesEl = $("messages");
  const form = $("ask-form");
  const questionEl = $("question");
  const askButton = $("ask-button");
  const keyRow = $("key-row");
  const keyInput = $("api-key");
  const panel = $("panel");

  /** Conversation sent with every request (OpenAI message format). */
  let history = [];
  let currentCitation = null;

  const authRequired = document.body.dataset.authRequired === "true";
  if (authRequired) {
    keyRow.hidden = false;
    keyInput.value = sessionStorage.getItem("groundqa-key") || "";
  }
  keyInput.addEventListener("change", () => sessionStorage.setItem("groundqa-key", keyInput.value));

  function headers() {
    const h = { "Content-Type": "application/json" };
    if (keyInput.value.trim()) h.Authorization = "Bearer " + keyInput.value.trim();
    return h;
  }

  const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December"];
  function formatDate(published) {
    if (!published) return "undated";
    const [y, m, d] = published.split("-");
    if (!m) return y;
    const month = MONTHS[Number(m) - 1] || m;
    return d ? `${Number(d)} ${month} ${y}` : `${month} ${y}`;
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function addMessage(role) {
    const li = el("li", `message ${role}`);
    messagesEl.appendChild(li);
    li.scrollIntoView({ block: "end" });
    return li;
  }

  // -- rendering a finished answer ----------------------------------------------------------
  function markerButton(id, citations) {
    const citation = citations.find((c) => c.id === id);
    const button = el("button", "marker", `[${id}]`);
    button.type = "button";
    button.dataset.citation = String(id);
    if (citation) {
      button.title = `${citation.outlet}, ${formatDate(citation.published)}`;
      button.addEventListener("click", () => showCitation(citation, button));
    } else {
      button.disabled = true; // cannot happen: every marker resolves
    }
    return button;
  }

  function appendWithMarkers(parent, text, citations) {
    const parts = text.split(/\[(\d+)\]/);
    parts.forEach((part, i) => {
      if (i % 2 === 1) parent.appendChild(markerButton(Number(part), citations));
      else if (part) parent.appendChild(document.createTextNode(part));
    });
  }

  function renderResult(li, result) {
    li.textContent = "";
    li.classList.add("done");
    li.classList.toggle("abstain", result.abstained);
    li.dataset.generator = result.generator;
    if (result.rewritten) {
      li.appendChild(el("p", "searched", `Searched for: ${result.searched}`));
    }
    if (result.abstained) {
      li.appendChild(el("p", "abstain-label", "No answer in the articles"));
      li.appendChild(el("p", "answer", result.answer));
      li.appendChild(el("p", "reason", `reason: ${result.abstain_reason}`));
      return;
    }
    const short = result.short_answer;
    if (short) {
      // The direct answer first, then the quotes that carry it.
      const lead = el("p", "short-answer");
      lead.appendChild(el("strong", "short-text", short.text));
      lead.appendChild(document.createTextNode(" "));
      lead.appendChild(markerButton(short.citation, result.citations));
      if (typeof result.confidence === "number") {
        lead.appendChild(el("span", "confidence", `confidence ${Math.round(result.confidence * 100)} %`));
      }
      li.appendChild(lead);
    }
    const answer = el("p", "answer");
    const text = result.answer;
    let cursor = short && result.sentences.length ? result.sentences[0].end : 0;
    const quoted = short ? result.citations.find((c) => c.id === short.citation) : null;
    for (const sentence of result.sentences) {
      if (sentence.end <= cursor) continue;
      if (sentence.start > cursor) answer.appendChild(document.createTextNode(text.slice(cursor, sentence.start).replace(/^\n/, "")));
      const span = el("span", "sentence" + (sentence.flagged ? " flagged" : ""));
      const labels = sentence.citations.map((c) => `[${c.id}] ${c.support.label}`).join(", ");
      span.title = sentence.flagged ? "not supported by the sources" : labels;
      const piece = text.slice(sentence.start, sentence.end);
      const at = quoted && sentence.citations.some((c) => c.id === quoted.id) ? piece.lastIndexOf(quoted.quote) : -1;
      if (at >= 0) {
        // Highlight the short answer inside its quote, by offsets (never by searching text).
        const offset = at + (short.source_span.start - quoted.source_span.start);
        appendWithMarkers(span, piece.slice(0, offset), result.citations);
        span.appendChild(el("mark", "short-in-quote", piece.slice(offset, offset + short.text.length)));
        appendWithMarkers(span, piece.slice(offset + short.text.length), result.citations);
      } else {
        appendWithMarkers(span, piece, result.citations);
      }
      for (const c of sentence.citations) span.appendChild(el("span", `support ${c.support.label}`, c.support.label));
      answer.appendChild(span);
      answer.appendChild(document.createElement("br"));
      cursor = sentence.end;
    }
    if (cursor < text.length) appendWithMarkers(answer, text.slice(cursor), result.citations);
    li.appendChild(answer);
    if (result.citations.length) {
      li.appendChild(el("p", "sources-label", "Sources"));
      const list = el("ol", "sources");
      for (const citation of result.citations) {
        const item = el("li");
        item.appendChild(markerButton(citation.id, result.citations));
        item.appendChild(document.createTextNode(
          ` ${citation.outlet}, ${formatDate(citation.published)} — ${citation.title}`));
        list.appendChild(item);
      }
      li.appendChild(list);
    }
    if (result.generator !== "extractive") {
      li.appendChild(el("p", "generator", `written by ${result.generator}, checked against the quotes`));
    }
  }

  // -- citation panel -----------------------------------------------------------------------
  function showCitation(citation, button) {
    currentCitation = citation;
    document.querySelectorAll("button.marker.active").forEach((b) => b.classList.remove("active"));
    if (button) button.classList.add("active");
    panel.hidden = false;
    $("cit-label").textContent = `Citation [${citation.id}]`;
    $("cit-title").textContent = citation.title;
    $("cit-outlet").textContent = citation.outlet;
    $("cit-date").textContent = formatDate(citation.published) + (citation.published_inferred ? " (inferred)" : "");
    $("cit-quote").textContent = citation.quote;
    $("cit-support").textContent = "";
    $("article-view").hidden = true;
  }

  async function openArticle() {
    const citation = currentCitation;
    if (!citation) return;
    const view = $("article-view");
    const textEl = $("art-text");
    textEl.textContent = "Loading…";
    view.hidden = false;
    const response = await fetch(`/v1/documents/${encodeURIComponent(citation.doc_id)}`, { headers: headers() });
    const body = await response.json();
    if (!response.ok) {
      textEl.textContent = body.error ? body.error.message : `HTTP ${response.status}`;
      return;
    }
    $("art-title").textContent = body.title;
    $("art-meta").textContent = `${body.outlet} · ${formatDate(body.published)}`;
    const { start, end } = citation.source_span;
    textEl.textContent = "";
    textEl.appendChild(document.createTextNode(body.text.slice(0, start)));
    const mark = el("mark", "quoted", body.text.slice(start, end));
    mark.id = "highlight";
    textEl.appendChild(mark);
    textEl.appendChild(document.createTextNode(body.text.slice(end)));
    mark.scrollIntoView({ block: "center" });
  }

  // -- asking -------------------------------------------------------------------------------
  function showError(li, message) {
    li.textContent = "";
    li.classList.add("error", "done");
    li.appendChild(el("p", "answer", message));
  }

  async function ask(question) {
    const user = addMessage("user");
    user.textContent = question;
    const li = addMessage("assistant");
    li.classList.add("pending");
    const live = el("p", "streaming", "");
    li.appendChild(live);
    const messages = [...history, { role: "user", content: question }];
    let response;
    try {
      response = await fetch("/v1/chat/completions", {
        method: "POST", headers: headers(),
        body: JSON.stringify({ model: "groundqa", stream: true, messages }),
      });
    } catch (err) {
      showError(li, `The server could not be reached: ${err}`);
      return;
    }
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
      if (response.status === 401) { keyRow.hidden = false; keyInput.focus(); }
      showError(li, message);
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let content = "";
    let result = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (!data || data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) { showError(li, chunk.error.message); return; }
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          content += delta.content;
          live.textContent = content;
        }
        if (chunk.groundqa) result = chunk.groundqa;
      }
    }
    li.classList.remove("pending");
    if (!result) { showError(li, "The answer stream ended early."); return; }
    renderResult(li, result);
    history = [...messages, { role: "assistant", content }];
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = questionEl.value.trim();
    if (!question) return;
    questionEl.value = "";
    askButton.disabled = true;
    try { await ask(question); } finally { askButton.disabled = false; questionEl.focus(); }
  });
  questionEl.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });
  $("new-chat").addEventListener("click", () => {
    history = [];
    messagesEl.textContent = "";
    panel.hidden = true;
  });
  $("open-article").addEventListener("click", openArticle);
  $("close-panel").addEventListener("click", () => { panel.hidden = true; });
})();
