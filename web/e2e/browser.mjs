// Shared by the e2e scripts: a static server for web/, and Debian's Chromium started by
// playwright-core with the flags of web/webdriver.json (never a downloaded browser).
import { createServer } from 'node:http';
import { readFile, mkdtemp } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { join, extname, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const WEB = join(dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json', '.png': 'image/png' };

// Serves web/ and, under /files/, the files of `extra` (name -> path); resolves to its base URL.
export function serve(extra = {}) {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.startsWith('/files/') ? extra[path.slice(7)] : join(WEB, path === '/' ? 'index.html' : path);
    try {
      if (!file || (!path.startsWith('/files/') && !file.startsWith(WEB))) throw new Error('not found');
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${server.address().port}/` })));
}

// A persistent Chromium profile (OPFS survives reloads and restarts of the browser on it).
// A profile made here (models cached in its OPFS reach gigabytes) is removed when node exits,
// whether the run passed or failed.
export async function browser(profile) {
  const flags = JSON.parse(await readFile(join(WEB, 'webdriver.json'), 'utf8'))['goog:chromeOptions'];
  const dir = profile ?? (await mkdtemp(join(tmpdir(), 'bitdance-chromium-')));
  if (!profile) process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM ?? flags.binary,
    args: flags.args,
    ignoreDefaultArgs: ['--headless'],
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
  });
  return { context, dir };
}
