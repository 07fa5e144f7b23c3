// The web page of `easel serve` in a real headless Chromium, driven over the Chrome DevTools Protocol with
// keyboard input: it loads without errors or foreign requests, generates an image with live progress, fills
// its gallery, refills the form from a gallery entry, shows the server's error message for a bad request,
// sends and keeps the API key, and cancels a running job.
// Usage: node [--experimental-websocket] web_test.mjs SERVER_URL [CHROMIUM]   (Node 20.10+; no npm packages)
// Run through run_web_test.sh, which starts the server.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

if (!process.argv[2]) {
  console.log('usage: node [--experimental-websocket] web_test.mjs SERVER_URL [CHROMIUM]');
  process.exit(2);
}
const serverUrl = new URL(process.argv[2]);
const chromiumPath = process.argv[3] ?? process.env.CHROMIUM ?? 'chromium';
const TOTAL_TIMEOUT_MS = 90_000;
const GENERATE_TIMEOUT_MS = 60_000;
const PROMPT = 'a red circle on a blue background';
const SEED = '7';
// The embedded model draws 32x32 in 20 steps within tens of milliseconds, before the page could see one
// progress event; at 64x64 and 60 steps it runs for a second or two (measured on 2 cores).
const SIZE = '64';
const STEPS = '60';

let chromium = null;
const profileDir = mkdtempSync(join(tmpdir(), 'easel-web-test-'));

function cleanup() {
  if (chromium && chromium.exitCode === null && chromium.signalCode === null) {
    // Chromium was started as the leader of its own process group; this ends it and its helper processes.
    try {
      process.kill(-chromium.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  rmSync(profileDir, { recursive: true, force: true });
}

function fail(message) {
  console.log(`FAIL ${message}`);
  cleanup();
  process.exit(1);
}

function pass(message) {
  console.log(`ok   ${message}`);
}

process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => fail(`interrupted by ${signal}`));
setTimeout(() => fail(`the whole test took longer than ${TOTAL_TIMEOUT_MS / 1000} s`), TOTAL_TIMEOUT_MS).unref();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- Chromium and a minimal CDP client ----

async function launchChromium() {
  chromium = spawn(chromiumPath, [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--remote-debugging-port=0', `--user-data-dir=${profileDir}`,
    '--no-first-run', '--no-default-browser-check', '--disable-extensions', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-default-apps', '--mute-audio',
    '--window-size=1024,768', 'about:blank',
  ], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  chromium.stderr.on('data', (chunk) => { stderr += chunk; });
  chromium.on('error', (err) => fail(`cannot start ${chromiumPath}: ${err.message}`));
  // Chromium writes its chosen port (and the browser target's path) here once it listens.
  const portFile = join(profileDir, 'DevToolsActivePort');
  for (let waited = 0; waited < 20_000; waited += 50) {
    if (chromium.exitCode !== null) fail(`chromium exited with status ${chromium.exitCode}:\n${stderr}`);
    try {
      const port = readFileSync(portFile, 'utf8').split('\n')[0].trim();
      if (port) return Number(port);
    } catch {
      // Not written yet.
    }
    await sleep(50);
  }
  fail(`chromium did not write ${portFile} within 20 s:\n${stderr}`);
}

class Cdp {
  constructor(socket) {
    this.socket = socket;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    socket.addEventListener('message', (event) => {
      const message = JSON.parse(event.data);
      if (message.id !== undefined) {
        const { resolve, reject, method } = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (message.error) reject(new Error(`${method}: ${message.error.message}`));
        else resolve(message.result);
      } else {
        for (const listener of this.listeners) listener(message.method, message.params);
      }
    });
  }

  static async connect(url) {
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.addEventListener('open', resolve, { once: true });
      socket.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true });
    });
    return new Cdp(socket);
  }

  send(method, params = {}) {
    const id = this.nextId++;
    this.socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject, method }));
  }

  on(listener) {
    this.listeners.push(listener);
  }

  close() {
    this.socket.close();
  }
}

// ---- page helpers ----

let cdp;

