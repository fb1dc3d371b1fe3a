// Dandelion web client: microphone in (echo cancellation on), reply audio out, transcripts,
// the avatar on a canvas, barge-in by speaking (the reply pauses, then resumes or stops),
// reconnect on network loss.
// Wire protocol: docs/protocol.md. State is exposed as window.dandelion for tests.

const HEADER_BYTES = 24;
const KIND_AUDIO = 1;
const KIND_VIDEO = 2;
const IDLE_TURN = 0; // media of no turn: the avatar's idle frames
const MAX_HELD_FRAMES = 250; // 5 s of 20 ms mic frames kept while the socket is not open
// A server with API keys serves this page as /?token=<session token> (docs/security.md). A
// browser cannot set headers on a WebSocket, so the token travels as a subprotocol entry, which
// stays out of access logs (the server echoes it back when it accepts).
const TOKEN = new URLSearchParams(location.search).get("token");
const TOKEN_SUBPROTOCOL = "dandelion.token.";
const CLOSE_POLICY = 1008; // a limit broke: reconnecting would break it again
const CLOSE_TRY_LATER = 1013; // the server is full: its reason says when to retry
const CLOSE_TAKEN_OVER = 4000; // another connection (a newer tab) resumed this conversation

const state = {
  connected: false,
  sessionId: null,
  reconnects: 0,
  resumes: 0, // reconnects that went on with the same conversation
  events: [],
  transcripts: [],
  audioFrames: 0,
  videoFrames: 0,
  idleFrames: 0,
  playedMs: 0,
  interrupted: [],
  paused: [], // turn ids, one per response.audio.paused
  resumed: [],
  closes: [], // {code, reason} of each close, for tests
};
window.dandelion = state;

const ui = {
  status: document.getElementById("status"),
  start: document.getElementById("start"),
  stop: document.getElementById("stop"),
  partial: document.getElementById("partial"),
  turns: document.getElementById("turns"),
  canvas: document.getElementById("avatar"),
};

let ws = null;
let stopping = false;
let micContext = null;
let playContext = null;
let analyser = null;
let outputRate = 22050;
let playHead = 0;
let backoffMs = 500;
let resumeToken = null; // the conversation to go on with after a reconnect
const heldFrames = []; // mic frames (PCM16 ArrayBuffers) captured while the socket was not open
const sources = new Map(); // turn id -> [{node, buffer, at, offset, ptsUs}]: scheduled buffers
// turn id -> {at: playContext time of the pause, held: [{buffer, offset, ptsUs}]}: its audio
// not played yet, in order, waiting for response.audio.resumed.
const pausedTurns = new Map();
const cutTurns = new Set();
const assistantItems = new Map(); // turn id -> <li>
const videoQueue = []; // {turn, presentAt (playContext time), bitmap}
const turnStarts = new Map(); // turn id -> playContext time of its first audio sample

function setStatus(text, kind = "") {
  ui.status.textContent = text;
  ui.status.className = `status ${kind}`;
}

async function start() {
  ui.start.disabled = true;
  stopping = false;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
  });
  micContext = new AudioContext();
  await micContext.audioWorklet.addModule("web/capture-worklet.js");
  const capture = new AudioWorkletNode(micContext, "capture-processor");
  micContext.createMediaStreamSource(stream).connect(capture);
  const mute = micContext.createGain();
  mute.gain.value = 0;
  capture.connect(mute).connect(micContext.destination); // keeps the worklet pulled
  capture.port.onmessage = (message) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(message.data);
    else holdFrame(message.data);
  };
  playContext = new AudioContext();
  analyser = playContext.createAnalyser();
  analyser.fftSize = 1024;
  analyser.connect(playContext.destination);
  ui.stop.disabled = false;
  connect();
  requestAnimationFrame(draw);
}

function holdFrame(frame) {
  // The mic runs before the socket opens (and while it reconnects): keep the newest frames so
  // a person who speaks at once is heard from their first word.
  heldFrames.push(frame);
  if (heldFrames.length > MAX_HELD_FRAMES) heldFrames.shift();
}

