// Loads the wasm build (web/pkg, from scripts/web-build.sh), shows the adapter, runs the
// conformance families one by one, then adds <div id="done" data-passed data-failed>.
import init, {
  adapter_info, conformance_families, run_conformance, load_default_model, start_generation,
  generation_step, generation_done, generation_png, stop_generation, recommended_sampling,
} from './pkg/bitdance_web.js';

const $ = (id) => document.getElementById(id);

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

// Chromium hides the adapter's description; its vendor and architecture fill in for the name.
async function browserAdapterName() {
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  const info = adapter?.info;
  return info ? [info.vendor, info.architecture, info.device].filter(Boolean).join(' ') : '';
}

function showAdapter(a, fallbackName) {
  const items = [
    ['Name', a.name || fallbackName || 'not disclosed by the browser'], ['Backend', a.backend], ['Type', a.device_type], ['Driver', a.driver || '—'],
    ['Max storage binding', `${(a.limits.max_storage_buffer_binding_size / 2 ** 20).toFixed(0)} MiB`],
    ['Max invocations / workgroup', a.limits.max_compute_invocations_per_workgroup],
    ['Features', a.features.join(', ') || 'none'],
  ];
  for (const [k, v] of items) {
    const dt = document.createElement('dt');
    const dd = document.createElement('dd');
    dt.textContent = k;
    dd.textContent = v;
    $('adapter').append(dt, dd);
  }
}

function showRow(r) {
  const tr = document.createElement('tr');
  if (!r.passed) tr.className = 'fail';
  const err = r.rel_error !== null ? r.rel_error.toExponential(2) : r.error || r.skipped ? '—' : 'NaN';
  const tol = r.tolerance === null ? '' : r.tolerance.toExponential(0);
  const status = r.skipped ? `skipped: ${r.skipped}` : r.passed ? 'ok' : `FAIL${r.error ? ': ' + r.error : ''}`;
  tr.append(
    cell(r.family), cell(r.op), cell(r.shapes), cell(err, 'num'), cell(tol, 'num'),
    cell(status, r.skipped ? 'skip' : r.passed ? 'ok' : 'fail'),
  );
  $('conformance').tBodies[0].append(tr);
}

function finish(passed, failed, error, skipped = 0) {
  const done = document.createElement('div');
  done.id = 'done';
  done.dataset.passed = passed;
  done.dataset.failed = failed;
  done.dataset.skipped = skipped;
  if (error) done.dataset.error = error;
  done.hidden = true;
  document.body.append(done);
}

// Fills the class picker from the default model and wires the Generate button.
async function setupGenerator() {
  const names = JSON.parse(await load_default_model());
  const select = $('class');
  names.forEach((name, id) => select.add(new Option(name === String(id) ? name : `${id} · ${name}`, id)));
  select.disabled = false;
  $('generate').disabled = false;
  $('gen-status').textContent = '';
  let seed = 0;
  let stopped = false;
  $('stop').onclick = () => {
    stopped = true;
    stop_generation();
  };
  // The image forms step by step: each AR step's tokens so far are decoded and drawn (each
  // step awaits its readback, so the page keeps drawing between steps).
  $('generate').onclick = async () => {
    $('generate').disabled = true;
    $('stop').disabled = false;
    $('download').hidden = true;
    stopped = false;
    const t0 = performance.now();
    const elapsed = () => ((performance.now() - t0) / 1000).toFixed(1);
    try {
      const { cfg, steps } = JSON.parse(recommended_sampling());
      const total = await start_generation(Number(select.value), steps, cfg, ++seed);
      $('gen-status').textContent = `step 0 of ${total}`;
      for (let done = 0; done < total && !stopped; ) {
        const rgba = await generation_step();
        if (stopped) break;
        done = generation_done();
        draw(rgba);
        $('gen-status').textContent = done < total ? `step ${done} of ${total} (${elapsed()} s elapsed)` : `${elapsed()} s`;
      }
      if (stopped) {
        $('gen-status').textContent = `stopped (${elapsed()} s elapsed)`;
      } else {
        offerDownload(Number(select.value), seed);
      }
    } catch (e) {
      $('gen-status').textContent = `Error: ${e instanceof Error ? e.message : e}`;
    }
    $('generate').disabled = false;
    $('stop').disabled = true;
  };
}

// Offers the finished image as a PNG that carries its recipe (bitdance generate --recipe
// re-runs it).
function offerDownload(cls, seed) {
  const link = $('download');
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([generation_png()], { type: 'image/png' }));
  link.download = `bitdance-class${cls}-seed${seed}.png`;
  link.hidden = false;
}

// Draws RGBA bytes of a square image on the canvas.
function draw(rgba) {
  const side = Math.round(Math.sqrt(rgba.length / 4));
  const canvas = $('image');
  canvas.width = side;
  canvas.height = side;
  canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba), side, side), 0, 0);
}

async function main() {
  await init();
  if (!navigator.gpu) throw new Error('this browser exposes no WebGPU (navigator.gpu is missing)');
  $('status').textContent = 'Opening the GPU…';
  showAdapter(JSON.parse(await adapter_info()), await browserAdapterName());
  await setupGenerator();
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const family of conformance_families()) {
    $('status').textContent = `Running ${family} checks…`;
    const t0 = performance.now();
    const result = JSON.parse(await run_conformance(family));
    result.rows.forEach(showRow);
    passed += result.passed;
    failed += result.failed;
    skipped += result.skipped;
    console.log(`${family}: ${result.passed} passed, ${result.failed} failed, ${result.skipped} skipped in ${(performance.now() - t0).toFixed(0)} ms`);
  }
  $('status').textContent = 'Done.';
  $('summary').textContent = `${passed} passed, ${failed} failed, ${skipped} skipped.`;
  $('summary').className = failed ? 'fail' : 'ok';
  finish(passed, failed, null, skipped);
}

main().catch((e) => {
  const msg = e instanceof Error ? e.message : String(e);
  $('status').textContent = `Error: ${msg}`;
  $('status').className = 'error';
  console.error(e);
  finish(0, 0, msg);
});
