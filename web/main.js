// The studio page. It only draws: the engine (GPU, models, storage) runs in web/worker.js and
// answers requests; this file wires the controls, shows previews as they arrive, keeps the
// gallery on screen and restores recipes from dropped PNGs.
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// What the tests read: frames drawn and long tasks seen on this (main) thread, and the events
// of the last generation.
const probe = (window.studioProbe = { frames: 0, longTasks: [], steps: [], previews: [], trainLoads: [] });
(function countFrames() {
  probe.frames += 1;
  requestAnimationFrame(countFrames);
})();
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) probe.longTasks.push(Math.round(e.duration));
  }).observe({ type: 'longtask', buffered: true });
} catch {
  // no long-task entries in this browser
}

// ---------------------------------------------------------------------------------------------
// The engine in its worker: request(op, args) answers with a promise; events go to listeners.

class Engine {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.pending = new Map();
    this.next = 1;
    this.start();
  }

  start() {
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.worker.onmessage = ({ data }) => {
      if (data.event) return this.onEvent(data);
      const waiter = this.pending.get(data.id);
      this.pending.delete(data.id);
      if (!waiter) return;
      if (data.ok) waiter.resolve(data.result);
      else waiter.reject(new Error(data.error));
    };
    this.worker.onerror = (e) => this.onEvent({ event: 'fatal', message: e.message || 'the engine failed to start' });
  }

  // Ends the worker (after a wasm panic it cannot be trusted) and starts a fresh one.
  restart() {
    this.worker.terminate();
    for (const w of this.pending.values()) w.reject(new Error('the engine was restarted'));
    this.pending.clear();
    this.start();
  }

  request(op, args = {}, transfer = []) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, ...args }, transfer);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// State

const state = {
  model: null, // the loaded model's card
  adapter: null,
  families: [],
  cls: null, // {index, name, label}
  running: false,
  recipe: null, // a recipe restored from a PNG: {source, recipe}
  gallery: [],
};

const engine = new Engine(onEngineEvent);
probe.engine = engine;

function onEngineEvent(e) {
  switch (e.event) {
    case 'step':
      probe.steps.push({ done: e.done, total: e.total, at: performance.now() });
      $('progress-bar').style.width = `${(100 * e.done) / e.total}%`;
      $('gen-status').textContent = `Step ${e.done} of ${e.total} · ${(e.elapsed / 1000).toFixed(1)} s`;
      break;
    case 'preview':
      probe.previews.push({ done: e.done, hash: quickHash(e.rgba) });
      draw(e.rgba, e.width);
      break;
    case 'progress':
      if (e.job === 'train') {
        // A fine-tune's starting model or checkpoint, read tensor by tensor.
        probe.trainLoads.push({ label: e.label, done: e.done, total: e.total });
        $('train-status').textContent = `Loading ${e.label}: ${bytes(e.done)} of ${bytes(e.total)}`;
      } else {
        showOpenProgress(e);
      }
      break;
    case 'fatal':
      recover(e.message);
      break;
    case 'trainStep':
      onTrainStep(e);
      break;
    case 'trainSamples':
      drawGrid(e);
      break;
    case 'trainPhase':
      $('train-status').textContent = e.text;
      break;
    case 'trainInfo':
      // Which class each folder trains: its own class when named like one, else a new class.
      $('train-status').textContent = `Training on ${plural(e.images, 'image')} of ${plural(e.classes.length, 'class', 'classes')}: ${(e.mapping ?? e.classes).join('; ')}`;
      $('train-note').textContent = e.note ?? '';
      $('train-note').hidden = !e.note;
      break;
    default:
      break;
  }
}

