// Dandelion web client: microphone in (echo cancellation on), reply audio out, transcripts,
// the avatar on a canvas, barge-in by speaking, reconnect on network loss.
// Wire protocol: docs/protocol.md. State is exposed as window.dandelion for tests.

const HEADER_BYTES = 24;
const KIND_AUDIO = 1;
const KIND_VIDEO = 2;
const IDLE_TURN = 0; // media of no turn: the avatar's idle frames

const state = {
  connected: false,
  sessionId: null,
  reconnects: 0,
  events: [],
  transcripts: [],
  audioFrames: 0,
  videoFrames: 0,
  idleFrames: 0,
  playedMs: 0,
  interrupted: [],
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
const sources = new Map(); // turn id -> playing AudioBufferSourceNodes
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
  };
  playContext = new AudioContext();
  analyser = playContext.createAnalyser();
  analyser.fftSize = 1024;
  analyser.connect(playContext.destination);
  ui.stop.disabled = false;
  connect();
  requestAnimationFrame(draw);
}

function stop() {
  stopping = true;
  if (ws) ws.close();
  if (micContext) micContext.close();
  ui.start.disabled = false;
  ui.stop.disabled = true;
  setStatus("stopped");
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${scheme}://${location.host}/v1/session`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    state.connected = true;
    backoffMs = 500;
    setStatus("listening", "live");
  };
  ws.onmessage = (message) => {
    if (typeof message.data === "string") onEvent(JSON.parse(message.data));
    else onMedia(message.data);
  };
  ws.onclose = () => {
    state.connected = false;
    stopAllAudio();
    if (stopping) return;
    // Network loss or a server restart: a new session after a growing pause.
    setStatus(`reconnecting in ${(backoffMs / 1000).toFixed(1)} s`, "error");
    state.reconnects += 1;
    setTimeout(connect, backoffMs);
    backoffMs = Math.min(backoffMs * 2, 8000);
  };
}

function onEvent(event) {
  state.events.push(event);
  switch (event.type) {
    case "session.created":
      state.sessionId = event.session_id;
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
  // A reply is heard (audio scheduled) or its frames are still waiting to be shown.
  if (videoQueue.length) return true;
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
  const pcm = new Int16Array(payload);
  const buffer = playContext.createBuffer(1, pcm.length, outputRate);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
  const source = playContext.createBufferSource();
  source.buffer = buffer;
  source.connect(analyser);
  const at = Math.max(playContext.currentTime + 0.03, playHead);
  if (!turnStarts.has(turn)) turnStarts.set(turn, at - ptsUs / 1e6);
  source.start(at);
  playHead = at + buffer.duration;
  source.onended = () => {
    state.playedMs += buffer.duration * 1000;
    const list = sources.get(turn);
    if (list) list.splice(list.indexOf(source), 1);
  };
  if (!sources.has(turn)) sources.set(turn, []);
  sources.get(turn).push(source);
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
  for (const source of sources.get(turn) || []) {
    try { source.stop(); } catch (error) { /* already ended */ }
  }
  sources.delete(turn);
  playHead = playContext ? playContext.currentTime : 0;
  const item = assistantItems.get(turn);
  if (item) item.classList.add("cut");
  for (let i = videoQueue.length - 1; i >= 0; i--) if (videoQueue[i].turn === turn) videoQueue.splice(i, 1);
}

function stopAllAudio() {
  for (const turn of sources.keys()) cutTurn(turn);
}

async function loadStill() {
  // The portrait at rest, shown until the first reply's frames arrive.
  try {
    const response = await fetch("avatar.jpg");
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
  while (videoQueue.length && videoQueue[0].presentAt <= now) lastFrame = videoQueue.shift().bitmap;
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
