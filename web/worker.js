// The engine's Web Worker: every GPU call, model load, hash and file write happens here, so the
// page's main thread only draws. Requests arrive as {id, op, ...}; each gets one reply
// {id, ok, result | error}. Long jobs also post events {event, ...} (progress, steps, previews).
// Requests interleave at every await, so Stop and class searches are answered mid-generation.
import init, * as engine from './pkg/bitdance_web.js';
import * as store from './store.js';

let stopRequested = false;
let pauseRequested = false;
let busy = null; // the long job running now ("generate", "open"), one at a time

const post = (message, transfer = []) => self.postMessage(message, transfer);
const event = (name, fields = {}, transfer = []) => post({ event: name, ...fields }, transfer);

// Throttled byte progress for a phase ("hash", "copy", "load") of the job `job`.
function progress(job, phase, label) {
  let last = 0;
  return (done, total) => {
    const now = performance.now();
    if (done < total && now - last < 100) return;
    last = now;
    event('progress', { job, phase, label, done, total });
  };
}

async function currentModel() {
  return JSON.parse(engine.model_card());
}

// Opens files picked or dropped on the page: finds the model and its optional autoencoder,
// hashes them, copies them into the Origin Private File System, then loads from the copies.
async function openFiles(files) {
  const roles = await Promise.all(files.map((f) => engine.file_role(f.name, f)));
  const model = files[roles.indexOf('model')];
  const vae = files[roles.indexOf('autoencoder')];
  if (!model) throw new Error(`no model among ${files.map((f) => f.name).join(', ')}: only an autoencoder`);
  if (files.length > 2 || roles.filter((r) => r === 'model').length > 1) {
    throw new Error('open one model, optionally with its autoencoder file');
  }
  const sha = await engine.hash_blob(model, progress('open', 'hash', model.name));
  const vaeSha = vae ? await engine.hash_blob(vae, progress('open', 'hash', vae.name)) : undefined;
  const stored = await store.saveModel(
    { name: model.name, sha256: sha, blob: model },
    vae && { name: vae.name, sha256: vaeSha, blob: vae },
    progress('open', 'copy', model.name),
  );
  return loadStored(stored, false);
}

// Loads a cached model; `verify` re-hashes its files first and removes an entry that differs.
async function loadStored(entry, verify) {
  const files = await store.modelFiles(entry);
  if (verify) {
    for (const [file, sha, name] of [[files.model, entry.sha256, entry.name], [files.vae, entry.vae?.sha256, entry.vae?.name]]) {
      if (!file) continue;
      const found = await engine.hash_blob(file, progress('open', 'verify', name));
      if (found !== sha) {
        await store.deleteModel(entry.sha256);
        throw new Error(`the cached copy of ${name} is damaged (SHA-256 ${found.slice(0, 12)}… instead of ${sha.slice(0, 12)}…); it was removed: open the file again`);
      }
    }
  }
  const card = JSON.parse(await engine.open_model(
    entry.name, files.model, entry.sha256, files.vae, entry.vae?.sha256, progress('open', 'load', entry.name),
  ));
  await store.saveCard(entry.sha256, card);
  await store.setLastModel(entry.sha256);
  return card;
}

