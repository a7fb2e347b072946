// The studio page driven as a person uses it, in Debian's headless Chromium (SwiftShader
// WebGPU), with no network: generation with previews and a responsive main thread, a model
// opened from a file and generated from the cache after a reload, a damaged cache refused, a
// PNG's recipe dropped back and reproduced bit for bit, a model past a lowered binding limit
// refused by name, a browser without WebGPU told so, and the kernel checks in the GPU tab.
//
// Usage: node studio.mjs MODEL.safetensors DATA_DIR [--screenshots DIR]
// (scripts/web-e2e.sh builds the page and the model, then runs this.)
import { readFile, mkdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import assert from 'node:assert/strict';
import { serve, browser } from './browser.mjs';

const [modelPath, dataDir] = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && all[i - 1] !== '--screenshots');
const shotsAt = process.argv.indexOf('--screenshots');
const shots = shotsAt > 0 ? process.argv[shotsAt + 1] : null;
if (!modelPath || !dataDir) {
  console.error('usage: node studio.mjs MODEL.safetensors DATA_DIR [--screenshots DIR]');
  process.exit(2);
}
if (shots) await mkdir(shots, { recursive: true });

const LONG_TASK_MS = 100;
const results = [];

// ONLY=<part of a name> runs the matching tests alone (when iterating on one).
async function test(name, fn) {
  if (process.env.ONLY && !name.includes(process.env.ONLY)) return;
  const t0 = Date.now();
  try {
    await fn();
    results.push([name, 'PASS', Date.now() - t0]);
    console.log(`PASS ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push([name, 'FAIL', Date.now() - t0]);
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

async function shot(page, name) {
  if (shots) await page.screenshot({ path: join(shots, `${name}.png`) });
}

// Waits until the page is idle ('ready', or another final state).
async function settled(page, timeout = 180_000) {
  await page.waitForFunction(() => ['ready', 'error', 'no-webgpu'].includes(document.body.dataset.state), null, { timeout });
}

async function open(context, url) {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`  page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && !m.text().includes('404') && console.log(`  console: ${m.text()}`));
  await page.goto(url);
  await settled(page);
  return page;
}

// Generates with the current settings, by the button or, with `shortcut`, by Ctrl+Enter typed
// in the seed field; returns what the probe saw.
async function generate(page, shortcut = false) {
  await page.waitForFunction(() => !document.getElementById('generate').disabled, null, { timeout: 60_000 });
  const before = await page.evaluate(() => ({ frames: studioProbe.frames, longTasks: studioProbe.longTasks.length, t: performance.now() }));
  if (shortcut) await page.press('#seed', 'Control+Enter');
  else await page.click('#generate');
  await page.waitForFunction(() => document.body.dataset.state === 'generating', null, { timeout: 10_000 });
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 300_000 });
  return page.evaluate((b) => ({
    steps: studioProbe.steps,
    previews: studioProbe.previews,
    frames: studioProbe.frames - b.frames,
    seconds: (performance.now() - b.t) / 1000,
    longTasks: studioProbe.longTasks.slice(b.longTasks),
    status: document.getElementById('gen-status').textContent,
  }), before);
}

// Spread of the canvas's pixel values: 0 for a flat image.
async function canvasSpread(page) {
  return page.evaluate(() => {
    const c = document.getElementById('image');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let min = 255;
    let max = 0;
    for (let i = 0; i < d.length; i += 4) {
      min = Math.min(min, d[i]);
      max = Math.max(max, d[i]);
    }
    return max - min;
  });
}

// The tEXt chunks of a PNG, as {keyword: text}.
function pngText(bytes) {
  const out = {};
  let at = 8;
  while (at + 8 <= bytes.length) {
    const len = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    if (type === 'tEXt') {
      const data = bytes.subarray(at + 8, at + 8 + len);
      const nul = data.indexOf(0);
      out[data.toString('latin1', 0, nul)] = data.toString('latin1', nul + 1);
    }
    at += 12 + len;
  }
  return out;
}