// A cheap fingerprint of an image, so the tests can count distinct previews.
function quickHash(bytes) {
  let h = 2166136261;
  for (let i = 0; i < bytes.length; i += 7) h = Math.imul(h ^ bytes[i], 16777619);
  return h >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

// "1 image", "3 images".
function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

function notice(text, kind = 'warn') {
  const n = $('notice');
  n.textContent = text;
  n.className = `notice ${kind === 'error' ? 'error' : ''}`;
  n.hidden = !text;
}

const message = (e) => (e instanceof Error ? e.message : String(e));

function bytes(n) {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 2 ** 10).toFixed(0)} KiB`;
}

function params_(n) {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : `${(n / 1e3).toFixed(0)} K`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

// Paints RGBA bytes `width` pixels wide on `canvas`, sized to them.
function paint(canvas, rgba, width) {
  const height = rgba.length / 4 / width;
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba.buffer ?? rgba), width, height), 0, 0);
}

// Draws an image `width` pixels wide (square when not given) on the stage, pixelated when small.
function draw(rgba, width = Math.round(Math.sqrt(rgba.length / 4))) {
  paint($('image'), rgba, width);
  $('image').style.imageRendering = width < 128 ? 'pixelated' : 'auto';
  $('placeholder').hidden = true;
}

const randomSeed = () => Math.floor(Math.random() * 2 ** 31);

// ---------------------------------------------------------------------------------------------
// Tabs

const TABS = ['create', 'models', 'train', 'gpu'];
function showTab(name) {
  for (const t of TABS) {
    $(`tab-${t}`).setAttribute('aria-selected', String(t === name));
    $(`panel-${t}`).hidden = t !== name;
  }
  if (name === 'models') refreshModels();
  if (name === 'gpu') refreshMemory();
  if (name === 'train') refreshTraining();
}
for (const t of TABS) $(`tab-${t}`).onclick = () => showTab(t);
$('change-model').onclick = () => showTab('models');

// ---------------------------------------------------------------------------------------------
// The model

function showModel(card) {
  if (!card) return;
  state.model = card;
  $('model-name').textContent = card.name === 'default' ? 'Default model (MNIST digits)' : card.name;
  $('model-meta').textContent = `${card.config} · ${card.resolution}×${card.resolution} · ${card.classes} classes · ${params_(card.parameters)} parameters · ${card.precision}`;
  $('cfg').value = card.cfg;
  $('cfg-value').textContent = Number(card.cfg).toFixed(2);
  $('steps').value = card.steps;
  $('schedule').value = 'linear';
  $('class-search').disabled = false;
  setClass(null);
  $('generate').disabled = true;
  $('gen-status').textContent = 'Pick a class.';
  // A small model: pick its first class so one click generates.
  if (card.classes <= 16) {
    engine.request('search', { query: '', limit: 1 }).then(([first]) => first && setClass(first));
  }
}

function setClass(hit) {
  state.cls = hit;
  const chosen = $('class-chosen');
  chosen.textContent = hit ? `Class ${hit.label}` : 'No class chosen';
  chosen.classList.toggle('set', !!hit);
  $('generate').disabled = !hit || state.running;
  if (hit && !state.running) $('gen-status').textContent = 'Ready.';
}

// Type-to-search over the model's class names, with arrow keys and Enter.
let searchSerial = 0;
let activeHit = -1;
let hits = [];
async function search() {
  const serial = ++searchSerial;
  const query = $('class-search').value;
  const found = await engine.request('search', { query, limit: 60 });
  if (serial !== searchSerial) return;
  hits = found;
  activeHit = found.length ? 0 : -1;
  renderHits();
}

function renderHits() {
  const list = $('class-list');
  list.replaceChildren(
    ...hits.map((h, i) => el('li', {
      role: 'option', 'aria-selected': String(i === activeHit), 'data-index': h.index,
      onmousedown: (ev) => { ev.preventDefault(); choose(h); },
    }, h.label)),
  );
  if (!hits.length) list.append(el('li', { class: 'muted', 'aria-disabled': 'true' }, 'No class matches'));
  list.hidden = false;
  $('class-search').setAttribute('aria-expanded', 'true');
  list.querySelector('[aria-selected="true"]')?.scrollIntoView({ block: 'nearest' });
}

function closeHits() {
  $('class-list').hidden = true;
  $('class-search').setAttribute('aria-expanded', 'false');
}

function choose(hit) {
  setClass(hit);
  $('class-search').value = '';
  closeHits();
}

$('class-search').addEventListener('input', search);
$('class-search').addEventListener('focus', search);
$('class-search').addEventListener('blur', () => setTimeout(closeHits, 100));
$('class-search').addEventListener('keydown', (ev) => {
  if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
    ev.preventDefault();
    if (!hits.length) return;
    activeHit = (activeHit + (ev.key === 'ArrowDown' ? 1 : hits.length - 1)) % hits.length;
    renderHits();
  } else if (ev.key === 'Enter' && activeHit >= 0) {
    ev.preventDefault();
    choose(hits[activeHit]);
  } else if (ev.key === 'Escape') {
    closeHits();
  }
});

$('cfg').addEventListener('input', () => { $('cfg-value').textContent = Number($('cfg').value).toFixed(2); });
$('dice').onclick = () => { $('seed').value = randomSeed(); };

// ---------------------------------------------------------------------------------------------
// Generation

function settings() {
  const steps = Math.round(Number($('steps').value));
  const seed = Math.round(Number($('seed').value));
  const count = Math.round(Number($('count').value));
  if (!(steps >= 1 && steps <= 1000)) throw new Error('head steps must be between 1 and 1000');
  if (!(seed >= 0 && seed <= 2 ** 32 - 1)) throw new Error('the seed must be a whole number from 0 to 4294967295');
  if (!(count >= 1 && count <= 16)) throw new Error('images must be between 1 and 16');
  return { cls: state.cls.index, cfg: Number($('cfg').value), steps, schedule: $('schedule').value, seed, count };
}

function setRunning(running) {
  state.running = running;
  $('generate').disabled = running || !state.cls;
  $('stop').disabled = !running;
  $('change-model').disabled = running;
  document.body.dataset.state = running ? 'generating' : 'ready';
}

// Runs `count` images (seeds seed, seed+1, ...); returns the last result (null when stopped).
async function run(s) {
  setRunning(true);
  probe.steps = [];
  probe.previews = [];
  $('download').hidden = true;
  let last = null;
  try {
    for (let i = 0; i < s.count; i++) {
      const result = await engine.request('generate', { ...s, seed: s.seed + i });
      if (!result) {
        $('gen-status').textContent = 'Stopped.';
        return null;
      }
      if (result.images.length > 1) draw(result.grid.rgba, result.grid.width);
      else draw(result.rgba);
      offerDownload(result.png, result.recipe);
      // Newest first, a run's images in their order.
      for (const image of [...result.images].reverse()) addToGallery(image.item);
      $('gen-status').textContent = `Done in ${result.seconds.toFixed(1)} s${s.count > 1 ? ` (image ${i + 1} of ${s.count})` : ''}.`;
      last = result;
    }
    if (!$('seed-lock').checked) $('seed').value = randomSeed();
    return last;
  } catch (e) {
    $('gen-status').textContent = `Error: ${message(e)}`;
    return null;
  } finally {
    setRunning(false);
  }
}

$('generate').onclick = async () => {
  let s;
  try {
    s = settings();
  } catch (e) {
    $('gen-status').textContent = message(e);
    return;
  }
  await run(s);
};
$('stop').onclick = () => engine.request('stop');
// Ctrl+Enter (Cmd+Enter on a Mac) generates from anywhere on the Create tab, a field included,
// as the desktop app's shortcut does.
document.addEventListener('keydown', (ev) => {
  if (ev.key !== 'Enter' || !(ev.ctrlKey || ev.metaKey) || ev.repeat) return;
  if ($('panel-create').hidden || $('generate').disabled) return;
  ev.preventDefault();
  $('generate').click();
});

// The download name of image `index` of `recipe`.
function fileName(recipe, index = 0) {
  const cls = state.model?.name === recipe.model && recipe.classes.length === 1 ? (state.cls?.label ?? '') : '';
  const tag = cls.replace(/^\d+ · /, '').split(',')[0].trim().replace(/[^\w-]+/g, '-');
  const several = recipe.classes.length > 1 ? `-i${index}` : '';
  return `bitdance-${recipe.config}-c${recipe.classes[index]}${tag ? `-${tag}` : ''}-s${recipe.seed}${several}.png`;
}

function offerDownload(png, recipe, index = 0) {
  const link = $('download');
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([png], { type: 'image/png' }));
  link.download = fileName(recipe, index);
  link.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Gallery

function tile(item) {
  const url = URL.createObjectURL(new Blob([item.png], { type: 'image/png' }));
  const r = item.recipe;
  const index = item.index ?? 0;
  const of = r.classes.length > 1 ? `image ${index + 1} of ${r.classes.length} · ` : '';
  const download = el('a', { class: 'button', href: url, download: fileName(r, index), title: 'Download the PNG (its recipe inside)' }, 'Save');
  return el('div', { class: 'tile', 'data-name': item.name },
    el('img', { src: url, alt: `class ${r.classes[index]}, seed ${r.seed}` }),
    el('div', { class: 'meta' },
      el('strong', {}, `class ${r.classes[index]} · seed ${r.seed}`),
      `${of}${r.model === 'default' ? 'default' : r.config} · cfg ${r.cfg} · ${r.head_steps} steps`),
    el('div', { class: 'tile-actions' },
      download,
      el('button', { title: 'Restore this recipe', onclick: () => showRecipe(item.name, r) }, 'Recipe'),
      el('button', { title: 'Delete', onclick: () => removeImage(item.name) }, '✕')),
  );
}

function renderGallery() {
  $('gallery').replaceChildren(...state.gallery.map(tile));
  $('gallery-count').textContent = state.gallery.length ? `${state.gallery.length} image${state.gallery.length > 1 ? 's' : ''}, kept in this browser` : '';
}

function addToGallery(item) {
  state.gallery.unshift(item);
  renderGallery();
}

async function removeImage(name) {
  await engine.request('deleteImage', { name });
  state.gallery = state.gallery.filter((i) => i.name !== name);
  renderGallery();
}

$('clear-gallery').onclick = async () => {
  await engine.request('clearGallery');
  state.gallery = [];
  renderGallery();
};

// ---------------------------------------------------------------------------------------------
// Recipes: a dropped PNG restores its settings; Reproduce re-runs it and compares token hashes.

function showRecipe(source, recipe) {
  state.recipe = { source, recipe };
  $('recipe-source').textContent = source;
  $('recipe-text').textContent = `model ${recipe.model} (${recipe.config}, SHA-256 ${recipe.model_sha256.slice(0, 12)}…) · class ${recipe.classes.join(', ')}${recipe.classes.length > 1 ? ` (${recipe.classes.length} images, ${recipe.batch} at a time)` : ''} · seed ${recipe.seed} · cfg ${recipe.cfg} (${recipe.schedule}) · ${recipe.head_steps} head steps · ${recipe.precision} · made on ${recipe.adapter} · tokens ${recipe.token_hash.slice(0, 12)}…`;
  const result = $('recipe-result');
  result.textContent = '';
  delete result.dataset.match;
  $('recipe-box').hidden = false;
  $('cfg').value = recipe.cfg;
  $('cfg-value').textContent = Number(recipe.cfg).toFixed(2);
  $('steps').value = recipe.head_steps;
  $('schedule').value = recipe.schedule;
  $('seed').value = recipe.seed;
  $('seed-lock').checked = true;
  $('count').value = 1;
}

$('recipe-close').onclick = () => {
  $('recipe-box').hidden = true;
  state.recipe = null;
};

// Loads the recipe's model if another one is loaded.
async function modelFor(recipe) {
  if (state.model?.sha256 === recipe.model_sha256) return;
  if (recipe.model === 'default') {
    showModel(await engine.request('openDefault'));
    if (state.model.sha256 === recipe.model_sha256) return;
  }
  const cached = (await engine.request('models')).find((m) => m.sha256 === recipe.model_sha256);
  if (!cached) throw new Error(`this recipe needs the model ${recipe.model} (SHA-256 ${recipe.model_sha256.slice(0, 12)}…): open it in Models first`);
  showModel(await engine.request('openCached', { sha256: cached.sha256 }));
}

$('reproduce').onclick = async () => {
  const { recipe } = state.recipe ?? {};
  if (!recipe) return;
  const result = $('recipe-result');
  try {
    await modelFor(recipe);
    const [hit] = await engine.request('search', { query: String(recipe.classes[0]), limit: 1 });
    setClass(hit);
    showRecipe(state.recipe.source, recipe);
    const several = recipe.classes.length > 1 ? ` (its ${recipe.classes.length} images, ${recipe.batch} at a time)` : '';
    result.textContent = `Running${several}…`;
    // The whole recipe, as it was sampled: every image and pass draw from one generator.
    const out = await run({ cls: recipe.classes[0], classes: recipe.classes, batch: recipe.batch, cfg: recipe.cfg, steps: recipe.head_steps, schedule: recipe.schedule, seed: recipe.seed, count: 1 });
    if (!out) {
      result.textContent = 'Stopped.';
      return;
    }
    const match = out.recipe.token_hash === recipe.token_hash;
    result.dataset.match = String(match);
    result.className = match ? 'ok' : 'bad';
    result.textContent = match
      ? 'Reproduced: the same tokens, bit for bit'
      : `Different tokens (this adapter: ${out.recipe.adapter}; the recipe's: ${recipe.adapter})`;
  } catch (e) {
    result.className = 'bad';
    result.textContent = message(e);
  }
};

