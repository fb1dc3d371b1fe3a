// Runs on the audio thread: down-samples the microphone to 16 kHz mono PCM16 in 20 ms frames.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000;
    this.position = 0;
    this.frame = new Int16Array(320);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    // Box-filter each output sample over the input samples it spans (anti-aliasing enough for
    // speech), then take 16 kHz samples.
    while (this.position + this.ratio <= channel.length) {
      const start = Math.floor(this.position);
      const end = Math.floor(this.position + this.ratio);
      let sum = 0;
      for (let i = start; i < end; i++) sum += channel[i];
      const value = Math.max(-1, Math.min(1, sum / Math.max(1, end - start)));
      this.frame[this.filled++] = value * 32767;
      if (this.filled === this.frame.length) {
        this.port.postMessage(this.frame.buffer.slice(0));
        this.filled = 0;
      }
      this.position += this.ratio;
    }
    this.position -= channel.length;
    return true;
  }
}

registerProcessor("capture-processor", CaptureProcessor);
