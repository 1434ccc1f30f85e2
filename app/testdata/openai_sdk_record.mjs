import http from 'node:http';
import fs from 'node:fs';
import OpenAI, { toFile } from 'openai';
import zlib from 'node:zlib';

// A 16x16 PNG (RGBA): opaque gray image, and a mask transparent on its left half.
function png(w, h, px) {
  const crcT = new Int32Array(256).map((_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c; });
  const crc = b => { let c = -1; for (const x of b) c = crcT[(c ^ x) & 255] ^ (c >>> 8); return (c ^ -1) >>> 0; };
  const chunk = (t, d) => { const l = Buffer.alloc(4); l.writeUInt32BE(d.length); const td = Buffer.concat([Buffer.from(t), d]); const c = Buffer.alloc(4); c.writeUInt32BE(crc(td)); return Buffer.concat([l, td, c]); };
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 6;
  const raw = Buffer.alloc((w * 4 + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) { const p = px(x, y); p.forEach((v, i) => raw[y * (w * 4 + 1) + 1 + x * 4 + i] = v); }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
const img = png(64, 64, (x, y) => [120, 130, 140, 255]);
const mask = png(64, 64, (x, y) => [0, 0, 0, x < 32 ? 0 : 255]);

const recs = [];
const srv = http.createServer((req, res) => {
  const parts = [];
  req.on('data', d => parts.push(d));
  req.on('end', () => {
    recs.push({ method: req.method, url: req.url, contentType: req.headers['content-type'], body: Buffer.concat(parts).toString('base64') });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ created: 0, data: [] }));
  });
});
srv.listen(0, async () => {
  const client = new OpenAI({ apiKey: 'k', baseURL: `http://127.0.0.1:${srv.address().port}/v1`, maxRetries: 0 });
  const f = (b, n) => toFile(b, n, { type: 'image/png' });
  await client.images.edit({ model: 'gpt-image-1', image: [await f(img, 'a.png'), await f(img, 'b.png')], mask: await f(mask, 'mask.png'), prompt: 'a red apple', n: 1, size: 'auto', quality: 'low', output_format: 'jpeg', output_compression: 80 });
  await client.images.edit({ image: await f(img, 'a.png'), prompt: 'a green apple', response_format: 'b64_json', size: '64x64' });
  await client.images.createVariation({ image: await f(img, 'a.png'), n: 2, response_format: 'b64_json', size: '64x64' });
  try { await client.images.edit({ model: 'gpt-image-1', image: await f(img, 'a.png'), prompt: 'a blue apple', stream: true, partial_images: 2 }); } catch (e) {}
  try { await client.images.generate({ model: 'gpt-image-1', prompt: 'a pear', stream: true, partial_images: 1, moderation: 'low', output_format: 'webp' }); } catch (e) {}
  fs.writeFileSync('openai_sdk_requests.json', JSON.stringify(recs, null, 1));
  srv.close();
});
