// Draws a QR code (error correction M, as citypass/wallet.py writes them) on a canvas: black
// modules on white with the 4-module quiet zone, crisp at the device's pixel ratio.
import { encode } from "uqr";

export function drawQr(canvas, text, cssSize) {
  const qr = encode(text, { ecc: "M", boostEcc: false, border: 4 });
  const modules = qr.size;
  const ratio = Math.max(1, Math.min(3, window.devicePixelRatio || 1));
  const scale = Math.max(1, Math.floor((cssSize * ratio) / modules));
  const px = modules * scale;
  canvas.width = px;
  canvas.height = px;
  canvas.style.width = `${px / ratio}px`;
  canvas.style.height = `${px / ratio}px`;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, px, px);
  ctx.fillStyle = "#000";
  ctx.beginPath(); // one path of horizontal runs, filled once: a few hundred rectangles, not thousands
  for (let y = 0; y < modules; y++) {
    const row = qr.data[y];
    for (let x = 0; x < modules; x++) {
      if (!row[x]) continue;
      let end = x + 1;
      while (end < modules && row[end]) end++;
      ctx.rect(x * scale, y * scale, (end - x) * scale, scale);
      x = end;
    }
  }
  ctx.fill();
  return { version: qr.version, modules: modules - 8 };
}
