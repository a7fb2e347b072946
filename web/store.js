// What the studio keeps in the Origin Private File System (used from the worker only):
//   models/<sha256>.safetensors   a model or autoencoder file, named by its SHA-256
//   models/<sha256>.json          the entry of an opened model (name, sizes, its autoencoder,
//                                 its card); written last, so a half-copied model has none
//   gallery/<stamp>.png + .json   the images made, with their recipes
//   state.json                    the model last used, loaded again on the next visit
// Files are written under a temporary name and then renamed, so a reload mid-write leaves
// either the old file or the new one, never half of it.

async function root() {
  return navigator.storage.getDirectory();
}

async function dir(name) {
  return (await root()).getDirectoryHandle(name, { create: true });
}

async function fileOf(parent, name) {
  try {
    return await (await parent.getFileHandle(name)).getFile();
  } catch {
    return null;
  }
}

async function remove(parent, name) {
  try {
    await parent.removeEntry(name);
  } catch {
    // already gone
  }
}

// Writes `parent/name` through `name.part` from `fill(write)`, which hands each piece of the
// file to write(bytes) in order. A failure (or a reload) leaves the previous file as it was.
async function writeStreamed(parent, name, fill) {
  const tmp = `${name}.part`;
  const handle = await parent.getFileHandle(tmp, { create: true });
  const access = await handle.createSyncAccessHandle();
  let written = false;
  try {
    access.truncate(0);
    let at = 0;
    await fill((bytes) => {
      const n = access.write(bytes, { at });
      if (n !== bytes.length) throw new Error(`the browser's storage took ${n} of ${bytes.length} bytes (is it full?)`);
      at += n;
    });
    access.flush();
    written = true;
  } finally {
    access.close();
    if (!written) await remove(parent, tmp);
  }
  await remove(parent, name);
  await handle.move(name);
}

// Writes `blob` (or bytes) to `parent/name` through `name.part`, reporting bytes written.
async function writeFile(parent, name, data, onProgress = () => {}) {
  const blob = data instanceof Blob ? data : new Blob([data]);
  await writeStreamed(parent, name, async (write) => {
    const reader = blob.stream().getReader();
    let at = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      write(value);
      at += value.length;
      onProgress(at, blob.size);
    }
  });
}

async function readJson(parent, name) {
  const file = await fileOf(parent, name);
  if (!file) return null;
  try {
    return JSON.parse(await file.text());
  } catch {
    return null;
  }
}

const writeJson = (parent, name, value) => writeFile(parent, name, JSON.stringify(value));

// Copies a model (and its optional autoencoder), each {name, sha256, blob}, into the cache,
// replacing any copy under that SHA-256 (which could have been damaged since: the copy is
// loaded next without being hashed again). Returns the entry.
export async function saveModel(model, vae, onProgress) {
  const models = await dir('models');
  const parts = [model, vae].filter(Boolean);
  const total = parts.reduce((n, p) => n + p.blob.size, 0);
  let before = 0;
  for (const part of parts) {
    const name = `${part.sha256}.safetensors`;
    await writeFile(models, name, part.blob, (done) => onProgress(before + done, total));
    before += part.blob.size;
    onProgress(before, total);
  }
  const old = await readJson(models, `${model.sha256}.json`);
  const entry = {
    name: model.name,
    sha256: model.sha256,
    size: model.blob.size,
    vae: vae ? { name: vae.name, sha256: vae.sha256, size: vae.blob.size } : null,
    added: old?.added ?? Date.now(),
    card: old?.card ?? null,
  };
  await writeJson(models, `${model.sha256}.json`, entry);
  return entry;
}

// Keeps a model made in the browser (a fine-tune's result), written a piece at a time by
// `fill(write)`: under a temporary name, hashed by `hash(file)`, then named by its SHA-256 with
// an entry called `name`. Returns the entry.
export async function saveMadeModel(name, fill, hash) {
  const models = await dir('models');
  const tmp = 'made-here.safetensors';
  await writeStreamed(models, tmp, fill);
  const file = await fileOf(models, tmp);
  const sha256 = await hash(file);
  await remove(models, `${sha256}.safetensors`);
  await (await models.getFileHandle(tmp)).move(`${sha256}.safetensors`);
  const entry = { name, sha256, size: file.size, vae: null, added: Date.now(), card: null };
  await writeJson(models, `${sha256}.json`, entry);
  return entry;
}

// Records the card (config, classes, ...) a loaded model showed, for the models list.
export async function saveCard(sha256, card) {
  const models = await dir('models');
  const entry = await readJson(models, `${sha256}.json`);
  if (entry) await writeJson(models, `${sha256}.json`, { ...entry, card });
}

// Every cached model whose files are all present, newest first.
export async function listModels() {
  const models = await dir('models');
  const out = [];
  for await (const [name] of models.entries()) {
    if (!name.endsWith('.json')) continue;
    const entry = await readJson(models, name);
    if (!entry) continue;
    const file = await fileOf(models, `${entry.sha256}.safetensors`);
    const vae = entry.vae && (await fileOf(models, `${entry.vae.sha256}.safetensors`));
    if (file && (!entry.vae || vae)) out.push(entry);
  }
  return out.sort((a, b) => b.added - a.added);
}

// The files of a cached model entry: {model, vae} (Files from the cache).
export async function modelFiles(entry) {
  const models = await dir('models');
  const model = await fileOf(models, `${entry.sha256}.safetensors`);
  if (!model) throw new Error(`${entry.name} is no longer in the cache`);
  const vae = entry.vae ? await fileOf(models, `${entry.vae.sha256}.safetensors`) : undefined;
  if (entry.vae && !vae) throw new Error(`the autoencoder of ${entry.name} is no longer in the cache`);
  return { model, vae: vae ?? undefined };
}