// Evaluates an expression in the page and returns its value (JSON-serialisable values only).
async function evaluate(expression) {
  const { result, exceptionDetails } = await cdp.send('Runtime.evaluate', {
    expression, returnByValue: true, awaitPromise: true,
  });
  if (exceptionDetails) throw new Error(`page threw evaluating ${expression}: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
  return result.value;
}

// Polls `expression` in the page until it is truthy and returns it. Fails early when `failWhen` is truthy
// (its value says why), and on the timeout with the value of `explain`, when given.
async function waitFor(description, expression, timeoutMs, failWhen = null, explain = null) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await evaluate(expression);
    if (value) return value;
    if (failWhen) {
      const why = await evaluate(failWhen);
      if (why) fail(`${description}: ${why}`);
    }
    if (Date.now() > deadline) {
      fail(`${description}: not within ${timeoutMs / 1000} s${explain ? `; ${await evaluate(explain)}` : ''}`);
    }
    await sleep(100);
  }
}

const activeId = () => evaluate('document.activeElement?.id ?? ""');

// A key press as the keyboard sends it. Keys with `text` (Enter) also produce the keypress that activates a
// focused button or submits a form; "commands" are editing commands such as selectAll that Ctrl+A runs.
async function key(keyName, { code = keyName, keyCode = 0, modifiers = 0, text, commands } = {}) {
  const base = { key: keyName, code, windowsVirtualKeyCode: keyCode, nativeVirtualKeyCode: keyCode, modifiers };
  const down = text === undefined ? { type: 'rawKeyDown' } : { type: 'keyDown', text, unmodifiedText: text };
  await cdp.send('Input.dispatchKeyEvent', { ...down, ...base, ...(commands ? { commands } : {}) });
  await cdp.send('Input.dispatchKeyEvent', { type: 'keyUp', ...base });
}

const KEYS = {
  tab: ['Tab', { keyCode: 9 }],
  shiftTab: ['Tab', { keyCode: 9, modifiers: 8 }],
  enter: ['Enter', { keyCode: 13, text: '\r' }],
  ctrlEnter: ['Enter', { keyCode: 13, modifiers: 2, text: '\r' }],
  backspace: ['Backspace', { keyCode: 8 }],
  selectAll: ['a', { code: 'KeyA', keyCode: 65, modifiers: 2, commands: ['selectAll'] }],
};
const press = (name) => key(...KEYS[name]);

// Presses Tab (or Shift+Tab) until the element with `id` has focus; fails after `limit` presses.
async function tabTo(id, { backwards = false, limit = 30 } = {}) {
  for (let i = 0; i < limit; ++i) {
    if (await activeId() === id) return i;
    await press(backwards ? 'shiftTab' : 'tab');
  }
  fail(`#${id} did not get focus after ${limit} ${backwards ? 'Shift+' : ''}Tab presses (focus is on "${await activeId()}")`);
}

// Replaces the focused field's text with `text`, typed as keyboard input.
async function typeInto(id, text) {
  if (await activeId() !== id) fail(`typing into #${id}, but focus is on "${await activeId()}"`);
  await press('selectAll');
  await cdp.send('Input.insertText', { text });
  const value = await evaluate(`document.getElementById(${JSON.stringify(id)}).value`);
  if (value !== text) fail(`typed "${text}" into #${id}, it holds "${value}"`);
}

// ---- the test ----

const problems = [];        // console errors and uncaught exceptions, as text
const foreignRequests = [];
const requests = [];        // every URL the page asked for

async function main() {
  const port = await launchChromium();
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const page = targets.find((t) => t.type === 'page');
  if (!page) fail('chromium has no page target');
  cdp = await Cdp.connect(page.webSocketDebuggerUrl);
  cdp.on((method, params) => {
    if (method === 'Runtime.exceptionThrown') {
      problems.push(`uncaught exception: ${params.exceptionDetails.exception?.description ?? params.exceptionDetails.text}`);
    } else if (method === 'Runtime.consoleAPICalled') {
      const text = `console.${params.type}: ${params.args.map((a) => a.value ?? a.description).join(' ')}`;
      if (params.type === 'error' || params.type === 'assert') problems.push(text);
      else if (params.type === 'warning') console.log(`     (page) ${text}`);
    } else if (method === 'Log.entryAdded' && params.entry.level === 'error') {
      problems.push(`log (${params.entry.source}): ${params.entry.text} ${params.entry.url ?? ''}`.trim());
    } else if (method === 'Network.requestWillBeSent') {
      requests.push(params.request.url);
      const url = new URL(params.request.url);
      if (!['data:', 'blob:'].includes(url.protocol) && url.origin !== serverUrl.origin) {
        foreignRequests.push(params.request.url);
      }
    }
  });
  await Promise.all(['Runtime.enable', 'Page.enable', 'Network.enable', 'Log.enable'].map((m) => cdp.send(m)));
  pass(`chromium started (DevTools port ${port})`);

  // Load.
  await navigate(() => cdp.send('Page.navigate', { url: serverUrl.href }));
  const options = await evaluate(`({
    models: document.getElementById('model').options.length,
    samplers: document.getElementById('sampler').options.length,
    schedulers: document.getElementById('scheduler').options.length,
    width: document.getElementById('width').value,
    height: document.getElementById('height').value,
    error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
  })`);
  if (options.error) fail(`the page shows an error after loading: ${options.error}`);
  if (!options.models || !options.samplers || !options.schedulers) {
    fail(`the page's lists are not filled: ${JSON.stringify(options)}`);
  }
  pass(`page loaded: ${options.models} model(s), ${options.samplers} samplers, ${options.schedulers} schedulers`);
  const models = (await (await fetch(new URL('/v1/models', serverUrl))).json()).models;
  const native = models.find((m) => m.default) ?? models[0];
  if (options.width !== String(native.width) || options.height !== String(native.height)) {
    fail(`the form's size is ${options.width}x${options.height}, the default model's ${native.width}x${native.height}`);
  }
  pass(`the form's size is the default model's (${native.name}, ${options.width}x${options.height})`);
  checkClean('after loading');

  // Fill the form from the keyboard: Tab to the prompt, then on through the size and steps to the seed.
  const tabs = await tabTo('prompt');
  await typeInto('prompt', PROMPT);
  await tabTo('width');
  await typeInto('width', SIZE);
  await tabTo('height');
  await typeInto('height', SIZE);
  await tabTo('steps');
  await typeInto('steps', STEPS);
  await tabTo('seed');
  await typeInto('seed', SEED);
  pass(`prompt, size ${SIZE}x${SIZE}, ${STEPS} steps and seed ${SEED} typed (prompt reached with ${tabs} Tab press(es))`);

  // Generate with Ctrl+Enter in the prompt.
  await tabTo('prompt', { backwards: true });
  // Record every text the step counter shows: the tiny model may finish before a poll would see one.
  await evaluate(`window.stepTexts = [];
    window.previews = 0;
    new MutationObserver(() => window.stepTexts.push(document.getElementById('step-text').textContent))
      .observe(document.getElementById('step-text'), { childList: true, characterData: true, subtree: true });
    new MutationObserver(() => { window.previews += document.getElementById('result-image').src.startsWith('data:'); })
      .observe(document.getElementById('result-image'), { attributeFilter: ['src'] });`);
  await press('ctrlEnter');
  const started = Date.now();
  const errorShown = `(() => { const e = document.getElementById('error'); return e.hidden ? '' : 'the page shows the error: ' + e.textContent; })()`;
  await waitFor('the page shows progress', `!document.getElementById('progress-row').hidden`, 5_000, errorShown);
  pass('Ctrl+Enter in the prompt started a job; the progress region is shown');
  const size = await waitFor('the generated image loads', `(() => {
    const img = document.getElementById('result-image');
    return img.dataset.final === 'true' && img.complete && img.naturalWidth > 0 ? img.naturalWidth + 'x' + img.naturalHeight : '';
  })()`, GENERATE_TIMEOUT_MS, errorShown);
  pass(`image generated and shown (${size}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const steps = (await evaluate('window.stepTexts')).filter((t) => /^step \d+\/\d+$/.test(t));
  if (!steps.length) fail('the page never showed "step N/M" while the job ran');
  pass(`live progress shown: ${steps.length} updates, "${steps[0]}" to "${steps.at(-1)}"`);
  const previews = await evaluate('window.previews');
  // The server sends previews only when it has one for the step; their absence is reported, not failed.
  console.log(`${previews ? 'ok  ' : 'note'} ${previews} live preview image(s) shown while the job ran`);
  const polls = requests.filter((r) => /\/v1\/jobs\/[^/?]+\?preview=1$/.test(r));
  const streams = requests.filter((r) => /\/v1\/jobs\/[^/?]+\/events/.test(r));
  if (!streams.length || polls.length) {
    fail(`progress should come over Server-Sent Events: ${streams.length} /events request(s), ${polls.length} poll(s)`);
  }
  pass('progress followed over Server-Sent Events (no polling)');

  // The gallery, newest first, has the job with its seed.
  const entry = await waitFor('the gallery shows the new job with seed 7', `(() => {
    const first = document.querySelector('#gallery-list li');
    return first && /\\bseed 7\\b/.test(first.innerText) && first.innerText.includes(${JSON.stringify(PROMPT)})
      ? first.innerText.replace(/\\s+/g, ' ').trim() : '';
  })()`, 5_000, null, `'the gallery holds: ' + document.getElementById('gallery-list').innerText.slice(0, 300)`);
  pass(`gallery entry: ${entry}`);
  const download = await evaluate(`document.querySelector('#gallery-list li a[download]')?.getAttribute('href') ?? ''`);
  if (!download) fail('the gallery entry has no download link');
  pass(`gallery entry has a download link (${download})`);
  checkClean('after generating');

  // "Same seed again" refills the form: change the seed first, then press the button with Enter.
  await tabTo('seed');
  await typeInto('seed', '-1');
  await evaluate(`document.querySelector('#gallery-list li button').focus()`);
  const label = await evaluate('document.activeElement.textContent');
  if (label !== 'Same seed again') fail(`the gallery entry's first button is "${label}"`);
  await press('enter');
  const refilled = await evaluate(`({
    seed: document.getElementById('seed').value,
    steps: document.getElementById('steps').value,
    prompt: document.getElementById('prompt').value,
  })`);
  if (refilled.seed !== SEED || refilled.steps !== STEPS || refilled.prompt !== PROMPT) fail(`"Same seed again" filled ${JSON.stringify(refilled)}`);
  pass(`"Same seed again" filled the form: seed ${refilled.seed}, ${refilled.steps} steps, prompt "${refilled.prompt}"`);

  // A bad request through the page shows the server's message. The expected text is what the server
  // answers to the same request sent directly.
  const direct = await fetch(new URL('/v1/jobs', serverUrl), {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ prompt: PROMPT, steps: 0 }),
  });
  const expected = (await direct.json())?.error?.message;
  if (direct.ok || !expected) fail(`the server accepted steps 0 or gave no error message (HTTP ${direct.status})`);
  await tabTo('steps');
  await typeInto('steps', '0');
  await press('enter');  // implicit submission from a field of the form
  const shown = await waitFor('the error element shows the server message', `(() => {
    const e = document.getElementById('error');
    return !e.hidden && e.getAttribute('role') === 'alert' && e.innerText.includes(${JSON.stringify(expected)}) ? e.innerText.replace(/\\s+/g, ' ') : '';
  })()`, 5_000);
  pass(`steps 0: the page shows the server's error in role=alert: "${shown}"`);
  forgiveFailedRequests(400);
  await screenshot();

  // The API key travels as a Bearer token (an unknown one gets the server's 401 message) and outlives a reload.
  const wrongKey = 'easel_not_a_key';
  const keyAnswer = await fetch(new URL('/v1/models', serverUrl), { headers: { Authorization: `Bearer ${wrongKey}` } });
  const keyMessage = (await keyAnswer.json())?.error?.message;
  if (keyAnswer.status !== 401 || !keyMessage) fail(`the server answered an unknown API key with HTTP ${keyAnswer.status}`);
  await tabTo('api-key');
  await typeInto('api-key', wrongKey);
  await press('tab');  // leaving the field stores the key and reloads the lists with it
  const errorIs = (text) => `(() => {
    const e = document.getElementById('error');
    return !e.hidden && e.innerText.includes(${JSON.stringify(text)});
  })()`;
  await waitFor('the page shows the 401 for an unknown API key', errorIs(keyMessage), 5_000);
  pass(`an unknown API key is sent and refused: "${keyMessage}"`);
  await navigate(() => cdp.send('Page.reload'));
  const kept = await evaluate(`document.getElementById('api-key').value`);
  if (kept !== wrongKey) fail(`after a reload the API key field holds "${kept}"`);
  await waitFor('the reloaded page shows the 401 again', errorIs(keyMessage), 5_000);
  pass('the API key is kept across a reload');
  await tabTo('api-key');
  await press('selectAll');
  await press('backspace');
  await press('tab');
  await waitFor('the error goes and the lists fill once the key is removed',
    `document.getElementById('error').hidden && document.getElementById('model').options.length > 0`, 5_000);
  const left = await evaluate(`localStorage.getItem('easel.api_key')`);
  if (left !== null) fail(`the removed API key is still stored: "${left}"`);
  pass('removing the API key clears the error and the stored key');
  forgiveFailedRequests(401);

  // Cancel: a long job (128x128, 150 steps: about ten seconds), cancelled with the keyboard while it runs.
  await tabTo('width', { backwards: true });
  await typeInto('width', '128');
  await tabTo('height');
  await typeInto('height', '128');
  await tabTo('steps');
  await typeInto('steps', '150');
  await press('ctrlEnter');
  await waitFor('the long job runs', `/^step [1-9]/.test(document.getElementById('step-text').textContent)`,
    10_000, errorShown);
  await tabTo('cancel');
  await press('enter');
  const cancelled = await waitFor('the job is cancelled', `(() => {
    const text = document.getElementById('status-text').textContent;
    return text === 'Cancelled' && !document.getElementById('generate').disabled ? text : '';
  })()`, 10_000, errorShown);
  const afterCancel = await evaluate(`({
    focus: document.activeElement?.id,
    cancelHidden: document.getElementById('cancel').hidden,
  })`);
  if (!afterCancel.cancelHidden || afterCancel.focus !== 'generate') fail(`after cancelling: ${JSON.stringify(afterCancel)}`);
  const cancelledEntry = await waitFor('the gallery shows the cancelled job', `(() => {
    const text = document.querySelector('#gallery-list li')?.innerText ?? '';
    return /150 steps/.test(text) && /cancelled/.test(text) ? text.replace(/\\s+/g, ' ') : '';
  })()`, 5_000);
  pass(`Cancel (keyboard) stopped the running job: status "${cancelled}", focus back on Generate, gallery: ${cancelledEntry}`);
  checkClean('at the end');
  cdp.close();
}

