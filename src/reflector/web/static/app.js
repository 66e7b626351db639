// Reflector's pages: small enhancements over server-rendered HTML. No framework, no CDN.
// Calls to the JSON API carry the session cookie and, when they change something, the page's
// CSRF token in X-CSRF-Token.
"use strict";

(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const CSRF = csrfMeta ? csrfMeta.content : "";

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = CSRF;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (response.status === 401) {
      const here = location.pathname + location.search;
      location.assign("/signin?next=" + encodeURIComponent(here));
    }
    if (!response.ok) {
      const detail = data && data.detail ? data.detail : "The server answered " + response.status + ".";
      throw new ApiError(response.status, detail);
    }
    return data;
  }

  function clock(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
    const total = Math.floor(seconds);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return h ? h + ":" + pad(m) + ":" + pad(s) : m + ":" + pad(s);
  }

  // Repeats `task` every `ms` while the page is visible; returns a stop function.
  function every(ms, task) {
    let timer = null;
    let stopped = false;
    async function tick() {
      if (stopped) return;
      if (!document.hidden) {
        try {
          await task();
        } catch (err) {
          console.warn(err);
        }
      }
      if (!stopped) timer = setTimeout(tick, ms);
    }
    timer = setTimeout(tick, ms);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  // ------------------------------------------------------------------ room page

  function initRoom() {
    const start = document.getElementById("start-meeting");
    if (start) {
      start.addEventListener("submit", async (event) => {
        event.preventDefault();
        const button = start.querySelector("button");
        const error = document.getElementById("start-error");
        button.disabled = true;
        button.textContent = "Starting…";
        try {
          await api("POST", "/v1/rooms/" + encodeURIComponent(start.dataset.room) + "/meeting");
          location.reload();
        } catch (err) {
          error.textContent = err.message;
          error.hidden = false;
          button.disabled = false;
          button.textContent = "Start meeting";
        }
      });
    }

    const meeting = document.getElementById("meeting");
    if (!meeting) return;
    const embed = document.getElementById("embed");
    if (embed) {
      embed.addEventListener("toggle", () => {
        const frame = embed.querySelector("iframe");
        if (embed.open && !frame.src) frame.src = frame.dataset.src;
      });
    }
    const count = document.getElementById("num-clients");
    const word = document.getElementById("people-word");
    const list = document.getElementById("participants");
    const recording = document.getElementById("recording");
    const bots = new Set((meeting.dataset.botRoles || "").split(" ").filter(Boolean));
    let shown = list ? Array.from(list.children, (li) => li.textContent).join("\n") : "";
    const stop = every(1000, async () => {
      const data = await api("GET", "/v1/meetings/" + encodeURIComponent(meeting.dataset.meetingId));
      const n = String(data.num_clients);
      if (count.textContent !== n) {
        count.textContent = n;
        word.textContent = data.num_clients === 1 ? "person" : "people";
      }
      const names = data.participants
        .filter((p) => p.present && !bots.has(p.role_name))
        .map((p) => p.display_name || "Someone");
      recording.hidden = !data.participants.some((p) => p.present && p.role_name === "recorder");
      if (names.join("\n") !== shown) {
        shown = names.join("\n");
        list.replaceChildren(
          ...names.map((name) => {
            const li = document.createElement("li");
            li.textContent = name;
            return li;
          })
        );
      }
      if (!data.is_active) {
        stop();
        document.getElementById("meeting-state").textContent =
          "This meeting has ended. Reload the page to start a new one.";
      }
    });
  }

  // ------------------------------------------------------------------ search

  // Keeps only text and <mark> from a snippet: whatever the server sends, nothing else renders.
  function snippetNodes(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    const out = document.createDocumentFragment();
    (function walk(node) {
      for (const child of node.childNodes) {
        if (child.nodeType === Node.TEXT_NODE) {
          out.append(child.textContent);
        } else if (child.nodeType === Node.ELEMENT_NODE) {
          if (child.tagName === "MARK") {
            const mark = document.createElement("mark");
            mark.textContent = child.textContent;
            out.append(mark);
          } else {
            walk(child);
          }
        }
      }
    })(template.content);
    return out;
  }

  function initSearch() {
    const form = document.getElementById("search");
    if (!form) return;
    const input = document.getElementById("q");
    const section = document.getElementById("results");
    const status = document.getElementById("results-status");
    const hits = document.getElementById("hits");
    let latest = 0;

    async function search(q) {
      const mine = ++latest;
      section.hidden = false;
      status.textContent = "Searching…";
      hits.replaceChildren();
      try {
        const data = await api("GET", "/v1/transcripts/search?q=" + encodeURIComponent(q));
        if (mine !== latest) return;
        const items = data.hits || [];
        status.textContent = items.length
          ? items.length + (items.length === 1 ? " result" : " results") + " for “" + q + "”"
          : "Nothing found for “" + q + "”.";
        hits.replaceChildren(
          ...items.map((hit) => {
            const li = document.createElement("li");
            li.className = "hit";
            const link = document.createElement("a");
            const url = String(hit.url || "");
            link.href = url.startsWith("/transcripts/") ? url : "/transcripts/" + encodeURIComponent(hit.transcript_id);
            link.textContent = (hit.title || "Untitled transcript") + (hit.start != null ? " · " + clock(hit.start) : "");
            li.append(link);
            if (hit.kind) {
              const kind = document.createElement("span");
              kind.className = "muted";
              kind.textContent = " (" + String(hit.kind).replace(/_/g, " ") + ")";
              li.append(kind);
            }
            const snippet = document.createElement("p");
            snippet.className = "snippet";
            snippet.append(snippetNodes(String(hit.snippet || "")));
            li.append(snippet);
            return li;
          })
        );
      } catch (err) {
        if (mine === latest) status.textContent = err.message;
      }
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const q = input.value.trim();
      if (!q) return;
      history.replaceState(null, "", "/transcripts?q=" + encodeURIComponent(q));
      search(q);
    });
    const initial = new URLSearchParams(location.search).get("q");
    if (initial && initial.trim()) search(initial.trim());
  }

  // ------------------------------------------------------------------ transcript page

  function initTranscript() {
    const root = document.getElementById("transcript");
    if (!root) return;
    const id = root.dataset.id;
    if (root.dataset.status === "processing") {
      every(2000, async () => {
        const data = await api("GET", "/v1/transcripts/" + encodeURIComponent(id));
        if (data.status !== "processing") location.reload();
        const step = document.querySelector("#processing strong");
        if (step && data.step) step.textContent = data.step;
      });
      return;
    }
    const audio = document.getElementById("audio");
    if (!audio) return;
    const length = () => (Number.isFinite(audio.duration) && audio.duration > 0 ? audio.duration : parseFloat(root.dataset.length) || 1);
    const segments = Array.from(document.querySelectorAll(".segment"));
    const starts = segments.map((el) => parseFloat(el.dataset.start));
    const topics = Array.from(document.querySelectorAll("#timeline li"));
    const topicMarks = topics.map((li) => li.querySelector("button"));
    let current = -1;
    let follow = true;

    function indexAt(t) {
      let lo = 0;
      let hi = starts.length - 1;
      let found = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (starts[mid] <= t + 0.05) {
          found = mid;
          lo = mid + 1;
        } else {
          hi = mid - 1;
        }
      }
      return found;
    }

    function highlight(t, scroll) {
      const index = indexAt(t);
      if (index !== current) {
        if (current >= 0) {
          segments[current].classList.remove("current");
          segments[current].removeAttribute("aria-current");
        }
        current = index;
        if (index >= 0) {
          segments[index].classList.add("current");
          segments[index].setAttribute("aria-current", "true");
          if (scroll) segments[index].scrollIntoView({ block: "nearest", behavior: "smooth" });
        }
      }
      topics.forEach((li, i) => {
        const on = t >= parseFloat(li.dataset.start) && t < parseFloat(li.dataset.end);
        topicMarks[i].classList.toggle("current", on);
      });
    }

    let pending = null;
    function seek(t) {
      t = Math.max(0, t);
      if (audio.readyState === 0) pending = t;
      try {
        audio.currentTime = t;
      } catch (_) {
        pending = t;
      }
      follow = true;
      highlight(t, true);
      drawWave(t);
    }
    audio.addEventListener("loadedmetadata", () => {
      if (pending !== null) {
        audio.currentTime = pending;
        pending = null;
      }
      layoutTimeline();
    });
    audio.addEventListener("timeupdate", () => {
      highlight(audio.currentTime, follow && !audio.paused);
      drawWave(audio.currentTime);
    });
    audio.addEventListener("seeked", () => {
      highlight(audio.currentTime, follow);
      drawWave(audio.currentTime);
    });
    // Someone scrolling the text themselves stops it from following playback until the next seek.
    window.addEventListener("wheel", () => (follow = false), { passive: true });
    window.addEventListener("touchmove", () => (follow = false), { passive: true });
    audio.addEventListener("play", () => (follow = true));

    document.addEventListener("click", (event) => {
      const control = event.target.closest("[data-seek]");
      if (control) {
        event.preventDefault();
        seek(parseFloat(control.dataset.seek));
        return;
      }
      const line = event.target.closest(".segment");
      if (line && !event.target.closest("a, input, form") && !window.getSelection().toString()) {
        seek(parseFloat(line.dataset.start));
      }
    });

    // Topics laid out on the timeline by their times.
    function layoutTimeline() {
      const timeline = document.getElementById("timeline");
      if (!timeline) return;
      const total = length();
      timeline.classList.add("laid-out");
      topics.forEach((li) => {
        const s = parseFloat(li.dataset.start);
        const e = parseFloat(li.dataset.end);
        li.style.left = Math.min(100, (s / total) * 100) + "%";
        li.style.width = "calc(" + Math.max(0, ((e - s) / total) * 100) + "% - 2px)";
      });
    }
    layoutTimeline();

    // The waveform: peaks from the API on a canvas; select or use the arrow keys to seek.
    const canvas = document.getElementById("waveform");
    let peaks = null;
    let waveLength = null;
    function drawWave(t) {
      if (!canvas) return;
      const total = waveLength || length();
      canvas.setAttribute("aria-valuenow", (t || 0).toFixed(1));
      canvas.setAttribute("aria-valuetext", clock(t) + " of " + clock(total));
      const ratio = window.devicePixelRatio || 1;
      const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
      const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
      if (canvas.width !== width) canvas.width = width;
      if (canvas.height !== height) canvas.height = height;
      const ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, width, height);
      const played = (Math.min(t || 0, total) / total) * width;
      const bar = Math.max(2, Math.round(3 * ratio));
      const mid = height / 2;
      for (let x = 0; x < width; x += bar) {
        let value = 0.04;
        if (peaks && peaks.length) {
          const from = Math.floor((x / width) * peaks.length);
          const to = Math.max(from + 1, Math.floor(((x + bar) / width) * peaks.length));
          for (let i = from; i < to && i < peaks.length; i++) value = Math.max(value, peaks[i]);
        }
        const h = Math.max(1, value * (height - 4));
        ctx.fillStyle = x < played ? "#3552c4" : "#b6bfd9";
        ctx.fillRect(x, mid - h / 2, bar - Math.max(1, Math.floor(ratio)), h);
      }
      ctx.fillStyle = "#f0a400";
      ctx.fillRect(Math.min(width - 2, played), 0, Math.max(2, ratio), height);
    }
    if (canvas) {
      fetch(canvas.dataset.src, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : null))
        .then((data) => {
          if (data && Array.isArray(data.peaks)) {
            peaks = data.peaks;
            if (data.duration) waveLength = data.duration;
          }
          drawWave(audio.currentTime);
        })
        .catch(() => drawWave(audio.currentTime));
      canvas.addEventListener("click", (event) => {
        const box = canvas.getBoundingClientRect();
        seek(((event.clientX - box.left) / box.width) * (waveLength || length()));
      });
      canvas.addEventListener("keydown", (event) => {
        const step = { ArrowLeft: -5, ArrowDown: -5, ArrowRight: 5, ArrowUp: 5 }[event.key];
        if (step !== undefined) seek(audio.currentTime + step);
        else if (event.key === "Home") seek(0);
        else if (event.key === "End") seek((waveLength || length()) - 0.5);
        else if (event.key === " " && audio.paused) audio.play().catch(() => {});
        else if (event.key === " ") audio.pause();
        else return;
        event.preventDefault();
      });
      window.addEventListener("resize", () => drawWave(audio.currentTime));
      drawWave(0);
    }

    // Speaker rename: in place, and everywhere the name appears on the page.
    function showName(speakerId, name) {
      document.querySelectorAll('[data-speaker-id="' + speakerId + '"]').forEach((el) => {
        el.textContent = name;
      });
      const row = document.querySelector('[data-speaker-row="' + speakerId + '"]');
      if (row) {
        row.querySelector(".rename").setAttribute("aria-label", "Rename " + name);
        row.querySelector("label").textContent = "New name for " + name;
      }
    }
    document.querySelectorAll("[data-speaker-row]").forEach((row) => {
      const view = row.querySelector(".view");
      const button = row.querySelector(".rename");
      const form = row.querySelector(".rename-form");
      const input = form.querySelector("input");
      const error = form.querySelector(".error");
      const speakerId = parseInt(row.dataset.speakerRow, 10);
      function close() {
        form.hidden = true;
        view.hidden = false;
        error.textContent = "";
        button.focus();
      }
      button.addEventListener("click", () => {
        input.value = row.querySelector("[data-speaker-id]").textContent;
        view.hidden = true;
        form.hidden = false;
        input.focus();
        input.select();
      });
      form.querySelector(".cancel").addEventListener("click", close);
      form.addEventListener("keydown", (event) => {
        if (event.key === "Escape") close();
      });
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const name = input.value.trim();
        if (!name) {
          error.textContent = "A name cannot be empty.";
          return;
        }
        const save = form.querySelector('button[type="submit"]');
        save.disabled = true;
        try {
          const data = await api("PATCH", "/v1/transcripts/" + encodeURIComponent(id), {
            speakers: [{ id: speakerId, name }],
          });
          const saved = data && Array.isArray(data.speakers) ? data.speakers.find((s) => s.id === speakerId) : null;
          showName(speakerId, saved ? saved.name : name);
          close();
        } catch (err) {
          error.textContent = err.message;
        } finally {
          save.disabled = false;
        }
      });
    });

    // Who can read it: the owner's share-mode control.
    const share = document.getElementById("share");
    if (share) {
      const shareStatus = document.getElementById("share-status");
      share.addEventListener("submit", async (event) => {
        event.preventDefault();
        const mode = share.querySelector("select").value;
        shareStatus.textContent = "Saving…";
        try {
          const data = await api("PATCH", "/v1/transcripts/" + encodeURIComponent(id), { share_mode: mode });
          share.dataset.current = data.share_mode;
          shareStatus.textContent = "Saved.";
        } catch (err) {
          shareStatus.textContent = err.message;
        }
      });
    }

    // ?t=12.3 opens the recording at that moment.
    const t = parseFloat(new URLSearchParams(location.search).get("t"));
    if (Number.isFinite(t) && t >= 0) {
      seek(t);
    } else {
      highlight(0, false);
    }
  }

  function init() {
    initRoom();
    initSearch();
    initTranscript();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