function stop() {
  stopping = true;
  heldFrames.length = 0;
  resumeToken = null; // Start again: a new conversation
  if (ws) ws.close();
  if (micContext) micContext.close();
  ui.start.disabled = false;
  ui.stop.disabled = true;
  setStatus("stopped");
}

function sessionUrl() {
  // Relative to the page, so a server under a path prefix (a reverse proxy's) works too.
  const url = new URL("v1/session", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  // After a dropped connection: the same conversation (session.created's resume_token).
  if (resumeToken) url.searchParams.set("resume_token", resumeToken);
  return url;
}

function openSocket() {
  const url = sessionUrl();
  if (!TOKEN) return new WebSocket(url);
  try {
    return new WebSocket(url, [TOKEN_SUBPROTOCOL + TOKEN]);
  } catch (error) {
    // Not a valid subprotocol (a key with other characters): the query parameter instead.
    url.searchParams.set("token", TOKEN);
    return new WebSocket(url);
  }
}

function connect() {
  let opened = false;
  ws = openSocket();
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    opened = true;
    state.connected = true;
    backoffMs = 500;
    // What the person said while the socket opened is theirs: sent first, in order.
    for (const frame of heldFrames.splice(0)) ws.send(frame);
    setStatus("listening", "live");
  };
  ws.onmessage = (message) => {
    if (typeof message.data === "string") onEvent(JSON.parse(message.data));
    else onMedia(message.data);
  };
  ws.onclose = (close) => {
    state.connected = false;
    state.closes.push({ code: close.code, reason: close.reason });
    stopAllAudio();
    if (stopping) return;
    if (close.code === CLOSE_POLICY || close.code === CLOSE_TAKEN_OVER) {
      // Reconnecting would break the limit again, or take the conversation back.
      stop();
      setStatus(`disconnected: ${close.reason || "a server limit"}`, "error");
      return;
    }
    let wait = backoffMs;
    const busy = close.code === CLOSE_TRY_LATER && /retry after (\d+(\.\d+)?) s/.exec(close.reason);
    if (busy) wait = Math.max(wait, 1000 * Number(busy[1]));
    // Never opened: a wrong or expired token is refused before the socket opens.
    const hint = opened ? "" : TOKEN ? " (an expired token? open the page with a new one)" : "";
    // Network loss, a server restart or a full server: a new session after a growing pause.
    setStatus(`reconnecting in ${(wait / 1000).toFixed(1)} s${hint}`, "error");
    state.reconnects += 1;
    setTimeout(connect, wait);
    backoffMs = Math.min(backoffMs * 2, 8000);
  };
}

function onEvent(event) {
  state.events.push(event);
  switch (event.type) {
    case "session.created":
      state.sessionId = event.session_id;
      resumeToken = event.resume_token || null;
      if (event.resumed) state.resumes += 1;
      outputRate = event.output_audio.sample_rate;
      if (event.output_video && event.output_video.width > 0) {
        // The server has an avatar: ask for its frames as JPEG (decoded natively by the page).
        ws.send(JSON.stringify({ type: "session.update", session: { video: "jpeg" } }));
        loadStill();
      }
      break;
    case "transcript.partial":
      ui.partial.textContent = event.text;
      break;
    case "transcript.final":
      ui.partial.textContent = "";
      state.transcripts.push(event.text);
      addItem("user", event.text);
      break;
    case "response.started":
      assistantItems.set(event.turn_id, addItem("assistant", ""));
      setStatus("answering", "live");
      break;
    case "response.text.delta": {
      const item = assistantItems.get(event.turn_id);
      if (item) item.textContent += event.delta;
      break;
    }
    case "response.interrupted":
      state.interrupted.push(event.turn_id);
      cutTurn(event.turn_id);
      break;
    case "response.audio.paused":
      state.paused.push(event.turn_id);
      pauseTurn(event.turn_id);
      break;
    case "response.audio.resumed":
      state.resumed.push(event.turn_id);
      resumeTurn(event.turn_id);
      break;
    case "response.done":
      setStatus("listening", "live");
      break;
    case "error":
      console.warn(`dandelion error ${event.code}: ${event.message}`);
      break;
    default:
      break;
  }
}