// EASEL_WEB_SCREENSHOT=FILE.png keeps a picture of the page (with a result, a gallery and an error) to look at.
async function screenshot() {
  const file = process.env.EASEL_WEB_SCREENSHOT;
  if (!file) return;
  const { data } = await cdp.send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true });
  writeFileSync(file, Buffer.from(data, 'base64'));
  console.log(`     screenshot: ${file}`);
}

// Loads a page (by `start`) and waits until the page's script has started.
async function navigate(start) {
  const loaded = new Promise((resolve) => cdp.on((method) => method === 'Page.loadEventFired' && resolve()));
  const result = await start();
  if (result?.errorText) fail(`cannot load ${serverUrl.href}: ${result.errorText}`);
  await loaded;
  await waitFor('the page starts (body[data-ready])', 'document.body.dataset.ready === "true"', 10_000);
}

// The browser logs every request answered with an HTTP error as a console error; those the test provoked
// on purpose (with this status) are expected.
function forgiveFailedRequests(status) {
  const pattern = new RegExp(`^log \\(network\\): .*status of ${status}\\b`);
  const unexpected = problems.filter((p) => !pattern.test(p));
  problems.length = 0;
  problems.push(...unexpected);
}

function checkClean(when) {
  if (problems.length) fail(`console errors or exceptions ${when}:\n  ${problems.join('\n  ')}`);
  if (foreignRequests.length) fail(`requests outside ${serverUrl.origin} ${when}:\n  ${foreignRequests.join('\n  ')}`);
  pass(`no console errors, no exceptions, no requests outside ${serverUrl.origin} (${when})`);
}

main().then(() => {
  console.log('PASS web page');
  cleanup();
  process.exit(0);
}, (err) => fail(err.stack ?? String(err)));
