// Reading the pass QR: the camera (getUserMedia, scanned a few times a second) or a chosen
// photo, decoded by the native BarcodeDetector where the browser has one, else by the
// zxing-wasm ponyfill with its wasm served by CityPass itself.
import { BarcodeDetector as Ponyfill, prepareZXingModule } from "barcode-detector/ponyfill";

let detector = null;

function getDetector() {
  if (detector) return detector;
  if ("BarcodeDetector" in window) {
    detector = new window.BarcodeDetector({ formats: ["qr_code"] });
  } else {
    prepareZXingModule({
      overrides: { locateFile: (path, prefix) => (path.endsWith(".wasm") ? "/assets/zxing_reader.wasm" : prefix + path) },
      fireImmediately: false,
    });
    detector = new Ponyfill({ formats: ["qr_code"] });
  }
  return detector;
}

/** Load the decoder now (the wasm) so the first scan is not slowed by it. */
export async function warmUp() {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 8;
  try {
    await getDetector().detect(canvas);
  } catch {
    // decoding an empty picture may throw; the module is loaded all the same
  }
}

export async function decodeImage(source) {
  const codes = await getDetector().detect(source);
  const qr = codes.find((c) => c.rawValue);
  return qr ? qr.rawValue : null;
}

export class Camera {
  constructor(video, onCode) {
    this.video = video;
    this.onCode = onCode;
    this.stream = null;
    this.timer = null;
    this.busy = false;
    this.last = null;
  }

  get running() {
    return Boolean(this.stream);
  }

  async start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw Object.assign(new Error("no camera"), { name: "NotFoundError" });
    this.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    this.video.srcObject = this.stream;
    this.video.hidden = false;
    await this.video.play().catch(() => {});
    this.last = null;
    this.timer = setInterval(() => this.tick(), 120);
  }

  async tick() {
    if (this.busy || !this.stream || this.video.readyState < 2) return;
    this.busy = true;
    const frameAt = performance.now(); // the frame the code is on: the verdict is timed from here
    try {
      const text = await decodeImage(this.video);
      // The same code in front of the camera is one scan, not one per frame.
      if (text && text !== this.last) {
        this.last = text;
        this.onCode(text, frameAt);
      }
    } catch {
      // a frame that cannot be decoded: try the next one
    } finally {
      this.busy = false;
    }
  }

  /** Forget the last code so the same pass can be scanned again (the next customer). */
  reset() {
    this.last = null;
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    this.video.srcObject = null;
    this.video.hidden = true;
  }
}

export async function decodeFile(file) {
  const bitmap = await createImageBitmap(file);
  try {
    return await decodeImage(bitmap);
  } finally {
    bitmap.close();
  }
}