// Drops files (name -> bytes) on the page, as a drag from the desktop does.
async function drop(page, files) {
  const payload = Object.entries(files).map(([name, b]) => [name, Buffer.from(b).toString('base64')]);
  await page.evaluate((list) => {
    const dt = new DataTransfer();
    for (const [name, b64] of list) {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], name));
    }
    window.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, payload);
}

const { server, url } = await serve();
const { context } = await browser();
const modelName = basename(modelPath);

await test('generates with the default model: previews stream, the main thread stays responsive', async () => {
  const page = await open(context, url);
  await shot(page, 'create-start');
  assert.match(await page.textContent('#model-name'), /Default model/);
  const run = await generate(page);
  assert.match(run.status, /^Done in/, run.status);
  const total = run.steps.at(-1)?.total;
  assert.ok(total >= 2 && run.steps.at(-1).done === total, `steps ${JSON.stringify(run.steps)}`);
  assert.ok(run.steps.length >= total, 'a step event per AR step');
  const distinct = new Set(run.previews.map((p) => p.hash)).size;
  assert.ok(distinct >= 2, `at least two distinct previews, got ${distinct}`);
  assert.ok(run.previews.every((p) => p.done < total), 'previews come before the final image');
  assert.ok((await canvasSpread(page)) > 64, 'the final image is not flat');
  const fps = run.frames / run.seconds;
  assert.ok(fps >= 20, `the page kept drawing: ${fps.toFixed(0)} frames/s`);
  const long = run.longTasks.filter((d) => d > LONG_TASK_MS);
  assert.deepEqual(long, [], `long tasks on the main thread: ${long}`);
  console.log(`  ${total} AR steps in ${run.seconds.toFixed(1)} s, ${distinct} distinct previews, ${fps.toFixed(0)} frames/s, longest task ${Math.max(0, ...run.longTasks)} ms`);
  await shot(page, 'create-done');

  // Search: type, pick with the keyboard.
  await page.fill('#class-search', '7');
  await page.waitForSelector('#class-list li[data-index="7"]');
  await page.keyboard.press('Enter');
  assert.match(await page.textContent('#class-chosen'), /Class 7/);
  await page.close();
});

await test('a downloaded PNG carries its recipe; dropped back, it reproduces the same tokens', async () => {
  const page = await open(context, url);
  await page.fill('#seed', '4242');
  await page.check('#seed-lock');
  await generate(page);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  const png = await readFile(await download.path());
  const recipe = JSON.parse(pngText(png)['bitdance-recipe']);
  assert.equal(recipe.seed, 4242);
  assert.equal(recipe.model, 'default');
  assert.match(recipe.token_hash, /^[0-9a-f]{64}$/);
  assert.ok(download.suggestedFilename().endsWith('-s4242.png'), download.suggestedFilename());
  // A fresh page, settings changed, then the PNG dropped on it.
  await page.reload();
  await settled(page);
  await page.fill('#seed', '1');
  await drop(page, { [download.suggestedFilename()]: png });
  await page.waitForSelector('#recipe-box:not([hidden])');
  assert.equal(await page.inputValue('#seed'), '4242', 'the recipe restored the seed');
  await page.click('#reproduce');
  await page.waitForSelector('#recipe-result[data-match]', { timeout: 300_000 });
  assert.equal(await page.getAttribute('#recipe-result', 'data-match'), 'true', await page.textContent('#recipe-result'));
  await shot(page, 'create-reproduced');
  // The gallery kept both images across the reload.
  assert.ok((await page.locator('#gallery .tile').count()) >= 2);
  await page.close();
});