async function openRecipePng(file) {
  try {
    const recipe = await engine.request('readRecipe', { name: file.name, bytes: await file.arrayBuffer() });
    showTab('create');
    showRecipe(file.name, recipe);
  } catch (e) {
    notice(message(e), 'error');
  }
}

// ---------------------------------------------------------------------------------------------
// Models

function showOpenProgress(e) {
  const box = $('open-progress');
  box.hidden = false;
  const verb = { hash: 'Checking', verify: 'Verifying', copy: 'Saving', load: 'Loading' }[e.phase] ?? e.phase;
  $('open-label').textContent = `${verb} ${e.label}: ${bytes(e.done)} of ${bytes(e.total)}`;
  $('open-bar').style.width = `${(100 * e.done) / Math.max(1, e.total)}%`;
  if (state.model && !state.running) $('gen-status').textContent = $('open-label').textContent;
}

async function openModel(op, args = {}) {
  document.body.dataset.state = 'loading';
  $('generate').disabled = true;
  try {
    const card = await engine.request(op, args);
    showModel(card);
    notice('');
    await refreshModels();
    return card;
  } catch (e) {
    notice(message(e), 'error');
    $('gen-status').textContent = message(e);
    // The engine fell back to the default model when this one could not load.
    const card = await engine.request('model').catch(() => null);
    if (card) showModel(card);
    return null;
  } finally {
    $('open-progress').hidden = true;
    document.body.dataset.state = 'ready';
    setClass(state.cls);
  }
}