// A recipe's images (`classes`, `batch` sampled together per pass; one image by default), a
// step at a time: a step event after each AR step, a preview of the pass when the engine's
// pacer says one is due (once the steps since the last cost a decode, so previews take at most
// about half the time), the finished images with their PNGs and recipe at the end, each kept in
// the gallery; null when stopped.
async function generate({ cls, classes = [cls], batch = 1, cfg, steps, schedule, seed }) {
  stopRequested = false;
  const t0 = performance.now();
  const total = engine.start_generation(Uint32Array.from(classes), batch, steps, cfg, schedule, BigInt(seed));
  event('step', { done: 0, total, elapsed: 0 });
  for (let done = 0; done < total; ) {
    const [taken, previewDue] = await engine.generation_step();
    done = taken;
    if (stopRequested) {
      engine.stop_generation();
      return null;
    }
    event('step', { done, total, elapsed: performance.now() - t0 });
    if (previewDue) {
      const { rgba, width } = await engine.generation_preview();
      event('preview', { done, total, rgba, width }, [rgba.buffer]);
      if (stopRequested) {
        engine.stop_generation();
        return null;
      }
    }
  }
  const out = await engine.generation_finish();
  const images = [];
  const at = Date.now();
  for (const image of out.images) {
    const recipe = JSON.parse(image.recipe);
    const item = await store.saveImage(image.png, recipe, image.index, at);
    images.push({ index: image.index, rgba: image.rgba, png: image.png, recipe, item });
  }
  const seconds = (performance.now() - t0) / 1000;
  return { ...images[0], images, grid: out.grid, seconds };
}

// ---------------------------------------------------------------------------------------------
// Fine-tuning: the same trainer as `bitdance finetune`. The dataset is copied into OPFS and a
// checkpoint written every `checkpointEvery` steps, so a reload resumes exactly.

const IMAGE = /\.(png|jpe?g)$/i;

// Images grouped by their class folder (the parent of each file in the picked folder);
// `paths` are the files' paths in the folder (a File's own path does not survive postMessage).
function datasetOf(files, paths) {
  const images = [];
  for (const [i, f] of files.entries()) {
    const parts = (paths[i] || f.name).split('/');
    if (parts.length < 2 || !IMAGE.test(f.name)) continue;
    images.push({ cls: parts[parts.length - 2], name: f.name, blob: f });
  }
  if (!images.length) throw new Error('no images in class folders: pick a folder whose sub-folders (one per class) hold PNG or JPEG files');
  return images;
}

async function baseOf(card) {
  if (card.name === 'default') return { blob: undefined, vae: undefined, name: '', sha256: card.sha256 };
  const entry = (await store.listModels()).find((m) => m.sha256 === card.sha256);
  if (!entry) throw new Error(`${card.name} is not in the cache`);
  const files = await store.modelFiles(entry);
  return { blob: files.model, vae: files.vae, name: card.name, sha256: card.sha256 };
}

async function loadDataset(resolution) {
  const files = await store.datasetFiles();
  engine.finetune_new_dataset(resolution);
  let n = 0;
  for (const { cls, name, file } of files) {
    engine.finetune_add_image(cls, name, new Uint8Array(await file.arrayBuffer()));
    if (++n % 50 === 0) event('trainPhase', { text: `Reading images: ${n} of ${files.length}` });
  }
  return files.length;
}

const encodeProgress = (done, total) => event('trainPhase', { text: `Encoding the images with the tokenizer: ${done} of ${total}` });

// Steps until the run ends or Pause; a checkpoint at every `checkpointEvery` steps and at a
// pause, sample grids every `sampleEvery`; at the end the model goes to the cache.
async function trainLoop(state) {
  const o = state.options;
  pauseRequested = false;
  let t0 = performance.now();
  let s0 = state.step;
  while (state.step < o.steps) {
    const s = JSON.parse(await engine.finetune_step());
    state.step = s.step;
    state.log.push({ step: s.step, loss: s.loss, lr: s.lr });
    const rate = (state.step - s0) / ((performance.now() - t0) / 1000);
    event('trainStep', { ...s, steps: o.steps, rate });
    const last = state.step === o.steps;
    if (state.step % o.checkpointEvery === 0 || last || pauseRequested) {
      await store.saveCheckpoint((write) => engine.finetune_checkpoint(write), state);
    }
    if (o.sampleEvery && (state.step % o.sampleEvery === 0 || last)) {
      const [rgba, width] = await engine.finetune_samples(o.sampleSteps, o.sampleCfg);
      event('trainSamples', { rgba, width, step: state.step }, [rgba.buffer]);
      // Samples take a while; the rate counts training steps only.
      t0 = performance.now();
      s0 = state.step;
    }
    if (pauseRequested && !last) return { paused: true, step: state.step, log: state.log };
  }
  event('trainPhase', { text: 'Saving the model…' });
  const name = `finetuned-${state.base.name ? state.base.name.replace(/\.safetensors$/, '') : 'default'}-${o.steps}steps.safetensors`;
  const entry = await store.saveMadeModel(name, (write) => engine.finetune_export(write), (file) => engine.hash_blob(file, () => {}));
  engine.finetune_stop();
  const sha = entry.sha256;
  state.finished = true;
  state.model = { name, sha256: sha };
  await store.saveRunState(state);
  return { finished: true, model: entry, log: state.log };
}

