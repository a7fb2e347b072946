// Measures the studio in headless Chromium with a large model: open from a URL (?model=),
// hash + copy into OPFS + load tensor by tensor, then a reload that loads from the cache, then
// one image at the given head steps. Prints load times, the engine's wasm heap, peak GPU bytes,
// time to the first preview and per image as JSON. Not a test (minutes for a B model).
// With --stop-after-preview the run is stopped after its first preview (a B-1x image takes
// 256 AR steps: about 18 minutes at 1 head step under SwiftShader), and the figures are those of
// that part.
// With --finetune DIR (class folders of images) the image is skipped: a LoRA run on a 16-bit
// base starts from the cached model (read tensor by tensor), takes one step at batch 1, writes
// its checkpoint and its model into OPFS a tensor at a time; load time, step time and the wasm
// heap after it are printed.
// Usage: node measure.mjs MODEL.safetensors [--steps N] [--class K] [--stop-after-preview]
//        node measure.mjs MODEL.safetensors --finetune DIR
import { basename } from 'node:path';
import { serve, browser } from './browser.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const model = args.find((a) => a.endsWith('.safetensors'));
const steps = opt('--steps', '1');
const cls = opt('--class', '207');
const { server, url } = await serve({ [basename(model)]: model });
const { context } = await browser();
const page = await context.newPage();
page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
const settled = () => page.waitForFunction(() => document.body.dataset.state === 'ready' && document.getElementById('model-name').textContent !== 'Loading…', null, { timeout: 10_800_000 });
const memory = () => page.evaluate(() => studioProbe.engine.request('memory'));
const out = { model: basename(model) };

let t = Date.now();
await page.goto(`${url}?model=/files/${encodeURIComponent(basename(model))}`);
await page.waitForFunction((n) => document.getElementById('model-name').textContent === n, basename(model), { timeout: 10_800_000 });
await settled();
out.first_open_s = (Date.now() - t) / 1000;
out.after_first_open = await memory();
await page.goto(url);
t = Date.now();
await settled();
out.cached_open_s = (Date.now() - t) / 1000;
out.card = await page.evaluate(() => studioProbe.engine.request('model'));
const finetune = opt('--finetune', null);
if (finetune) {
  await page.click('#tab-train');
  await page.setInputFiles('#train-folder', finetune);
  await page.waitForFunction(() => !document.getElementById('train-start').disabled, null, { timeout: 600_000 });
  await page.selectOption('#train-what', 'Lora');
  await page.check('#train-half');
  for (const [id, v] of [['#train-steps', '1'], ['#train-batch', '1'], ['#train-ckpt', '1'], ['#train-samples', '0']]) await page.fill(id, v);
  t = Date.now();
  await page.click('#train-start');
  await page.waitForFunction(() => studioProbe.train.log.length > 0 || document.body.dataset.trainResult, null, { timeout: 10_800_000 });
  out.finetune_first_step_s = (Date.now() - t) / 1000;
  await page.waitForFunction(() => document.body.dataset.trainResult, null, { timeout: 10_800_000 });
  out.finetune_s = (Date.now() - t) / 1000;
  out.finetune_result = await page.evaluate(() => document.body.dataset.trainResult);
  out.finetune_status = await page.textContent('#train-status');
  out.finetune_loads = await page.evaluate(() => studioProbe.trainLoads.at(-1));
  out.after_finetune = await memory();
  console.log(JSON.stringify(out, null, 2));
  await page.screenshot({ path: '/tmp/measure.png' });
  await context.close();
  server.close();
  process.exit(0);
}
await page.fill('#class-search', cls);
await page.waitForSelector(`#class-list li[data-index="${cls}"]`);
await page.keyboard.press('Enter');
await page.fill('#steps', steps);
t = Date.now();
await page.click('#generate');
await page.waitForFunction(() => studioProbe.previews.length > 0 || document.body.dataset.state === 'ready', null, { timeout: 10_800_000 });
out.first_preview_s = (Date.now() - t) / 1000;
if (args.includes('--stop-after-preview')) {
  await page.click('#stop');
  out.stopped_after_preview = true;
}
await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 10_800_000 });
out[out.stopped_after_preview ? 'stopped_at_s' : 'image_s'] = (Date.now() - t) / 1000;
out.status = await page.textContent('#gen-status');
out.after_image = await memory();
out.head_steps = Number(steps);
console.log(JSON.stringify(out, null, 2));
await page.screenshot({ path: '/tmp/measure.png' });
await context.close();
server.close();