async function openFiles(files) {
  const list = [...files];
  const pngs = list.filter((f) => f.name.toLowerCase().endsWith('.png'));
  const models = list.filter((f) => f.name.toLowerCase().endsWith('.safetensors'));
  if (pngs.length) return openRecipePng(pngs[0]);
  if (!models.length) return notice(`${list.map((f) => f.name).join(', ')}: not a .safetensors model or a BitDance PNG`, 'error');
  showTab('models');
  await openModel('openFiles', { files: models });
}

$('precision').addEventListener('change', () => openModel('setPrecision', { precision: $('precision').value }));

$('model-file').addEventListener('change', async (ev) => {
  await openFiles(ev.target.files);
  ev.target.value = '';
});

async function refreshModels() {
  const models = await engine.request('models');
  const current = state.model?.sha256;
  const row = (name, card, size, sha, actions) => el('tr', { class: sha === current ? 'current' : '' },
    el('td', {}, name), el('td', {}, card?.config ?? '—'), el('td', { class: 'num' }, card ? String(card.classes) : '—'),
    el('td', { class: 'num' }, size), el('td', {}, el('code', { title: sha ?? '' }, sha ? `${sha.slice(0, 12)}…` : 'built in')),
    el('td', {}, el('div', { class: 'actions' }, ...actions)));
  const use = (label, fn, disabled) => {
    const b = el('button', { onclick: fn }, label);
    b.disabled = disabled;
    return b;
  };
  const rows = [row('Default model (MNIST digits)', { config: 'tiny', classes: 10 }, '4.9 MB', null,
    [use(state.model?.name === 'default' ? 'In use' : 'Use', () => openModel('openDefault'), state.model?.name === 'default')])];
  for (const m of models) {
    const size = m.size + (m.vae?.size ?? 0);
    rows.push(row(m.vae ? `${m.name} + ${m.vae.name}` : m.name, m.card, bytes(size), m.sha256, [
      use(m.sha256 === current ? 'In use' : 'Use', () => { showTab('create'); openModel('openCached', { sha256: m.sha256 }); }, m.sha256 === current),
      use('Delete', async () => {
        await engine.request('deleteModel', { sha256: m.sha256 });
        if (m.sha256 === current) await openModel('openDefault');
        refreshModels();
      }),
    ]));
  }
  $('model-table').tBodies[0].replaceChildren(...rows);
}

