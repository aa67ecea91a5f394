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

  // A date worked out from the article's text rather than stated in it carries the same mark
  // wherever it is shown (answer lead-ins, Sources, the citation panel, the article view), so a
  // reader never takes a guessed date for a printed one.
  const INFERRED_HINT = "worked out from the article's text, not stated in it";
  function inferredMark() {
    const mark = el("span", "inferred", "(inferred)");
    mark.title = INFERRED_HINT;
    return mark;
  }
  function dateText(published, inferred) {
    return formatDate(published) + (inferred ? " (inferred)" : "");
  }
  function appendDate(parent, published, inferred) {
    parent.appendChild(document.createTextNode(formatDate(published)));
    if (inferred) {
      parent.appendChild(document.createTextNode(" "));
      parent.appendChild(inferredMark());
    }
  }

  /** Show a freshly rendered answer: all of it when it fits, else from its start. */
  function reveal(li) {
    const scroller = messagesEl.scrollHeight > messagesEl.clientHeight ? messagesEl : null;
    const room = scroller ? scroller.clientHeight : window.innerHeight;
    li.scrollIntoView({ block: li.getBoundingClientRect().height <= room ? "end" : "start" });
  }

  function addMessage(role) {
    const li = el("li", `message ${role}`);
    messagesEl.appendChild(li);
    li.scrollIntoView({ block: "end" });
    return li;
  }

  // -- rendering a finished answer ----------------------------------------------------------
  const LABEL_RANK = { supported: 2, partial: 1, unsupported: 0 };
  /** The strongest support label any answer sentence gives this citation (null if none). */
  function supportOf(result, id) {
    let best = null;
    for (const sentence of result.sentences || []) {
      for (const c of sentence.citations) {
        if (c.id === id && (!best || LABEL_RANK[c.support.label] > LABEL_RANK[best.label])) best = c.support;
      }
    }
    return best;
  }

  function markerButton(id, result) {
    const citation = result.citations.find((c) => c.id === id);
    const button = el("button", "marker", `[${id}]`);
    button.type = "button";
    button.dataset.citation = String(id);
    if (citation) {
      button.title = `${citation.outlet}, ${dateText(citation.published, citation.published_inferred)}`;
      button.addEventListener("click", () => showCitation(citation, button, supportOf(result, id)));
    } else {
      button.disabled = true; // cannot happen: every marker resolves
    }
    return button;
  }

  /** Plain answer text; the inferred date in a sentence's "Outlet (date) reports:" lead-in
   *  gets its mark (only the dates of the citations that sentence carries, ``ids``). */
  function appendPlain(parent, text, result, ids) {
    for (const c of result.citations) {
      if (!ids.includes(c.id) || !c.published_inferred || !c.published) continue;
      const lead = `(${formatDate(c.published)}) reports:`;
      const at = text.indexOf(lead);
      if (at < 0) continue;
      const cut = at + lead.indexOf(")");
      parent.appendChild(document.createTextNode(text.slice(0, cut) + " "));
      parent.appendChild(inferredMark());
      appendPlain(parent, text.slice(cut), result, ids);
      return;
    }
    if (text) parent.appendChild(document.createTextNode(text));
  }

  function appendWithMarkers(parent, text, result, ids = []) {
    const parts = text.split(/\[(\d+)\]/);
    parts.forEach((part, i) => {
      if (i % 2 === 1) parent.appendChild(markerButton(Number(part), result));
      else if (part) appendPlain(parent, part, result, ids);
    });
  }

  /** "Sources differ": each figure with the citation that gives it. */
  function renderConflicts(result) {
    const box = el("div", "conflicts");
    box.appendChild(el("p", "conflicts-label", "Sources differ"));
    const list = el("ul");
    for (const conflict of result.conflicts) {
      const item = el("li", "conflict");
      item.appendChild(document.createTextNode(`about “${conflict.about}”: `));
      conflict.values.forEach((value, i) => {
        if (i) item.appendChild(document.createTextNode(i === conflict.values.length - 1 ? " vs " : ", "));
        item.appendChild(el("strong", "conflict-value", value.value));
        item.appendChild(document.createTextNode(" "));
        item.appendChild(markerButton(value.citation, result));
      });
      list.appendChild(item);
    }
    box.appendChild(list);
    return box;
  }

  /** One line per article: its markers, outlet, date and title (an article quoted twice is listed once). */
  function renderSources(result) {
    const byDoc = new Map();
    for (const citation of result.citations) {
      if (!byDoc.has(citation.doc_id)) byDoc.set(citation.doc_id, []);
      byDoc.get(citation.doc_id).push(citation);
    }
    const list = el("ol", "sources");
    for (const group of byDoc.values()) {
      const first = group[0];
      const item = el("li");
      item.dataset.docId = first.doc_id;
      group.forEach((citation, i) => {
        if (i) item.appendChild(document.createTextNode(" "));
        item.appendChild(markerButton(citation.id, result));
      });
      item.appendChild(document.createTextNode(` ${first.outlet}, `));
      appendDate(item, first.published, first.published_inferred);
      item.appendChild(document.createTextNode(` — ${first.title}`));
      list.appendChild(item);
    }
    return list;
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
      lead.appendChild(markerButton(short.citation, result));
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
      if (sentence.start > cursor) answer.appendChild(document.createTextNode(text.slice(cursor, sentence.start).replace(/^\s+/, "")));
      const span = el("span", "sentence" + (sentence.flagged ? " flagged" : ""));
      const labels = sentence.citations.map((c) => `[${c.id}] ${c.support.label}`).join(", ");
      span.title = sentence.flagged ? "not supported by the sources" : labels;
      const piece = text.slice(sentence.start, sentence.end);
      const ids = sentence.citations.map((c) => c.id);
      const at = quoted && sentence.citations.some((c) => c.id === quoted.id) ? piece.lastIndexOf(quoted.quote) : -1;
      if (at >= 0) {
        // Highlight the short answer inside its quote, by offsets (never by searching text).
        const offset = at + (short.source_span.start - quoted.source_span.start);
        appendWithMarkers(span, piece.slice(0, offset), result, ids);
        span.appendChild(el("mark", "short-in-quote", piece.slice(offset, offset + short.text.length)));
        appendWithMarkers(span, piece.slice(offset + short.text.length), result, ids);
      } else {
        appendWithMarkers(span, piece, result, ids);
      }
      // Labels are always on screen (a tooltip cannot be seen on a phone).
      for (const c of sentence.citations) {
        const badge = el("span", `support ${c.support.label}`, c.support.label);
        badge.title = `[${c.id}] ${c.support.label} (score ${c.support.score.toFixed(2)})`;
        span.appendChild(badge);
      }
      if (sentence.flagged) span.appendChild(el("span", "support unsupported flag-note", "not supported by the sources"));
      answer.appendChild(span);
      answer.appendChild(document.createElement("br"));
      cursor = sentence.end;
    }
    if (cursor < text.length) appendWithMarkers(answer, text.slice(cursor), result);
    li.appendChild(answer);
    if (result.conflicts && result.conflicts.length) li.appendChild(renderConflicts(result));
    if (result.citations.length) {
      li.appendChild(el("p", "sources-label", "Sources"));
      li.appendChild(renderSources(result));
    }
    if (result.generator !== "extractive") {
      li.appendChild(el("p", "generator", `written by ${result.generator}, checked against the quotes`));
    }
  }

  // -- citation panel -----------------------------------------------------------------------
  const phone = window.matchMedia("(max-width: 800px)");

  function showCitation(citation, button, support) {
    currentCitation = citation;
    document.querySelectorAll("button.marker.active").forEach((b) => b.classList.remove("active"));
    if (button) button.classList.add("active");
    panel.hidden = false;
    $("cit-label").textContent = `Citation [${citation.id}]`;
    $("cit-title").textContent = citation.title;
    $("cit-outlet").textContent = citation.outlet;
    const date = $("cit-date");
    date.textContent = "";
    appendDate(date, citation.published, citation.published_inferred);
    $("cit-quote").textContent = citation.quote;
    const label = $("cit-support");
    label.className = "support-line";
    label.textContent = "";
    if (support) {
      label.appendChild(document.createTextNode("This quote: "));
      label.appendChild(el("span", `support ${support.label}`, support.label));
    }
    $("article-view").hidden = true;
    // On a phone the panel is a sheet over the bottom of the screen; bring its top into view
    // either way so a tap on [n] visibly opens it.
    panel.scrollTop = 0;
    if (!phone.matches) panel.scrollIntoView({ block: "nearest" });
    $("close-panel").focus({ preventScroll: true });
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
    const meta = $("art-meta");
    meta.textContent = `${body.outlet} · `;
    appendDate(meta, body.published, (body.inferred || []).includes("published"));
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
    reveal(li);
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
    reveal(li);
    history = [...messages, { role: "assistant", content }];
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = questionEl.value.trim();
    if (!question) return;
    questionEl.value = "";
    askButton.disabled = true;
    try { await ask(question); } finally { askButton.disabled = false; questionEl.focus({ preventScroll: true }); }
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
