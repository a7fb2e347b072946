#!/usr/bin/env python3
"""Loads the built demo page (web/, after scripts/web-build.sh) in headless Chromium through
chromedriver, waits for <div id="done">, prints the adapter and the result, then clicks Generate
and reads the canvas; fails unless the page ran on WebGPU with every check passing and drew a
non-flat image with the default model. Standard library only.

Usage: scripts/web-smoke.py [--timeout SECONDS] [--screenshot FILE.png] [--png FILE.png]
"""
import argparse
import base64
import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FLAGS = json.load(open(os.path.join(ROOT, "web", "webdriver.json")))["goog:chromeOptions"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)["value"]


def serve(directory):
    handler = functools.partial(QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript"}

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=240)
    ap.add_argument("--screenshot")
    ap.add_argument("--png", help="also save the generated image's PNG (with its recipe) here")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(ROOT, "web", "pkg", "bitdance_web_bg.wasm")):
        sys.exit("web/pkg is missing: run scripts/web-build.sh first")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not driver:
        sys.exit("chromedriver not found: run scripts/install-deps.sh")

    server = serve(os.path.join(ROOT, "web"))
    port = free_port()
    profile = tempfile.mkdtemp(prefix="bitdance-chromium-")
    proc = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                call(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        opts = dict(FLAGS, args=FLAGS["args"] + [f"--user-data-dir={profile}",
                                                  "--window-size=1100,1400"])
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": opts}}}
        session = call(base, "POST", "/session", caps)["sessionId"]
        s = f"/session/{session}"
        try:
            call(base, "POST", s + "/url", {"url": f"http://127.0.0.1:{server.server_port}/"})
            script = """const d = document.getElementById('done');
                return d && {passed: +d.dataset.passed, failed: +d.dataset.failed,
                             skipped: +d.dataset.skipped,
                             error: d.dataset.error || null,
                             adapter: [...document.querySelectorAll('#adapter dt')].map(
                                 dt => dt.textContent + ': ' + dt.nextElementSibling.textContent),
                             summary: document.getElementById('summary').innerText};"""
            start = time.time()
            result = generated = None
            while result is None and time.time() - start < args.timeout:
                time.sleep(1)
                result = call(base, "POST", s + "/execute/sync", {"script": script, "args": []})
            if result is not None:
                generated = generate_one(base, s, start, args.timeout)
            if args.screenshot:
                png = base64.b64decode(call(base, "GET", s + "/screenshot"))
                open(args.screenshot, "wb").write(png)
        finally:
            call(base, "DELETE", s)
    finally:
        proc.terminate()
        proc.wait()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)

    if result is None:
        sys.exit(f"web page: no #done marker after {args.timeout:.0f} s")
    print("web page adapter:\n  " + "\n  ".join(result["adapter"]))
    print(f"web page: {result['passed']} passed, {result['failed']} failed, "
          f"{result['skipped']} skipped in {time.time() - start:.0f} s")
    if result["error"]:
        sys.exit(f"web page error: {result['error']}")
    if "Backend: BrowserWebGpu" not in result["adapter"]:
        sys.exit("web page did not run on the browser's WebGPU")
    if result["failed"] or not result["passed"]:
        sys.exit("web page: conformance checks failed")
    if generated is None:
        sys.exit(f"web page: Generate did not finish within {args.timeout:.0f} s")
    print(f"web page: Generate (class {GENERATE_CLASS}) -> {generated['status']}, "
          f"{generated['width']}x{generated['height']} image, red range "
          f"{generated['min']}..{generated['max']}")
    if generated["status"].startswith("Error"):
        sys.exit(f"web page: Generate failed: {generated['status']}")
    if generated["max"] - generated["min"] < 64:
        sys.exit("web page: the generated image is (nearly) flat")
    recipe = generated.get("recipe")
    if recipe is None:
        sys.exit("web page: the finished image offers no PNG with its recipe")
    with open(os.path.join(ROOT, "assets", "model", "default.safetensors"), "rb") as f:
        model_sha = hashlib.sha256(f.read()).hexdigest()
    if recipe["classes"] != [GENERATE_CLASS] or recipe["model_sha256"] != model_sha:
        sys.exit(f"web page: the PNG's recipe does not describe the run: {recipe}")
    if args.png:
        with open(args.png, "wb") as f:
            f.write(generated["png"])
    print(f"web page: the PNG carries its recipe (seed {recipe['seed']}, cfg {recipe['cfg']}, "
          f"{recipe['head_steps']} head steps, {recipe['precision']}, token hash "
          f"{recipe['token_hash'][:16]})")


GENERATE_CLASS = 3


def generate_one(base, s, start, timeout):
    """Clicks Generate for one class and waits for the canvas; returns its status and pixel
    range, or None on time-out."""
    click = f"""const sel = document.getElementById('class');
        sel.value = '{GENERATE_CLASS}';
        document.getElementById('generate').click();
        return true;"""
    call(base, "POST", s + "/execute/sync", {"script": click, "args": []})
    poll = """const s = document.getElementById('gen-status').textContent;
        if (!/ s$/.test(s) && !s.startsWith('Error')) return null;
        const c = document.getElementById('image');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let min = 255, max = 0;
        for (let i = 0; i < d.length; i += 4) { min = Math.min(min, d[i]); max = Math.max(max, d[i]); }
        return {status: s, width: c.width, height: c.height, min: min, max: max};"""
    while time.time() - start < 2 * timeout:
        time.sleep(1)
        out = call(base, "POST", s + "/execute/sync", {"script": poll, "args": []})
        if out is not None:
            out["recipe"], out["png"] = download_recipe(base, s)
            return out
    return None


def download_recipe(base, s):
    """(the recipe as a dict, the PNG bytes) the page offers for download, or (None, None)."""
    fetch = """const done = arguments[arguments.length - 1];
        const a = document.getElementById('download');
        if (a.hidden || !a.href) { done(null); return; }
        fetch(a.href).then((r) => r.arrayBuffer()).then((b) => {
            let text = '';
            for (const x of new Uint8Array(b)) text += String.fromCharCode(x);
            done(btoa(text));
        });"""
    encoded = call(base, "POST", s + "/execute/async", {"script": fetch, "args": []})
    if encoded is None:
        return None, None
    png = base64.b64decode(encoded)
    at = 8
    while at + 8 <= len(png):
        length = int.from_bytes(png[at:at + 4], "big")
        kind, data = png[at + 4:at + 8], png[at + 8:at + 8 + length]
        if kind == b"tEXt" and data.startswith(b"bitdance-recipe\0"):
            return json.loads(data.split(b"\0", 1)[1]), png
        at += 12 + length
    return None, png


if __name__ == "__main__":
    main()