// Drag and drop anywhere on the page.
window.addEventListener('dragover', (ev) => {
  ev.preventDefault();
  document.body.classList.add('dragging');
});
window.addEventListener('dragleave', (ev) => {
  if (!ev.relatedTarget) document.body.classList.remove('dragging');
});
window.addEventListener('drop', (ev) => {
  ev.preventDefault();
  document.body.classList.remove('dragging');
  if (ev.dataTransfer?.files?.length) openFiles(ev.dataTransfer.files);
});

// ---------------------------------------------------------------------------------------------
// Fine-tuning

// The chosen images and their paths in the folder ("class/file.png").
const training = { files: null, paths: null, folders: null, log: [], running: false, steps: 0 };
probe.train = training;

// Whether the frozen base is held in 16 bits (a LoRA or class-rows run that asks for it).
const halfBase = () => $('train-what').value !== 'Full' && $('train-half').checked;

function trainOptions() {
  const num = (id) => Number($(id).value);
  const o = {
    steps: Math.round(num('train-steps')), batch: Math.round(num('train-batch')), lr: num('train-lr'),
    warmup: Math.round(num('train-warmup')), ema: num('train-ema'), seed: Math.round(num('train-seed')),
    flips: $('train-flip').checked, trains: $('train-what').value, checkpointing: $('train-recompute').checked,
    half_base: halfBase(),
    checkpointEvery: Math.round(num('train-ckpt')),
    sampleEvery: Math.round(num('train-samples')), sampleSteps: 25, sampleCfg: 3,
  };
  if (!(o.steps >= 1 && o.batch >= 1 && o.checkpointEvery >= 1 && o.sampleEvery >= 0 && o.warmup >= 0 && o.seed >= 0)) {
    throw new Error('steps, batch and checkpoint interval must be at least 1; warmup, samples and seed at least 0');
  }
  if (!(o.lr > 0 && o.lr < 1)) throw new Error('the learning rate must be between 0 and 1');
  if (!(o.ema >= 0 && o.ema < 1)) throw new Error('the EMA decay must be in [0, 1)');
  return o;
}