await test('a recipe of several images sampled together reproduces from any of its PNGs', async () => {
  const page = await open(context, url);
  // A recipe as `bitdance generate -c 1 -c 3 -c 3 --batch 2` samples it: two passes over one
  // generator (the page's own runs are one image each; such recipes come from the CLI and the
  // desktop app).
  const made = await page.evaluate(() =>
    studioProbe.engine.request('generate', { classes: [1, 3, 3], batch: 2, cfg: 3, steps: 4, schedule: 'linear', seed: 77 }).then((r) => ({
      hashes: r.images.map((i) => i.recipe.token_hash),
      indices: r.images.map((i) => i.index),
      png: Array.from(r.images[2].png),
      grid: r.grid.width,
    })));
  assert.deepEqual(made.indices, [0, 1, 2]);
  assert.equal(new Set(made.hashes).size, 1, 'one token hash for the run');
  const recipe = JSON.parse(pngText(Buffer.from(made.png))['bitdance-recipe']);
  assert.deepEqual(recipe.classes, [1, 3, 3]);
  assert.equal(recipe.batch, 2);
  await page.reload();
  await settled(page);
  await drop(page, { 'bitdance-c3-s77-i2.png': Buffer.from(made.png) });
  await page.waitForSelector('#recipe-box:not([hidden])');
  assert.match(await page.textContent('#recipe-text'), /3 images, 2 at a time/);
  await page.click('#reproduce');
  await page.waitForSelector('#recipe-result[data-match]', { timeout: 300_000 });
  assert.equal(await page.getAttribute('#recipe-result', 'data-match'), 'true', await page.textContent('#recipe-result'));
  // The three images side by side on the stage, each kept in the gallery with its place.
  assert.ok(await page.evaluate(() => document.getElementById('image').width) > 2 * 8);
  assert.ok((await page.locator('#gallery .tile', { hasText: 'image 3 of 3' }).count()) >= 1);
  await shot(page, 'create-reproduced-batch');
  await page.close();
});

// Opens the test's model file through the Models tab's file input and waits until it is loaded.
async function openModelFile(page) {
  await page.click('#tab-models');
  await page.setInputFiles('#model-file', modelPath);
  await page.waitForFunction((n) => document.getElementById('model-name').textContent === n, modelName, { timeout: 120_000 });
  await settled(page);
}

let sha;
await test('a model file opened once is cached and generates after a reload without the file', async () => {
  const page = await open(context, url);
  await openModelFile(page);
  const row = page.locator('#model-table tbody tr.current');
  await row.waitFor();
  sha = await row.locator('code').getAttribute('title');
  assert.match(sha, /^[0-9a-f]{64}$/);
  assert.match(await row.textContent(), /tiny/);
  await shot(page, 'models');
  await page.reload();
  await settled(page);
  assert.equal(await page.textContent('#model-name'), modelName, 'the cached model loads on the next visit');
  const run = await generate(page);
  assert.match(run.status, /^Done in/, run.status);
  assert.ok((await canvasSpread(page)) > 32);
  await page.close();
});

await test('a damaged cache entry is refused with a message and removed', async () => {
  assert.ok(sha, 'the previous test cached a model');
  const page = await open(context, url);
  await page.evaluate(async (name) => {
    const models = await (await navigator.storage.getDirectory()).getDirectoryHandle('models');
    const handle = await models.getFileHandle(name);
    const file = await handle.getFile();
    const w = await handle.createWritable({ keepExistingData: true });
    await w.write({ type: 'write', position: Math.floor(file.size / 2), data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) });
    await w.close();
  }, `${sha}.safetensors`);
  await page.reload();
  await settled(page);
  const notice = await page.textContent('#notice');
  assert.match(notice, /damaged/, notice);
  assert.match(notice, new RegExp(modelName.replace('.', '\\.')));
  assert.match(await page.textContent('#model-name'), /Default model/);
  await page.click('#tab-models');
  await page.waitForFunction(() => document.querySelectorAll('#model-table tbody tr').length === 1);
  await page.close();
});

await test('a model past a lowered binding limit is refused by name', async () => {
  const page = await open(context, `${url}?max_binding_kib=16`);
  const notice = await page.textContent('#notice');
  assert.match(notice, /max_storage_buffer_binding_size = 16384/, notice);
  assert.match(notice, /feature map|a row of weight/, notice);
  await page.click('#tab-models');
  await page.setInputFiles('#model-file', modelPath);
  await page.waitForFunction(() => /exceeds the adapter limit/.test(document.getElementById('notice').textContent), null, { timeout: 120_000 });
  await page.close();
});