function addItem(role, text) {
  const item = document.createElement("li");
  item.className = role;
  item.textContent = text;
  ui.turns.appendChild(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function onMedia(buffer) {
  const view = new DataView(buffer);
  const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
  if (magic !== "DNDL" || view.getUint8(4) !== 1) return;
  const kind = view.getUint8(5);
  const turn = view.getUint32(8, true);
  const ptsUs = Number(view.getBigUint64(16, true));
  if (cutTurns.has(turn)) return; // in flight when playback stopped
  const payload = buffer.slice(HEADER_BYTES);
  if (kind === KIND_AUDIO) playAudio(turn, payload, ptsUs);
  else if (kind === KIND_VIDEO && turn === IDLE_TURN) showIdle(payload);
  else if (kind === KIND_VIDEO) queueVideo(turn, payload, ptsUs);
}

function replyOnScreen() {
  // A reply is heard (audio scheduled), paused, or its frames are still waiting to be shown.
  if (videoQueue.length || pausedTurns.size) return true;
  for (const list of sources.values()) if (list.length) return true;
  return false;
}

async function showIdle(payload) {
  // The face between replies, paced by the server: shown on arrival, never over a reply.
  if (replyOnScreen()) return;
  const bitmap = await createImageBitmap(new Blob([payload], { type: "image/jpeg" }));
  if (replyOnScreen()) return;
  state.idleFrames += 1;
  lastFrame = bitmap;
}

function playAudio(turn, payload, ptsUs) {
  state.audioFrames += 1;
  for (const other of pausedTurns.keys()) if (other !== turn) cutTurn(other); // superseded
  const pcm = new Int16Array(payload);
  const buffer = playContext.createBuffer(1, pcm.length, outputRate);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
  const paused = pausedTurns.get(turn);
  if (paused) {
    paused.held.push({ buffer, offset: 0, ptsUs }); // queued behind what the pause held
    return;
  }
  schedule(turn, buffer, 0, ptsUs, Math.max(playContext.currentTime + 0.03, playHead));
}

function schedule(turn, buffer, offset, ptsUs, at) {
  // Play `buffer` from `offset` s at playContext time `at`, back to back with the turn's audio.
  const node = playContext.createBufferSource();
  node.buffer = buffer;
  node.connect(analyser);
  if (!turnStarts.has(turn)) turnStarts.set(turn, at - ptsUs / 1e6 - offset);
  node.start(at, offset);
  playHead = at + buffer.duration - offset;
  const entry = { node, buffer, at, offset, ptsUs };
  node.onended = () => {
    state.playedMs += (buffer.duration - offset) * 1000;
    const list = sources.get(turn);
    const index = list ? list.indexOf(entry) : -1;
    if (index >= 0) list.splice(index, 1);
  };
  if (!sources.has(turn)) sources.set(turn, []);
  sources.get(turn).push(entry);
}

function pauseTurn(turn) {
  // Speech over the reply: silence now, keeping the unplayed rest of each scheduled buffer.
  if (!playContext || cutTurns.has(turn) || pausedTurns.has(turn)) return;
  const now = playContext.currentTime;
  const held = [];
  for (const entry of sources.get(turn) || []) {
    const played = now - entry.at; // s of this buffer (from its offset) already heard
    const left = entry.buffer.duration - entry.offset;
    if (played >= left) continue; // over; its onended is on its way
    entry.node.onended = null;
    try { entry.node.stop(); } catch (error) { /* already ended */ }
    const offset = entry.offset + Math.max(0, played);
    state.playedMs += (offset - entry.offset) * 1000;
    held.push({ buffer: entry.buffer, offset, ptsUs: entry.ptsUs });
  }
  sources.set(turn, []);
  pausedTurns.set(turn, { at: now, held });
  playHead = now;
}

function resumeTurn(turn) {
  // A backchannel or a noise: play on from exactly where the pause left off. The turn's clock
  // (and so its video) moves on by the pause's length.
  const paused = pausedTurns.get(turn);
  if (!paused) return;
  pausedTurns.delete(turn);
  let at = playContext.currentTime + 0.01;
  const gap = at - paused.at;
  if (turnStarts.has(turn)) turnStarts.set(turn, turnStarts.get(turn) + gap);
  for (const frame of videoQueue) if (frame.turn === turn) frame.presentAt += gap;
  for (const { buffer, offset, ptsUs } of paused.held) {
    schedule(turn, buffer, offset, ptsUs, at);
    at = playHead;
  }
}

async function queueVideo(turn, payload, ptsUs) {
  // Video frames are JPEG on this page; they share the turn's clock with its audio.
  const bitmap = await createImageBitmap(new Blob([payload], { type: "image/jpeg" }));
  state.videoFrames += 1;
  const base = turnStarts.has(turn) ? turnStarts.get(turn) : playContext.currentTime;
  videoQueue.push({ turn, presentAt: base + ptsUs / 1e6, bitmap });
}

function cutTurn(turn) {
  cutTurns.add(turn);
  pausedTurns.delete(turn); // what the pause held is dropped with it
  for (const entry of sources.get(turn) || []) {
    try { entry.node.stop(); } catch (error) { /* already ended */ }
  }
  sources.delete(turn);
  playHead = playContext ? playContext.currentTime : 0;
  const item = assistantItems.get(turn);
  if (item) item.classList.add("cut");
  for (let i = videoQueue.length - 1; i >= 0; i--) if (videoQueue[i].turn === turn) videoQueue.splice(i, 1);
}

function stopAllAudio() {
  for (const turn of [...sources.keys(), ...pausedTurns.keys()]) cutTurn(turn);
}

async function loadStill() {
  // The portrait at rest, shown until the first reply's frames arrive.
  try {
    const still = TOKEN ? `avatar.jpg?token=${encodeURIComponent(TOKEN)}` : "avatar.jpg";
    const response = await fetch(still);
    if (response.ok) lastFrame = await createImageBitmap(await response.blob());
  } catch (error) {
    console.warn("no avatar still", error);
  }
}

// The avatar: video frames from the server when it sends them (on the reply's audio clock);
// with a server that has no avatar, a drawn face whose mouth follows the reply audio's level.
const level = new Float32Array(1024);
let lastFrame = null;
function draw() {
  const context = ui.canvas.getContext("2d");
  const now = playContext ? playContext.currentTime : 0;
  // A paused turn's clock stands still: its next frame waits, the face holds the current one.
  while (videoQueue.length && videoQueue[0].presentAt <= now) {
    if (pausedTurns.has(videoQueue[0].turn)) break;
    lastFrame = videoQueue.shift().bitmap;
  }
  if (lastFrame) {
    context.drawImage(lastFrame, 0, 0, ui.canvas.width, ui.canvas.height);
  } else {
    analyser.getFloatTimeDomainData(level);
    let sum = 0;
    for (const value of level) sum += value * value;
    const open = Math.min(1, Math.sqrt(sum / level.length) * 8);
    drawFace(context, open, now);
  }
  requestAnimationFrame(draw);
}

function drawFace(context, open, now) {
  const { width, height } = ui.canvas;
  context.fillStyle = "#20232b";
  context.fillRect(0, 0, width, height);
  context.fillStyle = "#f2c9a0";
  context.beginPath();
  context.ellipse(width / 2, height / 2, 150, 190, 0, 0, 2 * Math.PI);
  context.fill();
  const blink = now % 4 < 0.12 ? 0.1 : 1;
  context.fillStyle = "#1d2433";
  for (const dx of [-60, 60]) {
    context.beginPath();
    context.ellipse(width / 2 + dx, height / 2 - 40, 14, 14 * blink, 0, 0, 2 * Math.PI);
    context.fill();
  }
  context.fillStyle = "#6b1d2a";
  context.beginPath();
  context.ellipse(width / 2, height / 2 + 90, 50, 4 + 36 * open, 0, 0, 2 * Math.PI);
  context.fill();
}

ui.start.addEventListener("click", () => start().catch((error) => setStatus(String(error), "error")));
ui.stop.addEventListener("click", stop);
if (new URLSearchParams(location.search).has("autostart")) {
  start().catch((error) => setStatus(String(error), "error"));
}