function classFolders(files, paths) {
  const classes = new Map();
  for (const [i, f] of files.entries()) {
    const parts = paths[i].split('/');
    if (parts.length < 2 || !/\.(png|jpe?g)$/i.test(f.name)) continue;
    const cls = parts[parts.length - 2];
    classes.set(cls, (classes.get(cls) ?? 0) + 1);
  }
  return classes;
}

async function chooseDataset(files, paths) {
  const classes = classFolders(files, paths);
  const count = [...classes.values()].reduce((a, b) => a + b, 0);
  training.files = count ? files : null;
  training.paths = count ? paths : null;
  training.folders = count ? classes.size : null;
  $('train-data').textContent = count
    ? `${count} images in ${classes.size} classes: ${[...classes.keys()].sort().join(", ")}`
    : 'No PNG or JPEG images in class sub-folders: choose another folder';
  $('train-start').disabled = !count || training.running;
  await estimate();
}

$('train-folder').addEventListener('change', (ev) => {
  const files = [...ev.target.files];
  chooseDataset(files, files.map((f) => f.webkitRelativePath));
});

// The sample web-build.sh bundles: datasets/fashion-mnist/<class>/<n>.png and their list.
$('train-sample').onclick = async () => {
  try {
    const base = 'datasets/fashion-mnist/';
    const { files } = await (await fetch(`${base}manifest.json`)).json();
    const blobs = await Promise.all(files.map(async (p) => new File([await (await fetch(base + p)).blob()], p.split('/').pop())));
    await chooseDataset(blobs, files);
  } catch (e) {
    $('train-data').textContent = `The bundled sample is missing (${message(e)}): build the page with scripts/web-build.sh`;
  }
};
$('train-batch').addEventListener('change', estimate);
$('train-steps').addEventListener('change', estimate);
$('train-what').addEventListener('change', () => {
  $('train-half-row').hidden = $('train-what').value === 'Full';
  estimate();
});
$('train-recompute').addEventListener('change', estimate);
$('train-half').addEventListener('change', estimate);

async function estimate() {
  try {
    const batch = Math.max(1, Math.round(Number($('train-batch').value)));
    const checkpointing = $('train-recompute').checked;
    const m = await engine.request('finetuneEstimate', { batch, trains: $('train-what').value, checkpointing, halfBase: halfBase(), folders: training.folders });
    const limit = state.adapter?.limits?.max_buffer_size;
    const steps = Math.max(1, Math.round(Number($('train-steps').value)));
    const time = m.step_s == null ? 'Step time shows after the first steps.'
      : `Steps take about ${stepTime(m.step_s)} here, ${formatTime(m.step_s * steps)} for ${plural(steps, 'step')} (from the model's work and a matmul probe of this GPU: ${m.probe_gflops.toFixed(1)} GFLOP/s).`;
    $('train-estimate').textContent = `Needs about ${bytes(m.bytes)} of GPU memory (${params_(m.parameters)} parameters, batch ${batch})${limit ? `; this adapter's largest buffer is ${bytes(limit)}` : ''}. ${time}`;
    $('train-estimate').title = m.plan;
  } catch (e) {
    $('train-estimate').textContent = message(e);
  }
}

function onTrainStep(e) {
  training.log.push({ step: e.step, loss: e.loss });
  $('train-bar').style.width = `${(100 * e.step) / e.steps}%`;
  const left = e.rate > 0 ? (e.steps - e.step) / e.rate : NaN;
  $('train-status').textContent = `Step ${e.step} of ${e.steps} · loss ${e.loss.toFixed(4)} · lr ${e.lr.toExponential(1)}`;
  $('train-rate').textContent = Number.isFinite(left) ? `${e.rate.toFixed(2)} steps/s · ${formatTime(left)} left` : '';
  drawLoss();
}

// One step's time: hundredths of a second under 10 s.
function stepTime(s) {
  return s < 10 ? `${s.toFixed(2)} s` : formatTime(s);
}