await test('the weights switch between 16 and 32 bits, and both generate (Ctrl+Enter in a field starts it)', async () => {
  const page = await open(context, url);
  assert.match(await page.textContent('#model-meta'), /f16$/);
  await page.click('#tab-models');
  await page.selectOption('#precision', 'f32');
  await page.waitForFunction(() => /f32$/.test(document.getElementById('model-meta').textContent), null, { timeout: 60_000 });
  await settled(page);
  await page.click('#tab-create');
  const run = await generate(page, true);
  assert.match(run.status, /^Done in/, run.status);
  const recipe = await page.evaluate(() => studioProbe.engine.request('gallery').then((g) => g[0].recipe));
  assert.equal(recipe.precision, 'f32');
  await page.close();
});

await test('a lost GPU device is reported, the engine restarts and generates again', async () => {
  const page = await open(context, url);
  await page.evaluate(() => studioProbe.engine.request('loseDevice'));
  await page.click('#generate');
  await page.waitForFunction(() => /was restarted/.test(document.getElementById('notice').textContent), null, { timeout: 120_000 });
  assert.match(await page.textContent('#notice'), /GPU device was lost/);
  await settled(page);
  const run = await generate(page);
  assert.match(run.status, /^Done in/, run.status);
  await page.close();
});

// Fine-tunes on the data folder with `steps` steps; `interrupt(page)` may reload mid-run.
async function fineTune(page, steps, interrupt) {
  await page.click('#tab-train');
  await page.setInputFiles('#train-folder', dataDir);
  await page.waitForFunction(() => !document.getElementById('train-start').disabled);
  await page.fill('#train-steps', String(steps));
  await page.fill('#train-batch', '2');
  await page.fill('#train-ckpt', '2');
  await page.fill('#train-samples', String(steps));
  await page.fill('#train-seed', '5');
  await page.click('#train-start');
  if (interrupt) return interrupt(page);
  await page.waitForFunction(() => document.body.dataset.trainResult, null, { timeout: 300_000 });
  assert.equal(await page.evaluate(() => document.body.dataset.trainResult), 'finished', await page.textContent('#train-status'));
  return page.evaluate(() => studioProbe.train.log);
}