// A model that fails to load leaves none loaded: the default model comes back, and the error
// still reaches the page.
async function withFallback(load) {
  try {
    return await load();
  } catch (e) {
    await engine.open_default_model().catch(() => {});
    throw e;
  }
}

const ops = {
  async init({ maxBindingKib }) {
    if (maxBindingKib) engine.set_max_binding_kib(maxBindingKib);
    const adapter = JSON.parse(await engine.adapter_info());
    // Browsers may hide the adapter's name from wgpu; its vendor and architecture stand in.
    const info = (await navigator.gpu.requestAdapter())?.info;
    adapter.browser_name = info ? [info.vendor, info.architecture, info.device].filter(Boolean).join(' ') : '';
    let model;
    let notice;
    const last = await store.lastModel();
    if (last) {
      try {
        model = await loadStored(last, true);
      } catch (e) {
        notice = e.message;
      }
    }
    if (!model) {
      try {
        model = JSON.parse(await engine.open_default_model());
      } catch (e) {
        notice = `The default model cannot load on this adapter: ${e.message}`;
        model = null;
      }
    }
    return { adapter, model, notice, families: engine.conformance_families() };
  },
  async models() {
    return store.listModels();
  },
  async openFiles({ files }) {
    return withFallback(() => openFiles(files));
  },
  async openCached({ sha256 }) {
    const entry = (await store.listModels()).find((m) => m.sha256 === sha256);
    if (!entry) throw new Error(`no cached model with SHA-256 ${sha256}`);
    return withFallback(() => loadStored(entry, true));
  },
  async setPrecision({ precision }) {
    engine.set_precision(precision);
    const card = await currentModel().catch(() => null);
    if (!card || card.name === 'default') return JSON.parse(await engine.open_default_model());
    return withFallback(async () => loadStored((await store.listModels()).find((m) => m.sha256 === card.sha256), false));
  },
  async openDefault() {
    await store.setLastModel(null);
    return JSON.parse(await engine.open_default_model());
  },
  async deleteModel({ sha256 }) {
    await store.deleteModel(sha256);
    return store.listModels();
  },
  async search({ query, limit }) {
    return JSON.parse(engine.search_classes(query, limit));
  },
  async generate(args) {
    return generate(args);
  },
  async stop() {
    stopRequested = true;
    return true;
  },
  async gallery() {
    return store.listImages();
  },
  async deleteImage({ name }) {
    await store.deleteImage(name);
    return true;
  },
  async clearGallery() {
    await store.clearImages();
    return true;
  },
  async readRecipe({ name, bytes }) {
    return JSON.parse(engine.read_recipe(name, new Uint8Array(bytes)));
  },
  async memory() {
    return JSON.parse(await engine.memory_stats());
  },
  async model() {
    return currentModel();
  },
  async finetuneEstimate({ batch, trains, checkpointing, halfBase, folders }) {
    const base = await baseOf(await currentModel());
    return JSON.parse(await engine.finetune_estimate(base.blob, base.name, batch, trains, !!checkpointing, !!halfBase, folders ?? undefined));
  },
  async finetuneState() {
    return store.runState();
  },
  async finetuneStart({ files, paths, options }) {
    const card = await currentModel();
    const images = datasetOf(files, paths);
    await store.clearRun();
    event('trainPhase', { text: `Copying ${images.length} images into the browser's storage…` });
    await store.saveDataset(images);
    const base = await baseOf(card);
    const count = await loadDataset(card.resolution);
    const info = JSON.parse(await engine.finetune_start(base.blob, base.vae, base.name, base.blob ? base.sha256 : undefined, JSON.stringify(options), progress('train', 'load', base.name), encodeProgress));
    const state = { options, base: { name: base.name || 'default', sha256: base.sha256 }, resolution: card.resolution, images: count, classes: info.classes, step: 0, log: [], finished: false };
    await store.saveRunState(state);
    event('trainInfo', { images: count, classes: info.classes, mapping: info.mapping, note: info.note, step: 0, steps: options.steps });
    return trainLoop(state);
  },
  async finetuneResume() {
    const state = await store.runState();
    if (!state || state.finished) throw new Error('no fine-tuning run to resume');
    if (!state.checkpoint) throw new Error('the run stopped before its first checkpoint: start it again');
    const count = await loadDataset(state.resolution);
    const checkpoint = await store.checkpointFile(state);
    const info = JSON.parse(await engine.finetune_resume(checkpoint, JSON.stringify(state.options), progress('train', 'load', 'the checkpoint'), encodeProgress));
    if (info.step !== state.step) throw new Error(`the checkpoint is at step ${info.step}, the run's state at ${state.step}`);
    event('trainInfo', { images: count, classes: info.classes, mapping: info.mapping, note: info.note, step: info.step, steps: state.options.steps });
    return trainLoop(state);
  },
  async modelFile({ sha256 }) {
    const entry = (await store.listModels()).find((m) => m.sha256 === sha256);
    if (!entry) throw new Error(`no cached model with SHA-256 ${sha256}`);
    // The cached File itself: the page downloads it without copying it into memory.
    return (await store.modelFiles(entry)).model;
  },
  async finetunePause() {
    pauseRequested = true;
    return true;
  },
  async finetuneDiscard() {
    engine.finetune_stop();
    await store.clearRun();
    return true;
  },
  async loseDevice() {
    await engine.lose_device();
    return true;
  },
  async conformance({ family }) {
    return JSON.parse(await engine.run_conformance(family));
  },
};