// Removes a cached model, and its autoencoder unless another entry uses it.
export async function deleteModel(sha256) {
  const models = await dir('models');
  const entry = await readJson(models, `${sha256}.json`);
  await remove(models, `${sha256}.json`);
  await remove(models, `${sha256}.safetensors`);
  if (entry?.vae) {
    const others = await listModels();
    if (!others.some((m) => m.vae?.sha256 === entry.vae.sha256)) {
      await remove(models, `${entry.vae.sha256}.safetensors`);
    }
  }
  const state = await readJson(await root(), 'state.json');
  if (state?.lastModel === sha256) await setLastModel(null);
}

// The cached model used last (null: the default model).
export async function lastModel() {
  const state = await readJson(await root(), 'state.json');
  if (!state?.lastModel) return null;
  return (await listModels()).find((m) => m.sha256 === state.lastModel) ?? null;
}

export async function setLastModel(sha256) {
  await writeJson(await root(), 'state.json', { lastModel: sha256 });
}

// Keeps a finished image (PNG with its recipe chunk) and its recipe; returns the item.
// Keeps image `index` of a recipe (its class is recipe.classes[index]) made at `at` (ms; the
// images of one run share it); the name carries the index when the recipe holds several.
export async function saveImage(png, recipe, index = 0, at = Date.now()) {
  const gallery = await dir('gallery');
  const several = recipe.classes.length > 1 ? `-i${index}` : '';
  const stamp = `${at.toString().padStart(15, '0')}-c${recipe.classes[index]}-s${recipe.seed}${several}`;
  await writeFile(gallery, `${stamp}.png`, png);
  await writeJson(gallery, `${stamp}.json`, recipe);
  return { name: stamp, png, recipe, index };
}

// The index of a kept image among its recipe's images, from its name.
const indexOf = (name) => Number(/-i(\d+)$/.exec(name)?.[1] ?? 0);

// Every kept image, newest first: {name, png, recipe, index}.
export async function listImages() {
  const gallery = await dir('gallery');
  const names = [];
  for await (const [name] of gallery.entries()) {
    if (name.endsWith('.png')) names.push(name.slice(0, -4));
  }
  // Newest run first, a run's images in their order.
  names.sort((a, b) => b.slice(0, 15).localeCompare(a.slice(0, 15)) || indexOf(a) - indexOf(b));
  const out = [];
  for (const name of names) {
    const file = await fileOf(gallery, `${name}.png`);
    const recipe = await readJson(gallery, `${name}.json`);
    if (file && recipe) out.push({ name, png: new Uint8Array(await file.arrayBuffer()), recipe, index: indexOf(name) });
  }
  return out;
}

export async function deleteImage(name) {
  const gallery = await dir('gallery');
  await remove(gallery, `${name}.png`);
  await remove(gallery, `${name}.json`);
}

export async function clearImages() {
  await (await root()).removeEntry('gallery', { recursive: true }).catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// Fine-tuning runs: finetune/data/<class>/<file> (the images, so a run resumes after a reload),
// finetune/checkpoint-<step>.safetensors (written a tensor at a time, then named in the state),
// finetune/state.json (options, base model, the checkpoint in force, the loss log up to it).

async function runDir() {
  return dir('finetune');
}

// The images of the run's dataset are copied in: {class, name, blob} each.
export async function saveDataset(images, onProgress = () => {}) {
  const root = await runDir();
  await root.removeEntry('data', { recursive: true }).catch(() => {});
  const data = await root.getDirectoryHandle('data', { create: true });
  let done = 0;
  for (const { cls, name, blob } of images) {
    const folder = await data.getDirectoryHandle(cls, { create: true });
    await writeFile(folder, name, blob);
    onProgress(++done, images.length);
  }
}

// The run's images: [{cls, name, file}], classes and files in name order.
export async function datasetFiles() {
  const data = await (await runDir()).getDirectoryHandle('data');
  const out = [];
  const classes = [];
  for await (const [name, handle] of data.entries()) if (handle.kind === 'directory') classes.push(name);
  for (const cls of classes.sort()) {
    const folder = await data.getDirectoryHandle(cls);
    const names = [];
    for await (const [name, handle] of folder.entries()) {
      if (handle.kind === 'file' && !name.endsWith('.part')) names.push(name);
    }
    for (const name of names.sort()) out.push({ cls, name, file: await fileOf(folder, name) });
  }
  return out;
}

export async function runState() {
  return readJson(await runDir(), 'state.json');
}

export async function saveRunState(state) {
  await writeJson(await runDir(), 'state.json', state);
}

// Writes the checkpoint of `step` (`fill(write)` hands over its pieces), then the state naming
// it, then removes the older one: a reload at any point leaves a state whose checkpoint is whole.
export async function saveCheckpoint(fill, state) {
  const root = await runDir();
  const name = `checkpoint-${state.step}.safetensors`;
  const previous = (await runState())?.checkpoint;
  await writeStreamed(root, name, fill);
  await saveRunState({ ...state, checkpoint: name });
  if (previous && previous !== name) await remove(root, previous);
}

export async function checkpointFile(state) {
  return fileOf(await runDir(), state.checkpoint);
}

export async function clearRun() {
  await (await root()).removeEntry('finetune', { recursive: true }).catch(() => {});
}