await test('fine-tuning runs in the page, survives a reload and resumes exactly', async () => {
  const steps = 6;
  const page = await open(context, url);
  const whole = await fineTune(page, steps);
  assert.equal(whole.length, steps);
  assert.ok(whole.every((p) => Number.isFinite(p.loss)), JSON.stringify(whole));
  await shot(page, 'finetune');
  assert.match(await page.textContent('#train-samples-step'), new RegExp(`step ${steps}`));
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#train-download')]);
  const bytes = await readFile(await download.path());
  assert.ok(bytes.length > 1e6 && bytes.readBigUInt64LE(0) < 1e8, 'a safetensors file');
  // The same run, the page reloaded after its third step (the checkpoint is at step 2).
  const t0 = Date.now();
  await fineTune(page, steps, async (p) => {
    await p.waitForFunction(() => studioProbe.train.log.length >= 3, null, { timeout: 300_000 });
  });
  await page.reload();
  await settled(page);
  await page.click('#tab-train');
  await page.waitForSelector('#train-resume:not([hidden])');
  assert.match(await page.textContent('#train-status'), /stopped at step 2 of 6/);
  await page.click('#train-resume');
  await page.waitForFunction(() => document.body.dataset.trainResult, null, { timeout: 300_000 });
  const resumed = await page.evaluate(() => studioProbe.train.log);
  assert.deepEqual(resumed, whole, 'the resumed run took the same steps with the same losses');
  console.log(`  ${steps} steps, losses ${whole.map((p) => p.loss.toFixed(4)).join(' ')}; interrupted run ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // The fine-tuned model generates.
  await page.click('#train-use');
  await page.waitForFunction(() => /finetuned/.test(document.getElementById('model-name').textContent), null, { timeout: 60_000 });
  await settled(page);
  const run = await generate(page);
  assert.match(run.status, /^Done in/, run.status);
  await page.close();
});

await test('a fine-tune starts from an opened model, read from the cache a tensor at a time', async () => {
  const page = await open(context, url);
  await openModelFile(page);
  const log = await fineTune(page, 2);
  assert.equal(log.length, 2);
  const loads = await page.evaluate(() => studioProbe.trainLoads);
  const size = (await stat(modelPath)).size;
  const last = loads.at(-1);
  assert.ok(last && last.label === modelName && last.done === last.total, JSON.stringify(last));
  assert.ok(last.total > 0.9 * size && last.total < size, `${last.total} of the file's ${size} bytes read by range`);
  assert.match(await page.textContent('#train-status'), new RegExp(`finetuned-${modelName.replace(/\.safetensors$/, '')}-2steps`));
  await page.close();
});

await test('the bundled fine-tuning sample is offered with its classes and memory need', async () => {
  const page = await open(context, url);
  await page.click('#tab-train');
  await page.click('#train-sample');
  await page.waitForFunction(() => /240 images in 10 classes/.test(document.getElementById('train-data').textContent));
  assert.match(await page.textContent('#train-data'), /ankle-boot, bag, coat/);
  await page.waitForFunction(() => /Needs about/.test(document.getElementById('train-estimate').textContent));
  const full = await page.textContent('#train-estimate');
  // The step time before the start, from the model's work and a probe of this GPU.
  assert.match(full, /Steps take about [\d.]+ (s|min|h) here, [\d.]+ (s|min|h) for \d+ steps .*GFLOP\/s/, full);
  // The class rows alone need less (no gradients, moments or EMA for the rest).
  await page.selectOption('#train-what', 'Embeddings');
  await page.waitForFunction((before) => document.getElementById('train-estimate').textContent !== before, full);
  const mib = (text) => Number(/Needs about ([\d.]+) MiB/.exec(text)?.[1]);
  const table = await page.textContent('#train-estimate');
  assert.ok(mib(table) < mib(full), `${full} vs ${table}`);
  // LoRA: adapters and the class rows train, between the two.
  await page.selectOption('#train-what', 'Lora');
  await page.waitForFunction((before) => document.getElementById('train-estimate').textContent !== before, table);
  const lora = await page.textContent('#train-estimate');
  assert.ok(mib(table) < mib(lora) && mib(lora) < mib(full), `${table} < ${lora} < ${full}`);
  assert.match(await page.getAttribute('#train-estimate', 'title'), /gradients/);
  // Recomputing the activations needs less.
  await page.check('#train-recompute');
  await page.waitForFunction((before) => document.getElementById('train-estimate').textContent !== before, lora);
  const recomputed = await page.textContent('#train-estimate');
  assert.ok(mib(recomputed) < mib(lora), `${recomputed} vs ${lora}`);
  await shot(page, 'finetune-options');
  assert.equal(await page.isDisabled('#train-start'), false);
  await page.close();
});

await test('a browser without WebGPU is told which browsers have it', async () => {
  const page = await context.newPage();
  await page.addInitScript(() => {
    delete Navigator.prototype.gpu;
  });
  await page.goto(url);
  await page.waitForSelector('#no-webgpu:not([hidden])');
  assert.match(await page.textContent('#no-webgpu'), /Chrome/);
  await page.close();
});

await test('the kernel checks pass on this adapter (GPU tab)', async () => {
  const page = await open(context, url);
  await page.click('#tab-gpu');
  await page.click('#run-checks');
  await page.waitForSelector('#done', { state: 'attached', timeout: 300_000 });
  const done = await page.evaluate(() => ({ ...document.getElementById('done').dataset }));
  console.log(`  kernel checks: ${done.passed} passed, ${done.failed} failed, ${done.skipped} skipped`);
  assert.equal(done.error, undefined, done.error);
  assert.equal(done.failed, '0');
  assert.ok(Number(done.passed) > 50);
  await shot(page, 'gpu');
  await page.close();
});

await context.close();
server.close();
const failed = results.filter((r) => r[1] === 'FAIL');
console.log(`\n${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