function formatTime(s) {
  return s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`;
}

// The loss per step, and its running mean over 10 steps.
function drawLoss() {
  const c = $('train-loss');
  const ctx = c.getContext('2d');
  const w = c.width;
  const h = c.height;
  ctx.clearRect(0, 0, w, h);
  const log = training.log;
  if (log.length < 2) return;
  const losses = log.map((p) => p.loss);
  const lo = Math.min(...losses);
  const hi = Math.max(...losses);
  const x = (i) => 40 + ((w - 50) * i) / Math.max(1, log.length - 1);
  const y = (v) => h - 20 - ((h - 30) * (v - lo)) / Math.max(1e-9, hi - lo);
  ctx.fillStyle = '#9aa3b2';
  ctx.font = '11px system-ui';
  ctx.fillText(hi.toFixed(3), 2, 14);
  ctx.fillText(lo.toFixed(3), 2, h - 22);
  ctx.fillText(`step ${log.at(-1).step}`, w - 70, h - 4);
  const line = (values, color, width) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.stroke();
  };
  line(losses, '#3b4252', 1);
  const mean = losses.map((_, i) => {
    const part = losses.slice(Math.max(0, i - 9), i + 1);
    return part.reduce((a, b) => a + b, 0) / part.length;
  });
  line(mean, '#7c9cff', 2);
}

function drawGrid(e) {
  paint($('train-grid'), e.rgba, e.width);
  $('train-samples-step').textContent = `after step ${e.step}`;
}

function setTraining(running) {
  training.running = running;
  $('train-start').disabled = running || !training.files;
  $('train-pause').disabled = !running;
  $('train-folder').disabled = running;
  document.body.dataset.training = running ? 'running' : 'idle';
}

async function train(op, args) {
  setTraining(true);
  $('train-done').hidden = true;
  $('train-resume').hidden = true;
  try {
    const result = await engine.request(op, args);
    training.log = result.log.map((p) => ({ step: p.step, loss: p.loss }));
    drawLoss();
    if (result.paused) {
      $('train-status').textContent = `Paused at step ${result.step}: the checkpoint is kept, Resume continues exactly.`;
      $('train-resume').hidden = false;
    } else {
      $('train-status').textContent = `Done: ${result.model.name} is in your models.`;
      showTrained(result.model);
    }
    document.body.dataset.trainResult = result.paused ? 'paused' : 'finished';
  } catch (e) {
    $('train-status').textContent = `Error: ${message(e)}`;
    document.body.dataset.trainResult = 'error';
  } finally {
    setTraining(false);
    refreshTraining();
  }
}

function showTrained(model) {
  $('train-done').hidden = false;
  $('train-use').onclick = () => {
    showTab('create');
    openModel('openCached', { sha256: model.sha256 });
  };
  $('train-download').onclick = async (ev) => {
    ev.preventDefault();
    const file = await engine.request('modelFile', { sha256: model.sha256 });
    const a = el('a', { href: URL.createObjectURL(file), download: 'model.safetensors' });
    a.click();
  };
}

$('train-start').onclick = () => {
  let options;
  try {
    options = trainOptions();
  } catch (e) {
    $('train-status').textContent = message(e);
    return;
  }
  training.log = [];
  train('finetuneStart', { files: training.files, paths: training.paths, options });
};
$('train-pause').onclick = () => {
  engine.request('finetunePause');
  $('train-status').textContent = 'Pausing after this step…';
};
$('train-resume').onclick = () => train('finetuneResume', {});

// Shows a run kept from an earlier visit (Resume) and the starting model.
async function refreshTraining() {
  $('train-base').textContent = state.model ? (state.model.name === 'default' ? 'Default model (MNIST digits)' : state.model.name) : '—';
  if (training.running) return;
  const run = await engine.request('finetuneState');
  if (!run) return;
  training.log = run.log.map((p) => ({ step: p.step, loss: p.loss }));
  drawLoss();
  if (run.finished) {
    $('train-status').textContent = `Last run: ${plural(run.options.steps, 'step')} on ${plural(run.images, 'image')}; ${run.model.name} is in your models.`;
    showTrained(run.model);
  } else if (run.checkpoint) {
    $('train-status').textContent = `A run on ${plural(run.images, 'image')} stopped at step ${run.step} of ${run.options.steps}.`;
    $('train-resume').hidden = false;
  }
}

// ---------------------------------------------------------------------------------------------
// GPU panel and kernel checks

function showAdapter(a) {
  const name = a.name || a.browser_name || 'WebGPU adapter';
  const backend = a.backend === 'BrowserWebGpu' ? 'WebGPU' : a.backend;
  $('adapter-chip').textContent = `${name} · ${backend}`;
  const items = [
    ['Name', a.name || a.browser_name || 'not disclosed by the browser'], ['Backend', a.backend], ['Type', a.device_type],
    ['Driver', a.driver || '—'],
    ['Max storage binding', bytes(a.limits.max_storage_buffer_binding_size)],
    ['Max buffer', bytes(a.limits.max_buffer_size)],
    ['Max invocations / workgroup', a.limits.max_compute_invocations_per_workgroup],
    ['Features', a.features.join(', ') || 'none'],
  ];
  $('adapter').replaceChildren(...items.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
}

async function refreshMemory() {
  try {
    const m = await engine.request('memory');
    $('memory').textContent = `GPU memory held now ${bytes(m.held)}, at peak ${bytes(m.peak)}; largest binding ${bytes(m.largest_binding)}; engine heap ${bytes(m.wasm_heap)}.`;
  } catch {
    // the engine is busy starting
  }
}

function cell(text, cls) {
  return el('td', cls ? { class: cls } : {}, text);
}

function showRow(r) {
  const err = r.rel_error !== null ? r.rel_error.toExponential(2) : r.error || r.skipped ? '—' : 'NaN';
  const tol = r.tolerance === null ? '' : r.tolerance.toExponential(0);
  const status = r.skipped ? `skipped: ${r.skipped}` : r.passed ? 'ok' : `FAIL${r.error ? `: ${r.error}` : ''}`;
  const tr = el('tr', {}, cell(r.family), cell(r.op), cell(r.shapes), cell(err, 'num'), cell(tol, 'num'),
    cell(status, r.skipped ? 'skip' : r.passed ? 'ok' : 'fail'));
  $('conformance').tBodies[0].append(tr);
}

// Marks the checks' end for the tests: <div id="done" data-passed data-failed data-skipped>.
function finishChecks(passed, failed, skipped, error) {
  document.getElementById('done')?.remove();
  const done = el('div', { id: 'done', hidden: '' });
  Object.assign(done.dataset, { passed, failed, skipped });
  if (error) done.dataset.error = error;
  document.body.append(done);
}

$('run-checks').onclick = async () => {
  $('run-checks').disabled = true;
  $('conformance').tBodies[0].replaceChildren();
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  try {
    for (const family of state.families) {
      $('summary').textContent = `Running ${family}…`;
      const result = await engine.request('conformance', { family });
      result.rows.forEach(showRow);
      passed += result.passed;
      failed += result.failed;
      skipped += result.skipped;
    }
    $('summary').textContent = `${passed} passed, ${failed} failed, ${skipped} skipped.`;
    $('summary').className = failed ? 'fail' : 'ok';
    finishChecks(passed, failed, skipped);
  } catch (e) {
    $('summary').textContent = `Error: ${message(e)}`;
    finishChecks(passed, failed, skipped, message(e));
  } finally {
    $('run-checks').disabled = false;
  }
};

// ---------------------------------------------------------------------------------------------
// Start, and recovery after a crash of the engine

async function start() {
  document.body.dataset.state = 'loading';
  const maxBindingKib = Number(params.get('max_binding_kib')) || undefined;
  const boot = await engine.request('init', { maxBindingKib });
  state.adapter = boot.adapter;
  state.families = boot.families;
  showAdapter(boot.adapter);
  if (boot.model) showModel(boot.model);
  else $('model-name').textContent = 'No model loaded';
  if (boot.notice) notice(boot.notice, 'error');
  state.gallery = await engine.request('gallery');
  renderGallery();
  await refreshTraining();
  if (!$('seed').value) $('seed').value = randomSeed();
  document.body.dataset.state = 'ready';
  const url = params.get('model');
  if (url) await openFromUrls(url, params.get('vae'));
}

// Fetches a model (and its autoencoder) from URLs given in the query string, then opens them.
async function openFromUrls(modelUrl, vaeUrl) {
  try {
    const fetchFile = async (u) => {
      const r = await fetch(u);
      if (!r.ok) throw new Error(`${u}: HTTP ${r.status}`);
      return new File([await r.blob()], decodeURIComponent(new URL(u, location.href).pathname.split('/').pop()));
    };
    const files = [await fetchFile(modelUrl)];
    if (vaeUrl) files.push(await fetchFile(vaeUrl));
    await openModel('openFiles', { files });
  } catch (e) {
    notice(message(e), 'error');
  }
}

let restarts = 0;
async function recover(reason) {
  notice(`The engine stopped (${reason}). Restarting it…`, 'error');
  setRunning(false);
  if (++restarts > 3) return notice(`The engine keeps failing (${reason}); reload the page.`, 'error');
  engine.restart();
  try {
    await start();
    notice(`The engine stopped (${reason}); it was restarted and ${state.model?.name === 'default' ? 'the default model' : state.model?.name} reloaded. Your images and models are kept.`);
  } catch (e) {
    notice(`The engine could not restart: ${message(e)}`, 'error');
  }
}

if (!navigator.gpu) {
  document.querySelector('main').hidden = true;
  document.querySelector('nav').hidden = true;
  $('adapter-chip').textContent = 'No WebGPU';
  $('no-webgpu').hidden = false;
  document.body.dataset.state = 'no-webgpu';
} else {
  start().catch((e) => {
    const text = message(e);
    if (/adapter|WebGPU|GPU device/i.test(text)) {
      $('no-webgpu-detail').textContent = text;
      $('no-webgpu').hidden = false;
      document.querySelector('main').hidden = true;
    }
    notice(`Could not start: ${text}`, 'error');
    $('gen-status').textContent = text;
    document.body.dataset.state = 'error';
    finishChecks(0, 0, 0, text);
  });
}