// Jobs that use the GPU for long run one at a time; the rest answer at once.
const exclusive = new Set(['generate', 'openFiles', 'openCached', 'openDefault', 'setPrecision', 'conformance', 'finetuneStart', 'finetuneResume']);

const ready = init();
self.onmessage = async ({ data }) => {
  const { id, op, ...args } = data;
  try {
    await ready;
    if (!ops[op]) throw new Error(`unknown request '${op}'`);
    if (exclusive.has(op)) {
      if (busy) throw new Error(`busy: ${busy} is running`);
      busy = op;
    }
    try {
      const result = await ops[op](args);
      const transfer = result?.rgba ? [result.rgba.buffer] : [];
      post({ id, ok: true, result }, transfer);
    } finally {
      if (exclusive.has(op)) busy = null;
    }
  } catch (e) {
    post({ id, ok: false, error: e instanceof Error ? e.message : String(e) });
    // A Rust panic aborts as a RuntimeError; the module's state cannot be trusted after it. A
    // lost device cannot be used again. Either way the page starts a fresh worker, which
    // reopens the GPU and reloads the model from the cache.
    if (e instanceof WebAssembly.RuntimeError) event('fatal', { message: `engine panic: ${e.message}` });
    else if (/GPU device was lost/.test(e?.message)) event('fatal', { message: 'the GPU device was lost' });
  }
};
self.onerror = (e) => event('fatal', { message: e.message || String(e) });
self.onunhandledrejection = (e) => event('fatal', { message: e.reason?.message || String(e.reason) });
