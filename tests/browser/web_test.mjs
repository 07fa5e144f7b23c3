// The web page of `easel serve` in a real headless Chromium, driven with Playwright (playwright-core, no browser
// download: Debian's chromium): it loads without errors or foreign requests, generates an image from the keyboard
// with live progress, fills its gallery, refills the form from a gallery entry, generates again with a mouse click
// on Generate and takes a screenshot, shows the server's error message for a bad request, sends and keeps the API
// key, and cancels a running job from the keyboard. Then several jobs at once: three long jobs queued by three
// clicks, the queue list with the running one's step and the others' positions ("1 ahead", "2 ahead"), the middle one
// cancelled from its own button (reached with Tab: DELETE for its id), the running one too, the last one followed
// over its events and ended by Skip (POST /sdapi/v1/skip); a batch (batch count 2 x batch size 2) whose 4 images the
// result area and the gallery entry show; the server's 400 for too many images next to Batch size; Skip in a job of
// two images (the first stops early, the job ends with both); the server's 429 for a full queue, shown; axe-core on
// the queue and the batch. Then the ControlNet / IP-Adapter section, closed until then (no
// request so far carried a unit): a control image dropped on unit 1, canny and its thresholds, Preview shows the
// server's /controlnet/detect map, a generation sends the unit and shows the infotext's "ControlNet 0"; unit 2 as an
// IP-Adapter (its own module list, a guidance window, no preview or modes, image from the file picker) generates with its
// reference image; an SDXL ControlNet on the SD 1.5 model shows the server's 400; a unit that is on without a
// model is stopped by the page; with every unit off nothing is sent. Last, "Image info" reports a generated image
// as signed, lists its settings and restores them into the form, reports a changed copy as tampered and another
// image as unmarked. Then the studio walk of issue 24: txt2img (its live previews counted: a new one at least every
// 5 steps), "Send to img2img", a mask painted with the mouse, inpainting (whole picture, then only masked at the
// model's size with its padding and masked content), outpainting one side (the canvas extended, its new strip
// stretched from the edge and masked with an overlap, masked content "fill"), the settings restored from the result
// dropped as a PNG, the image found in the history by a search and by model, downloaded (its PNG with parameters),
// its seed reused and a job deleted; the usage line (GET /v1/usage) for the open server, and on a second server
// that needs a key, for a key with a daily quota and a rate limit, before and after a job. At desktop width and at 360 px: a screenshot, no sideways scrolling, and axe-core with
// no serious or critical violation; every control is reached with Tab. Then the diffusion transformers' settings,
// each shown only for a model that takes it: on SD3 (not loaded until its first job: none shown, a note says why)
// the flow shift and skip-layer guidance, a layer the model lacks refused next to the field, layers "1" and shift 3
// sent and in the infotext, restored from the image; on Flux the distilled guidance at the model's default, a changed
// one sent; on the embedded model none, and hidden ones never sent.
// run_web_test.sh serves the tiny model (the default), the golden SD 1.5 pipeline, which the golden ControlNets
// (tests/golden/data/controlnet) and IP-Adapter (ip_adapter/sd1_plus) fit, and the golden tiny SD3 and Flux pipelines.
// Usage: node web_test.mjs SERVER_URL [CHROMIUM]   (Node 20+; `npm ci` in this folder, which scripts/setup runs)
// EASEL_WEB_KEYED_URL and EASEL_WEB_KEY: the second server and its key (quota 100 a day, 60 requests a minute), as
// run_web_test.sh starts it; without them the key's usage line is not checked (and the test says so).
// Run through run_web_test.sh, which starts the server. Screenshots and the downloaded PNG go to the folder
// $EASEL_WEB_ARTIFACTS (default: browser-artifacts in the working directory; their paths are printed);
// EASEL_WEB_SCREENSHOT=FILE.png also keeps the screenshot taken after the mouse-click generation there.

import { AxeBuilder } from '@axe-core/playwright';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

if (!process.argv[2]) {
  console.log('usage: node web_test.mjs SERVER_URL [CHROMIUM]');
  process.exit(2);
}
const serverUrl = new URL(process.argv[2]);
const keyedUrl = process.env.EASEL_WEB_KEYED_URL ? new URL(process.env.EASEL_WEB_KEYED_URL) : null;
const keyedSecret = process.env.EASEL_WEB_KEY ?? '';
const chromiumPath = process.argv[3] ?? process.env.CHROMIUM ?? '/usr/bin/chromium';
// Debian's chromium in a closed network: without these it spends seconds on requests that cannot succeed.
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run',
];
// ctest gives the whole run (server start included) 180 s.
const TOTAL_TIMEOUT_MS = 150_000;
const GENERATE_TIMEOUT_MS = 30_000;
const PROMPT = 'a red circle on a blue background';
const SEED = '7';
// The embedded model draws 32x32 in 20 steps within tens of milliseconds, before the page could see one
// progress event; at 64x64 and 60 steps it runs for a second or two (measured on 2 cores).
const SIZE = '64';
const STEPS = '60';
// Generations by mouse clicks, at the model's native size, so that the screenshot shows what it draws well.
const CLICKED = [
  { prompt: 'a small green triangle at the top, white background', seed: '1' },
  { prompt: 'a large orange circle on the right, black background', seed: '2' },
];
// ControlNet and IP-Adapter: the golden files, and the model of run_web_test.sh they fit.
const GOLDEN = fileURLToPath(new URL('../golden/data/', import.meta.url));
const CONTROL_IMAGE = join(GOLDEN, 'controlnet', 'control_a.png');  // 32x32
const REFERENCE_IMAGE = join(GOLDEN, 'ip_adapter', 'ip_ref_b.png');
const CONTROL_MODEL = 'pipeline_sd1';
const CONTROLNET = 'sd1_a';
const SDXL_CONTROLNET = 'sdxl_a';
const IP_ADAPTER = 'sd1_plus';
// The studio walk: its prompt (searched for in another case), size and steps. 64x64 in 20 steps takes about a
// second on 2 cores, long enough for the page to see previews.
const STUDIO_PROMPT = 'studio walk: a yellow square on green grass';
const STUDIO_SEARCH = 'YELLOW Square';
const STUDIO_SIZE = 64;
const STUDIO_STEPS = 20;
// Issue 24: a new preview image at least every this many steps.
const MAX_PREVIEW_GAP = 5;
// Several jobs at once: each long enough not to finish while the page queues the others (128x128 in 150 steps,
// the server's most, runs about ten seconds on 2 cores; the test cancels or skips them early).
const QUEUE_PROMPT = 'queued: a blue triangle';
const QUEUE_SIZE = 128;
const QUEUE_STEPS = '150';
// Skip in a job of two 64x64 images of this many steps (about 2 s each on 2 cores).
const SKIP_STEPS = 80;
const BATCH_PROMPT = 'a batch of four: small purple dots';
const BATCH_SEED = '100';
// The diffusion transformers of run_web_test.sh: the golden tiny SD3 (3 transformer blocks, so skip-layer guidance
// may name blocks 0 to 2) and Flux dev-like (guidance embeds: a distilled guidance input) pipelines. Each draws 32x32
// in 2 steps well within a second.
const SD3_MODEL = 'pipeline_sd3';
const FLUX_MODEL = 'pipeline_flux';
const FLOW_PROMPT = 'flow walk: a white disc';
// The settings only a diffusion transformer takes: their parts of the form, and the request fields they send.
const MODEL_PARTS = { guidance: '#distilled-guidance-field', shift: '#flow-shift-field', slg: '#slg' };
const MODEL_KEYS = ['distilled_cfg_scale', 'guidance', 'shift', 'slg_layers', 'slg_scale', 'slg_start', 'slg_stop'];
// The widths of the screenshots and accessibility checks: a desktop and a small phone.
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 360, height: 740 };
// axe-core impacts that fail the test (all violations are printed).
const FAILING_IMPACTS = new Set(['serious', 'critical']);

let browser = null;
let page = null;

class TestFailure extends Error {}

// Throws; main's caller prints the message, keeps a screenshot of the page and closes the browser.
function fail(message) {
  throw new TestFailure(message);
}

function pass(message) {
  console.log(`ok   ${message}`);
}

// Exits at once; Playwright kills the Chromium it started when this process exits.
function abort(message) {
  console.log(`FAIL ${message}`);
  process.exit(1);
}

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => abort(`interrupted by ${signal}`));
setTimeout(() => abort(`the whole test took longer than ${TOTAL_TIMEOUT_MS / 1000} s`), TOTAL_TIMEOUT_MS).unref();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const artifactsDir = resolve(process.env.EASEL_WEB_ARTIFACTS || 'browser-artifacts');
mkdirSync(artifactsDir, { recursive: true });

// ---- page helpers ----

// Evaluates an expression in the page and returns its value (JSON-serialisable values only).
const evaluate = (expression) => page.evaluate(expression);

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
const press = (keys) => page.keyboard.press(keys);

// Presses Tab (or Shift+Tab) until the element with `id` has focus; fails after `limit` presses.
async function tabTo(id, { backwards = false, limit = 30 } = {}) {
  for (let i = 0; i < limit; ++i) {
    if (await activeId() === id) return i;
    await press(backwards ? 'Shift+Tab' : 'Tab');
  }
  fail(`#${id} did not get focus after ${limit} ${backwards ? 'Shift+' : ''}Tab presses (focus is on "${await activeId()}")`);
}

// Replaces the focused field's text with `text`, typed key by key (Ctrl+A first selects what is there).
async function typeInto(id, text) {
  if (await activeId() !== id) fail(`typing into #${id}, but focus is on "${await activeId()}"`);
  await press('Control+a');
  await page.keyboard.type(text);
  const value = await evaluate(`document.getElementById(${JSON.stringify(id)}).value`);
  if (value !== text) fail(`typed "${text}" into #${id}, it holds "${value}"`);
}

// Clicks the field with the mouse, then types `text` into it as above.
async function clickAndType(locator, id, text) {
  await locator.click();
  await typeInto(id, text);
}

const errorShown = `(() => { const e = document.getElementById('error'); return e.hidden ? '' : 'the page shows the error: ' + e.textContent; })()`;

const resultJobId = () => evaluate(`document.getElementById('result-image').dataset.jobId ?? ''`);

// Waits until the result figure shows the image of a finished job other than `previousJob` and returns its size.
const finalImage = (previousJob) => waitFor('the generated image loads', `(() => {
    const img = document.getElementById('result-image');
    return img.dataset.final === 'true' && (img.dataset.jobId ?? '') !== ${JSON.stringify(previousJob)}
      && img.complete && img.naturalWidth > 0 ? img.naturalWidth + 'x' + img.naturalHeight : '';
  })()`, GENERATE_TIMEOUT_MS, errorShown);

// ---- the test ----

const problems = [];        // console errors and uncaught exceptions, as text
const foreignRequests = [];
const requests = [];        // every URL the page asked for
const failedRequests = [];  // "URL: net::ERR_..." for each request that got no complete answer, shown on failure
const jobBodies = [];       // the parsed body of every POST /v1/jobs the page sent

async function main() {
  browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS, timeout: 30_000 });
  // Light colours and a 1x device, so that the screenshot is the same on every machine (and small).
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 }, deviceScaleFactor: 1, colorScheme: 'light' });
  context.on('request', (request) => {
    requests.push(request.url());
    const url = new URL(request.url());
    if (!['data:', 'blob:'].includes(url.protocol) && url.origin !== serverUrl.origin && url.origin !== keyedUrl?.origin) {
      foreignRequests.push(request.url());
    }
    if (request.method() === 'POST' && url.pathname === '/v1/jobs') jobBodies.push(JSON.parse(request.postData() ?? 'null'));
  });
  context.on('requestfailed', (request) => failedRequests.push(`${request.url()}: ${request.failure()?.errorText}`));
  page = await context.newPage();
  // Chromium's log entries (e.g. "Failed to load resource: ... status of 400") arrive here too, as errors.
  page.on('console', (message) => {
    const where = message.location()?.url;
    const text = `console.${message.type()}: ${message.text()}${where ? ` (${where})` : ''}`;
    if (message.type() === 'error' || message.type() === 'assert') problems.push(text);
    else if (message.type() === 'warning') console.log(`     (page) ${text}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught exception: ${error.stack ?? error.message}`));
  page.on('crash', () => problems.push('the page crashed'));
  page.setDefaultTimeout(10_000);
  pass(`chromium ${browser.version()} started by Playwright`);

  // Load.
  await navigate(() => page.goto(serverUrl.href));
  const options = await evaluate(`({
    models: document.getElementById('model').options.length,
    samplers: document.getElementById('sampler').options.length,
    schedulers: document.getElementById('scheduler').options.length,
    width: document.getElementById('width').value,
    height: document.getElementById('height').value,
    cfg: document.getElementById('cfg-scale').value,
    error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
    controlnetOpen: document.getElementById('controlnet').open,
  })`);
  if (options.error) fail(`the page shows an error after loading: ${options.error}`);
  if (options.controlnetOpen || await page.locator('#cn0-enabled').isVisible()) fail('the ControlNet / IP-Adapter section is open after loading');
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
  // The model picker names each model's licence (the embedded model's card: easel's own).
  const pickerText = await evaluate(`document.getElementById('model').selectedOptions[0].textContent`);
  if (!native.license || !native.family || !pickerText.includes(`licence: ${native.license}`)
      || !pickerText.includes(`${native.family} ${native.width}×${native.height}`)) {
    fail(`the model picker shows '${pickerText}'; GET /v1/models gives ${JSON.stringify(native)}`);
  }
  pass(`the model picker names the family, native size and licence: '${pickerText}'`);
  const wantCfg = String(native.cfg_scale ?? 7);
  if (options.cfg !== wantCfg) fail(`the form's CFG scale is ${options.cfg}, the default model's recommended ${wantCfg}`);
  pass(`the form's CFG scale is the default model's recommended one (${options.cfg}; GET /v1/models says ${native.cfg_scale})`);
  // The size presets: the native size selected, the model's area at other aspect ratios offered; picking one sets
  // width and height.
  const presets = await evaluate(`[...document.getElementById('size-preset').options].map((o) => o.value)`);
  const selectedPreset = await evaluate(`document.getElementById('size-preset').value`);
  if (selectedPreset !== `${native.width}x${native.height}` || presets.length < 4) {
    fail(`the size presets are ${JSON.stringify(presets)} with ${selectedPreset} selected; expected the native ${native.width}x${native.height} and other aspect ratios`);
  }
  await page.selectOption('#size-preset', presets[2]);
  const picked = await evaluate(`document.getElementById('width').value + 'x' + document.getElementById('height').value`);
  if (picked !== presets[2]) fail(`choosing the size preset ${presets[2]} left the form at ${picked}`);
  pass(`size presets ${presets.filter(Boolean).join(', ')}; choosing ${presets[2]} sets the form's size`);
  // "Add to prompt": the server's LoRAs and loaded embeddings; choosing a LoRA inserts A1111's tag into the prompt.
  const loras = await (await fetch(new URL('/sdapi/v1/loras', serverUrl))).json();
  const embeddings = Object.keys((await (await fetch(new URL('/sdapi/v1/embeddings', serverUrl))).json()).loaded);
  const networks = await evaluate(`[...document.getElementById('extra-network').options].map((o) => o.value).filter(Boolean)`);
  const wantNetworks = [...loras.map((l) => `<lora:${l.name}:1>`), ...embeddings];
  if (JSON.stringify(networks) !== JSON.stringify(wantNetworks) || loras.length === 0) {
    fail(`the "Add to prompt" list is ${JSON.stringify(networks)}, expected ${JSON.stringify(wantNetworks)}`);
  }
  await page.fill('#prompt', 'a red circle');
  await page.selectOption('#extra-network', `<lora:${loras[0].name}:1>`);
  const withLora = await evaluate(`document.getElementById('prompt').value`);
  if (withLora !== `a red circle, <lora:${loras[0].name}:1>`) fail(`choosing a LoRA made the prompt '${withLora}'`);
  await page.fill('#prompt', '');
  pass(`"Add to prompt" lists ${loras.length} LoRA(s) and ${embeddings.length} embedding(s); choosing one inserts '<lora:${loras[0].name}:1>'`);
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
  const firstPrevious = await resultJobId();
  await press('Control+Enter');
  let started = Date.now();
  await waitFor('the page shows progress', `!document.getElementById('progress-row').hidden`, 5_000, errorShown);
  pass('Ctrl+Enter in the prompt started a job; the progress region is shown');
  const size = await finalImage(firstPrevious);
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
  await press('Enter');
  const refilled = await evaluate(`({
    seed: document.getElementById('seed').value,
    steps: document.getElementById('steps').value,
    prompt: document.getElementById('prompt').value,
  })`);
  if (refilled.seed !== SEED || refilled.steps !== STEPS || refilled.prompt !== PROMPT) fail(`"Same seed again" filled ${JSON.stringify(refilled)}`);
  pass(`"Same seed again" filled the form: seed ${refilled.seed}, ${refilled.steps} steps, prompt "${refilled.prompt}"`);

  // With the mouse, twice: click into the fields, type a prompt at the model's native size, click Generate.
  const galleryPrompts = [PROMPT];  // the prompts in the gallery, oldest first
  for (const [n, { prompt, seed }] of CLICKED.entries()) {
    await clickAndType(page.getByLabel('Prompt', { exact: true }), 'prompt', prompt);
    if (n === 0) {
      await clickAndType(page.getByLabel('Width'), 'width', String(native.width));
      await clickAndType(page.getByLabel('Height'), 'height', String(native.height));
      await clickAndType(page.getByLabel('Steps'), 'steps', '20');
    }
    await clickAndType(page.getByLabel('Seed'), 'seed', seed);
    const previousJob = await resultJobId();
    started = Date.now();
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const clickSize = await finalImage(previousJob);
    if (clickSize !== `${native.width}x${native.height}`) fail(`the clicked generation's image is ${clickSize}, not ${native.width}x${native.height}`);
    const status = await evaluate(`document.getElementById('status-text').textContent`);
    if (!/^Done in /.test(status)) fail(`after the clicked generation the status reads "${status}"`);
    galleryPrompts.push(prompt);
    const wanted = [...galleryPrompts].reverse();
    const clickEntry = await waitFor(`the gallery shows the ${wanted.length} jobs, newest first, each with its image`, `(() => {
      const items = [...document.querySelectorAll('#gallery-list li')].map((li) => li.innerText.replace(/\\s+/g, ' ').trim());
      const wanted = ${JSON.stringify(wanted)};
      return items.length === wanted.length && items.every((item, i) => item.includes(wanted[i])) && /\\bseed ${seed}\\b/.test(items[0])
        && [...document.querySelectorAll('#gallery-list img')].every((img) => img.complete && img.naturalWidth > 0)
        ? items[0] : '';
    })()`, 5_000, null, `'the gallery holds: ' + document.getElementById('gallery-list').innerText.slice(0, 600)`);
    pass(`a mouse click on Generate made a ${clickSize} image in ${((Date.now() - started) / 1000).toFixed(1)} s ("${status}"); gallery: ${clickEntry}`);
  }
  await screenshot('page.png');
  checkClean('after the clicked generations');

  // A bad request through the page shows the server's message. The expected text is what the server
  // answers to the same request sent directly.
  const direct = await fetch(new URL('/v1/jobs', serverUrl), {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ prompt: PROMPT, steps: 0 }),
  });
  const expected = (await direct.json())?.error?.message;
  if (direct.ok || !expected) fail(`the server accepted steps 0 or gave no error message (HTTP ${direct.status})`);
  await tabTo('steps', { backwards: true });
  await typeInto('steps', '0');
  await press('Enter');  // implicit submission from a field of the form
  const shown = await waitFor('the error element shows the server message', `(() => {
    const e = document.getElementById('error');
    return !e.hidden && e.getAttribute('role') === 'alert' && e.innerText.includes(${JSON.stringify(expected)}) ? e.innerText.replace(/\\s+/g, ' ') : '';
  })()`, 5_000);
  const beside = await evaluate(`({ text: document.getElementById('steps-error')?.textContent ?? '',
    invalid: document.getElementById('steps').getAttribute('aria-invalid'),
    described: document.getElementById('steps').getAttribute('aria-describedby') ?? '',
    inField: document.getElementById('steps-error')?.closest('.field')?.contains(document.getElementById('steps')) ?? false })`);
  if (beside.text !== expected.replace(/^steps: /, '') || beside.invalid !== 'true' || !beside.described.includes('steps-error') || !beside.inField) {
    fail(`the error is not shown next to the Steps field: ${JSON.stringify(beside)}`);
  }
  pass(`steps 0: the page shows the server's error in role=alert: "${shown}", and next to the Steps field (aria-invalid, described by it)`);
  forgiveFailedRequests(400);

  // The API key travels as a Bearer token (an unknown one gets the server's 401 message) and outlives a reload.
  const wrongKey = 'easel_not_a_key';
  const keyAnswer = await fetch(new URL('/v1/models', serverUrl), { headers: { Authorization: `Bearer ${wrongKey}` } });
  const keyMessage = (await keyAnswer.json())?.error?.message;
  if (keyAnswer.status !== 401 || !keyMessage) fail(`the server answered an unknown API key with HTTP ${keyAnswer.status}`);
  const sentKeys = [];
  const recordKey = (request) => {
    const auth = request.headers().authorization;
    if (auth) sentKeys.push(auth);
  };
  page.on('request', recordKey);
  await tabTo('api-key');
  await typeInto('api-key', wrongKey);
  await press('Tab');  // leaving the field stores the key and reloads the lists with it
  const errorIs = (text) => `(() => {
    const e = document.getElementById('error');
    return !e.hidden && e.innerText.includes(${JSON.stringify(text)});
  })()`;
  await waitFor('the page shows the 401 for an unknown API key', errorIs(keyMessage), 5_000);
  // Next to the key field too: the usage line (GET /v1/usage) shows the refusal.
  await waitFor('the usage line under the API key shows the 401', `(() => {
    const u = document.getElementById('usage');
    return u.classList.contains('failed') && u.textContent.includes(${JSON.stringify(keyMessage)});
  })()`, 5_000, null, `'the usage line says: ' + document.getElementById('usage').textContent`);
  page.off('request', recordKey);
  if (!sentKeys.length || sentKeys.some((k) => k !== `Bearer ${wrongKey}`)) {
    fail(`the page should send "Authorization: Bearer ${wrongKey}", it sent: ${JSON.stringify(sentKeys)}`);
  }
  pass(`an unknown API key is sent as a Bearer token (${sentKeys.length} request(s)) and refused: "${keyMessage}"`);
  await navigate(() => page.reload());
  const kept = await evaluate(`document.getElementById('api-key').value`);
  if (kept !== wrongKey) fail(`after a reload the API key field holds "${kept}"`);
  await waitFor('the reloaded page shows the 401 again', errorIs(keyMessage), 5_000);
  pass('the API key is kept across a reload');
  await tabTo('api-key');
  await press('Control+a');
  await press('Backspace');
  await press('Tab');
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
  await press('Control+Enter');
  await waitFor('the long job runs', `/^step [1-9]/.test(document.getElementById('step-text').textContent)`,
    10_000, errorShown);
  await tabTo('cancel');
  await press('Enter');
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
  checkClean('after cancelling');

  await queueAndBatches();
  await controlUnits();
  await checkImages();
  await studio(native);
  checkClean('after the studio walk');
  await transformerModels(native);
  checkClean('after the SD3 and Flux walk');
  await keyUsage();
  checkClean('at the end');
}

// ---- several jobs, batches and skip (issue 24, item 2) ----

const queueEntries = () => evaluate(`[...document.querySelectorAll('#queue-list li')].map((li) => ({
  id: li.dataset.jobId, state: li.querySelector('.queue-state').textContent }))`);
const isJobRequest = (request, method, path) => request.method() === method && new URL(request.url()).pathname === path;
const serverJob = async (id) => (await fetch(new URL(`/v1/jobs/${id}`, serverUrl))).json();

// Three long jobs queued by three quick clicks: the queue list shows the running one with its step and the others
// with their positions; the middle one is cancelled from its own button, the running one too, and the last one,
// now followed, is ended by Skip (a single image: it ends, done). Then a batch of 2 x 2 images, the server's 400
// for too many images next to the field, Skip in a job of two images, and the server's 429 for a full queue.
async function queueAndBatches() {
  await page.fill('#prompt', QUEUE_PROMPT);
  for (const [id, value] of [['width', QUEUE_SIZE], ['height', QUEUE_SIZE], ['steps', QUEUE_STEPS], ['seed', '-1']]) {
    await page.fill(`#${id}`, String(value));
  }
  const live = await evaluate(`(() => { const l = document.getElementById('queue-list');
    return l.getAttribute('aria-live') + ' ' + document.getElementById(l.getAttribute('aria-labelledby'))?.textContent; })()`);
  if (live !== 'polite Queue') fail(`the queue list is not a polite live region labelled "Queue": ${live}`);
  const generate = page.getByRole('button', { name: 'Generate', exact: true });
  const ids = [];
  const queuedAt = Date.now();
  for (let i = 0; i < 3; ++i) {
    const answer = page.waitForResponse((r) => isJobRequest(r.request(), 'POST', '/v1/jobs'));
    await generate.click();
    const created = await (await answer).json();
    if (!created?.id) fail(`queueing job ${i + 1}: POST /v1/jobs answered ${JSON.stringify(created)}`);
    ids.push(created.id);
  }
  const listed = await until('the queue lists the three jobs: one running, the others 1 and 2 ahead', async () => {
    const entries = await queueEntries();
    return JSON.stringify(entries.map((e) => e.id)) === JSON.stringify(ids) && /^running: step \d+\/\d+$/.test(entries[0].state)
      && entries[1].state === 'queued, 1 ahead' && entries[2].state === 'queued, 2 ahead' ? entries : null;
  }, 10_000);
  const controls = await evaluate(`({ generate: !document.getElementById('generate').disabled,
    skip: !document.getElementById('skip').hidden, cancel: !document.getElementById('cancel').hidden })`);
  if (!controls.generate || !controls.skip || !controls.cancel) fail(`while jobs run: ${JSON.stringify(controls)}`);
  pass(`three jobs queued in ${((Date.now() - queuedAt) / 1000).toFixed(1)} s by three clicks (Generate stays usable): the queue shows ${listed.map((e) => `"${e.state}"`).join(', ')}`);

  await accessibility('queue', [['desktop', DESKTOP]], { reclose: true, include: ['#generate-form .actions', '#status', '#queue'] });

  // The middle one cancelled from its own button, reached with Tab from Generate: DELETE for its id, the list drops
  // it, the last one moves up.
  await evaluate(`document.getElementById('generate').focus()`);
  for (let i = 0; i < 10 && await evaluate(`document.activeElement?.closest('li')?.dataset.jobId ?? ''`) !== ids[1]; ++i) await press('Tab');
  const focused = await evaluate(`document.activeElement?.closest('li')?.dataset.jobId === ${JSON.stringify(ids[1])} ? document.activeElement.getAttribute('aria-label') : ''`);
  if (!focused.startsWith('Cancel')) fail(`Tab from Generate does not reach the middle job's Cancel (focus on "${await activeId()}")`);
  const deleted = page.waitForRequest((r) => isJobRequest(r, 'DELETE', `/v1/jobs/${ids[1]}`));
  await press('Enter');
  await deleted;
  await until('the cancelled job leaves the queue list, the last one is 1 ahead', async () => {
    const entries = await queueEntries();
    return JSON.stringify(entries.map((e) => e.id)) === JSON.stringify([ids[0], ids[2]]) && entries[1].state === 'queued, 1 ahead';
  });
  const middle = await serverJob(ids[1]);
  const focus = await evaluate(`document.activeElement?.closest('li')?.dataset.jobId ?? document.activeElement?.id`);
  if (middle.status !== 'cancelled' || focus !== ids[2]) fail(`after cancelling the middle job: its status ${middle.status}, focus on ${focus}`);
  pass(`the middle job's own Cancel ("${focused}", reached with Tab) sent DELETE /v1/jobs/${ids[1]} (now ${middle.status}); the list dropped it, the last job is "queued, 1 ahead"; focus on the next entry's Cancel`);

  // The running one cancelled from its button: the last job runs and is followed over its events.
  await page.locator(`#queue-list li[data-job-id="${ids[0]}"]`).getByRole('button', { name: 'Cancel' }).click();
  const followed = await until('the last job runs, is followed and shows its step', async () => {
    const entries = await queueEntries();
    const step = await evaluate(`document.getElementById('step-text').textContent`);
    return entries.length === 1 && entries[0].id === ids[2] && /^running: step [1-9]\d*\/\d+$/.test(entries[0].state)
      && /^step [1-9]/.test(step) && requests.some((u) => u.includes(`/v1/jobs/${ids[2]}/events`)) ? `${entries[0].state}; progress ${step}` : '';
  }, 15_000);
  const first = await serverJob(ids[0]);
  if (first.status !== 'cancelled') fail(`the first job, cancelled while it ran, is ${first.status}`);
  pass(`the running job cancelled from its entry (${first.status}); the next one is followed over its events: "${followed}"`);

  // Skip on the single-image job: it ends at once with the image as it stood.
  const previous = await resultJobId();
  const skip = page.waitForRequest((r) => isJobRequest(r, 'POST', '/sdapi/v1/skip'));
  await page.getByRole('button', { name: 'Skip', exact: true }).click();
  await skip;
  const skippedSize = await finalImage(previous);
  const last = await serverJob(ids[2]);
  const after = await evaluate(`({ queue: document.querySelectorAll('#queue-list li').length, skip: document.getElementById('skip').hidden,
    cancel: document.getElementById('cancel').hidden, status: document.getElementById('status-text').textContent,
    shown: document.getElementById('result-image').dataset.jobId })`);
  if (last.status !== 'done' || last.images?.length !== 1 || after.shown !== ids[2] || after.queue || !after.skip || !after.cancel) {
    fail(`Skip on the single-image job: the job is ${last.status} with ${last.images?.length} image(s); the page ${JSON.stringify(after)}`);
  }
  pass(`Skip (POST /sdapi/v1/skip) ended the single-image job with its image as it stood (${skippedSize}, "${after.status}"); the queue is empty, Skip and Cancel hidden`);
  checkClean('after the queue');

  // A batch: batch count 2 x batch size 2 on the embedded model; the result area and the gallery show the 4 images.
  await page.fill('#prompt', BATCH_PROMPT);
  for (const [id, value] of [['width', 32], ['height', 32], ['steps', 4], ['seed', BATCH_SEED], ['batch-count', 2], ['batch-size', 2]]) {
    await page.fill(`#${id}`, String(value));
  }
  const batch = await generateWithClick('a batch of 2 x 2');
  if (batch.body.n_iter !== 2 || batch.body.batch_size !== 2) fail(`the batch request sent n_iter ${batch.body.n_iter}, batch_size ${batch.body.batch_size}`);
  const shown = await waitFor('the result area lists the batch\'s 4 images', `(() => {
    const buttons = [...document.querySelectorAll('#result-images button')];
    return !document.getElementById('result-images').hidden && buttons.length === 4
      && buttons.every((b) => b.querySelector('img')?.complete && b.querySelector('img').naturalWidth > 0)
      ? { names: buttons.map((b) => b.getAttribute('aria-label')), pressed: buttons.map((b) => b.getAttribute('aria-pressed')),
          status: document.getElementById('status-text').textContent } : '';
  })()`, 5_000, errorShown);
  const seeds = shown.names.map((n) => Number(/seed (\d+)/.exec(n)?.[1]));
  if (seeds[0] !== Number(BATCH_SEED) || seeds.some((s, i) => s !== seeds[0] + i) || shown.pressed.join() !== 'true,false,false,false'
      || !/: 4 images$/.test(shown.status)) {
    fail(`the batch's images in the result area: ${JSON.stringify(shown)}`);
  }
  await page.locator('#result-images button').nth(2).click();
  const third = await evaluate(`({ index: document.getElementById('result-image').dataset.index,
    download: document.querySelector('#result-caption a[download]')?.getAttribute('download'),
    send: document.querySelectorAll('#result-caption button').length, info: document.getElementById('result-infotext').textContent,
    pressed: [...document.querySelectorAll('#result-images button')].map((b) => b.getAttribute('aria-pressed')).join() })`);
  if (third.index !== '2' || third.download !== `easel-${batch.jobId}-2.png` || third.send !== 1 || !third.info.includes(`Seed: ${seeds[2]}`)
      || third.pressed !== 'false,false,true,false') {
    fail(`choosing the third image: ${JSON.stringify(third)}`);
  }
  const entryThumbs = await waitFor('the gallery entry shows the batch\'s 4 images', `(() => {
    const li = document.querySelector('#gallery-list li[data-job-id="${batch.jobId}"]');
    const imgs = li ? [...li.querySelectorAll('.thumbs img')] : [];
    return imgs.length === 4 && imgs.every((img) => img.complete && img.naturalWidth > 0) ? imgs.length : 0;
  })()`, 5_000);
  await page.locator(`#gallery-list li[data-job-id="${batch.jobId}"] .thumbs button`).nth(3).click();
  const fromGallery = await evaluate(`({ index: document.getElementById('result-image').dataset.index,
    focus: document.activeElement?.getAttribute('aria-label'), inResult: document.getElementById('result-images').contains(document.activeElement) })`);
  if (fromGallery.index !== '3' || !fromGallery.inResult || !fromGallery.focus?.startsWith('Image 4 of 4')) {
    fail(`the gallery's fourth thumbnail: ${JSON.stringify(fromGallery)}`);
  }
  await accessibility('batch', undefined, { reclose: true, include: ['#generate-form .grid', '#result', '#gallery'] });
  pass(`batch count 2 x batch size 2: ${batch.size} images in ${batch.seconds} s, "${shown.status}"; 4 thumbnails (seeds ${seeds.join(', ')}), the third chosen shows its download easel-…-2.png and infotext; the gallery entry shows ${entryThumbs} images, its fourth opens in the result area`);

  // Too many images: the server's 400 names the field, shown next to it (n_iter past its range: Batch count; a
  // product past --max-images: batch_size).
  await page.fill('#batch-count', '17');
  await page.fill('#batch-size', '1');
  await generate.click();
  const countNote = await waitFor('the 400 for batch count 17 shows next to Batch count', `(() => {
    const note = document.getElementById('batch-count-error');
    return note && document.getElementById('batch-count').getAttribute('aria-invalid') === 'true' ? note.textContent : '';
  })()`, 5_000);
  await page.fill('#batch-count', '16');
  await page.fill('#batch-size', '2');
  const refusedAnswer = page.waitForResponse((r) => isJobRequest(r.request(), 'POST', '/v1/jobs'));
  await generate.click();
  const refused = await refusedAnswer;
  const refusal = (await refused.json())?.error?.message ?? '';
  const beside = await waitFor('the 400 shows next to Batch size', `(() => {
    const note = document.getElementById('batch-size-error');
    return note && document.getElementById('batch-size').getAttribute('aria-invalid') === 'true' ? note.textContent : '';
  })()`, 5_000);
  if (refused.status() !== 400 || !refusal.startsWith('batch_size: ') || beside !== refusal.slice('batch_size: '.length)) {
    fail(`batch count 16 x batch size 2: HTTP ${refused.status()} "${refusal}"; next to the field: "${beside}"`);
  }
  pass(`batch count 17: "${countNote}" next to Batch count; batch count 16 x batch size 2: the server's 400 "${refusal}" is shown next to Batch size`);
  forgiveFailedRequests(400);

  // Skip in a job of two images: the first stops early, the job goes on with the second and ends with both.
  await page.fill('#batch-count', '2');
  await page.fill('#batch-size', '1');
  for (const [id, value] of [['width', 64], ['height', 64], ['steps', SKIP_STEPS]]) await page.fill(`#${id}`, String(value));
  await evaluate(`window.imageSteps = [];
    window.stepObserver?.disconnect();
    window.stepObserver = new MutationObserver(() => window.imageSteps.push(document.getElementById('status-text').textContent
      + ' | ' + document.getElementById('step-text').textContent));
    window.stepObserver.observe(document.getElementById('status'),
      { childList: true, characterData: true, subtree: true });`);
  const before = await resultJobId();
  const skipJob = page.waitForResponse((r) => isJobRequest(r.request(), 'POST', '/v1/jobs'));
  await generate.click();
  const skipId = (await (await skipJob).json()).id;
  await waitFor('the first of two images runs', `/^Running: image 1 of 2$/.test(document.getElementById('status-text').textContent)
    && Number(/^step (\\d+)\\//.exec(document.getElementById('step-text').textContent)?.[1]) >= 3`, 10_000, errorShown);
  const skipped = page.waitForRequest((r) => isJobRequest(r, 'POST', '/sdapi/v1/skip'));
  await page.getByRole('button', { name: 'Skip', exact: true }).click();
  await skipped;
  await finalImage(before);
  const twoImages = await serverJob(skipId);
  const seen = await evaluate('window.imageSteps');
  const stepsOf = (n) => seen.filter((t) => t.startsWith(`Running: image ${n} of 2 | step`)).map((t) => Number(/step (\d+)/.exec(t)[1]));
  const firstSteps = stepsOf(1), secondSteps = stepsOf(2);
  const thumbCount = await evaluate(`document.querySelectorAll('#result-images button').length`);
  if (twoImages.status !== 'done' || twoImages.images?.length !== 2 || thumbCount !== 2 || !secondSteps.length
      || Math.max(...firstSteps) >= SKIP_STEPS) {
    fail(`Skip in a job of two images: the job is ${twoImages.status} with ${twoImages.images?.length} image(s), ${thumbCount} shown; `
      + `steps seen of image 1: ${firstSteps.at(-1)}, of image 2: ${secondSteps.at(-1)}`);
  }
  pass(`Skip in a job of two images: image 1 stopped at step ${Math.max(...firstSteps)} of ${SKIP_STEPS}, image 2 ran to step ${Math.max(...secondSteps)}; the job ended done with its 2 images shown`);
  await evaluate('window.stepObserver.disconnect()');
  await page.fill('#batch-count', '1');

  // A full queue: jobs sent directly until the server answers 429, then the page's job gets the same answer, shown.
  const direct = [];
  let full = null;
  for (let i = 0; i < 40 && !full; ++i) {
    const answer = await fetch(new URL('/v1/jobs', serverUrl), {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'filling the queue', width: QUEUE_SIZE, height: QUEUE_SIZE, steps: Number(QUEUE_STEPS) }),
    });
    const body = await answer.json();
    if (answer.status === 429) full = body?.error?.message ?? '';
    else if (answer.status === 202) direct.push(body.id);
    else fail(`filling the queue: HTTP ${answer.status} ${JSON.stringify(body)}`);
  }
  if (full === null) fail(`the server took ${direct.length} jobs without a 429`);
  await page.fill('#prompt', 'one job too many');
  await generate.click();
  const fullShown = await waitFor('the page shows the 429', `(() => {
    const e = document.getElementById('error');
    return !e.hidden && e.innerText.includes(${JSON.stringify(full)}) ? e.innerText.replace(/\\s+/g, ' ') : '';
  })()`, 5_000);
  for (const id of direct) await fetch(new URL(`/v1/jobs/${id}`, serverUrl), { method: 'DELETE' });
  await until('the jobs that filled the queue are cancelled', async () => (await Promise.all(direct.map(serverJob))).every((j) => j.status === 'cancelled'), 15_000);
  for (const id of direct) await fetch(new URL(`/v1/jobs/${id}?purge=1`, serverUrl), { method: 'DELETE' });
  const queueEmpty = await evaluate(`document.querySelectorAll('#queue-list li').length === 0 && document.getElementById('cancel').hidden`);
  if (!queueEmpty) fail('the refused job shows in the queue list');
  pass(`with the queue full (${direct.length} jobs sent directly, one running) the page shows the server's 429: "${fullShown}"`);
  forgiveFailedRequests(429);
  checkClean('after batches and skip');
}

// ---- the studio walk (issue 24) ----

// Decodes an image in the page (a data: or server URL, or a PNG as base64): its size and RGBA pixels.
function decodeImage(source) {
  return page.evaluate(async (src) => {
    const img = new Image();
    img.src = /^(data:|blob:|\/|https?:)/.test(src) ? src : `data:image/png;base64,${src}`;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(img, 0, 0);
    return { w: c.width, h: c.height, px: [...ctx.getImageData(0, 0, c.width, c.height).data] };
  }, source);
}

// The largest difference of any channel between image `got` and what `want(x, y)` says its pixel [r, g, b] should be.
function maxPixelDifference(got, want) {
  let worst = { diff: 0, at: '' };
  for (let y = 0; y < got.h; ++y) {
    for (let x = 0; x < got.w; ++x) {
      const expected = want(x, y);
      for (let c = 0; c < 3; ++c) {
        const diff = Math.abs(got.px[(y * got.w + x) * 4 + c] - expected[c]);
        if (diff > worst.diff) worst = { diff, at: `(${x}, ${y})` };
      }
    }
  }
  return worst;
}

const pixelOf = (image, x, y) => image.px.slice((y * image.w + x) * 4, (y * image.w + x) * 4 + 3);

// The text chunks of a PNG file (tEXt, iTXt and zTXt), keyword -> text.
function pngText(bytes) {
  const signature = [137, 80, 78, 71, 13, 10, 26, 10];
  if (!signature.every((b, i) => bytes[i] === b)) fail('the download is not a PNG file');
  const chunks = {};
  for (let at = 8; at + 8 <= bytes.length;) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    const data = bytes.subarray(at + 8, at + 8 + length);
    const nul = data.indexOf(0);
    const keyword = data.toString('latin1', 0, nul);
    if (type === 'tEXt') chunks[keyword] = data.toString('latin1', nul + 1);
    if (type === 'zTXt') chunks[keyword] = inflateSync(data.subarray(nul + 2)).toString('latin1');
    if (type === 'iTXt') {
      const compressed = data[nul + 1] === 1;
      let rest = nul + 3;
      rest = data.indexOf(0, rest) + 1;  // language tag
      rest = data.indexOf(0, rest) + 1;  // translated keyword
      const text = data.subarray(rest);
      chunks[keyword] = (compressed ? inflateSync(text) : text).toString('utf8');
    }
    at += 12 + length;
  }
  return chunks;
}

// Polls `check` (in this process) until it returns something truthy.
async function until(description, check, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) fail(`${description}: not within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

const galleryIds = () => evaluate(`[...document.querySelectorAll('#gallery-list li')].map((li) => li.dataset.jobId)`);
const serverJobs = async (query) => (await (await fetch(new URL(`/v1/jobs?limit=50&${query}`, serverUrl))).json()).jobs;
const usageText = () => evaluate(`document.getElementById('usage').textContent`);
const isJobsList = (url) => new URL(url).pathname === '/v1/jobs';

// Issue 24's walk, on the embedded model: txt2img -> send to img2img -> paint a mask -> inpaint (whole picture,
// then only masked) -> outpaint one side -> restore the settings from the result dropped as a PNG -> find it in the
// history -> download; then reuse a seed, delete a job, the page at two widths, and back to txt2img.
async function studio(native) {
  // txt2img, its live previews recorded: the step shown with each new preview image, and the first step the page
  // saw at all (the job starts before the page has its id and connects to its events: steps before it are not seen).
  await page.selectOption('#model', native.name);
  await page.fill('#prompt', STUDIO_PROMPT);
  for (const [id, value] of [['width', STUDIO_SIZE], ['height', STUDIO_SIZE], ['steps', STUDIO_STEPS], ['seed', 11]]) {
    await page.fill(`#${id}`, String(value));
  }
  await evaluate(`(() => {
    window.previewSteps = [];
    window.stepsSeen = [];
    new MutationObserver(() => {
      const step = /^step (\\d+)\\//.exec(document.getElementById('step-text').textContent);
      if (step) window.stepsSeen.push(Number(step[1]));
    }).observe(document.getElementById('step-text'), { childList: true, characterData: true, subtree: true });
    let shown = '';
    new MutationObserver(() => {
      const src = document.getElementById('result-image').getAttribute('src') ?? '';
      if (!src.startsWith('data:') || src === shown) return;
      shown = src;
      const step = /step (\\d+)/.exec(document.getElementById('result-caption').textContent);
      window.previewSteps.push(step ? Number(step[1]) : -1);
    }).observe(document.getElementById('result-image'), { attributeFilter: ['src'] });
  })()`);
  const usageAsked = requests.filter((r) => new URL(r).pathname === '/v1/usage').length;
  const t2i = await generateWithClick('the studio txt2img');
  const t2iJob = await resultJobId();
  if (t2i.size !== `${STUDIO_SIZE}x${STUDIO_SIZE}` || 'init_images' in t2i.body) fail(`the studio txt2img: ${t2i.size}, ${Object.keys(t2i.body)}`);
  const previewSteps = await evaluate('window.previewSteps');
  const firstSeen = (await evaluate('window.stepsSeen'))[0] ?? STUDIO_STEPS;
  // From the first step the page saw to the last step: each new preview is a mark.
  const marks = [firstSeen, ...previewSteps, STUDIO_STEPS];
  const gaps = marks.slice(1).map((step, i) => step - marks[i]);
  console.log(`     the page saw its first step at ${firstSeen} of ${STUDIO_STEPS}; new preview images at steps ${previewSteps.join(', ') || '(none)'}`);
  if (previewSteps.includes(-1) || Math.max(...gaps) > MAX_PREVIEW_GAP) {
    fail(`a new preview image should show at least every ${MAX_PREVIEW_GAP} steps; over ${STUDIO_STEPS} steps at `
      + `${STUDIO_SIZE}x${STUDIO_SIZE} on ${native.name} the page saw step ${firstSeen} first and new previews at steps [${previewSteps}] `
      + `(gaps from the first step seen to the last step: ${gaps})`);
  }
  pass(`txt2img ${t2i.size} in ${t2i.seconds} s: ${previewSteps.length} new preview images from step ${firstSeen}, at most ${Math.max(...gaps)} steps apart`);
  // Not failed: the steps before the page's event stream is open are not the preview cadence (on a loaded 2-core
  // machine the stream has opened as late as step 11 of 20).
  if (firstSeen > MAX_PREVIEW_GAP) {
    console.log(`note the page saw no step before step ${firstSeen}: the job ran that far before its event stream was open`);
  }

  // The usage line: asked for again after the job; on this open server, no key, unlimited, no rate limit.
  await until('the page asks GET /v1/usage after the job', () => requests.filter((r) => new URL(r).pathname === '/v1/usage').length > usageAsked);
  const usageAnswer = await fetch(new URL('/v1/usage', serverUrl));
  if (!usageAnswer.ok) fail(`GET /v1/usage answered HTTP ${usageAnswer.status}: ${(await usageAnswer.text()).slice(0, 200)}`);
  const usage = await usageAnswer.json();
  const wantUsage = 'No key (open server): not counted, unlimited · no rate limit';
  if (usage.key !== null || usage.quota_per_day !== null || usage.rate_per_min !== null || usage.images_today !== null) {
    fail(`GET /v1/usage on the open test server: ${JSON.stringify(usage)}`);
  }
  await until(`the usage line reads '${wantUsage}'`, async () => await usageText() === wantUsage);
  pass(`the usage line after the job: "${wantUsage}" (GET /v1/usage: ${JSON.stringify(usage)})`);

  // Send to img2img; the inpainting options at their defaults.
  await page.locator('#result-caption').getByRole('button', { name: 'Send to img2img' }).click();
  const editor = await waitFor('the starting image is in the editor', `(() => {
    const c = document.getElementById('init-canvas');
    return !document.getElementById('init-editor').hidden && document.getElementById('img2img').open && c.width > 0
      ? { w: c.width, h: c.height, width: document.getElementById('width').value, height: document.getElementById('height').value,
          focus: document.activeElement?.id, fill: document.getElementById('inpainting-fill').value,
          area: document.getElementById('inpaint-area').value, padding: document.getElementById('inpaint-padding').disabled } : '';
  })()`, 5_000, errorShown);
  if (editor.width !== String(editor.w) || editor.height !== String(editor.h) || editor.focus !== 'denoising'
      || editor.fill !== '1' || editor.area !== 'whole' || !editor.padding) {
    fail(`after "Send to img2img": ${JSON.stringify(editor)}`);
  }
  pass(`"Send to img2img" put the ${editor.w}x${editor.h} result into the editor; the size follows it, focus on Denoising strength; masked content "original", whole picture`);

  // Paint a stroke with the mouse and inpaint the whole picture.
  await page.fill('#denoising', '0.6');
  await evaluate(`document.getElementById('brush-size').value = '6'`);
  await page.locator('#mask-canvas').scrollIntoViewIfNeeded();
  const box = await page.locator('#mask-canvas').boundingBox();
  await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.6, { steps: 8 });
  await page.mouse.up();
  const stateText = await evaluate(`document.getElementById('img2img-state').textContent`);
  if (stateText !== '(inpainting)') fail(`after painting, the section says "${stateText}"`);
  const inpaint = await generateWithClick('inpainting');
  const b = inpaint.body;
  if (!b.init_images?.[0] || !b.mask || b.denoising_strength !== 0.6 || b.mask_blur !== 4 || b.inpainting_mask_invert !== 0
      || b.inpainting_fill !== 1 || b.inpaint_full_res !== false || 'inpaint_full_res_padding' in b
      || b.width !== editor.w || b.height !== editor.h) {
    fail(`the inpainting request: ${JSON.stringify({ ...b, init_images: b.init_images?.length, mask: b.mask?.length })}`);
  }
  const mask = await decodeImage(b.mask);
  let white = 0;
  for (let i = 0; i < mask.px.length; i += 4) white += mask.px[i] > 128;
  // A 6-pixel stroke from 20% to 70% across: some pixels white, the top-left corner black.
  if (white === 0 || white > mask.w * mask.h / 2 || mask.px[0] !== 0 || mask.w !== editor.w) fail(`the mask sent: ${white} white of ${mask.w}x${mask.h}`);
  if (inpaint.size !== `${editor.w}x${editor.h}`) fail(`the inpainted image is ${inpaint.size}`);
  const info = await infotext();
  if (!info.includes('Denoising strength: 0.6') || !info.includes('Mask blur: 4')) fail(`the inpainted image's infotext: ${info}`);
  pass(`a painted stroke inpainted (${inpaint.size} in ${inpaint.seconds} s): mask ${white}/${mask.w * mask.h} px white; inpainting_fill 1, inpaint_full_res false, denoising 0.6, mask blur 4 sent; the infotext has them`);

  // Only masked: the masked area drawn at the model's native size (the size fields), the result at the image's.
  await page.selectOption('#inpaint-area', 'masked');
  const onlyMasked = await evaluate(`({ size: document.getElementById('width').value + 'x' + document.getElementById('height').value,
    padding: !document.getElementById('inpaint-padding').disabled && document.getElementById('inpaint-padding').value })`);
  if (onlyMasked.size !== `${native.width}x${native.height}` || onlyMasked.padding !== '32') {
    fail(`"Only masked" should set the size fields to ${native.width}x${native.height} and offer padding 32: ${JSON.stringify(onlyMasked)}`);
  }
  await page.fill('#inpaint-padding', '16');
  await page.selectOption('#inpainting-fill', { label: 'latent noise' });
  const masked = await generateWithClick('inpainting only masked');
  const maskedJob = await resultJobId();
  const mb = masked.body;
  const maskedInit = await decodeImage(mb.init_images?.[0] ?? '');
  if (mb.inpainting_fill !== 2 || mb.inpaint_full_res !== true || mb.inpaint_full_res_padding !== 16 || !mb.mask
      || mb.width !== native.width || mb.height !== native.height || maskedInit.w !== editor.w || maskedInit.h !== editor.h) {
    fail(`the "only masked" request: ${JSON.stringify({ ...mb, init_images: `${maskedInit.w}x${maskedInit.h}`, mask: mb.mask?.length })}`);
  }
  if (masked.size !== `${editor.w}x${editor.h}`) {
    fail(`inpainting only masked (processed at ${mb.width}x${mb.height}) gave a ${masked.size} image; the contract: the init image's size, ${editor.w}x${editor.h}`);
  }
  pass(`"Only masked": inpaint_full_res true, padding 16, masked content "latent noise" (2), processed at ${mb.width}x${mb.height}; the result keeps the image's ${masked.size} (${masked.seconds} s)`);

  // Outpainting: the inpainted result sent on, extended on the left by the default 64 px.
  const inpainted = await evaluate(`document.getElementById('result-image').getAttribute('src')`);
  await page.locator('#result-caption').getByRole('button', { name: 'Send to img2img' }).click();
  await waitFor('the inpainted result is the starting image, whole picture again', `(() => {
    return document.getElementById('img2img-state').textContent === '(image to image)'
      && document.getElementById('inpaint-area').value === 'whole'
      && document.getElementById('width').value === '${editor.w}' && document.activeElement?.id === 'denoising';
  })()`, 5_000, errorShown);
  const source = await decodeImage(inpainted);
  await page.selectOption('#outpaint-side', 'left');
  const added = Number(await fieldValue('outpaint-pixels'));
  if (added !== 64) fail(`"Pixels to add" starts at ${added}, not 64`);
  await page.getByRole('button', { name: 'Extend canvas' }).click();
  const wide = { w: source.w + added, h: source.h };
  const extended = await evaluate(`({
    w: document.getElementById('init-canvas').width, h: document.getElementById('init-canvas').height,
    size: document.getElementById('width').value + 'x' + document.getElementById('height').value,
    fill: document.getElementById('inpainting-fill').value, state: document.getElementById('img2img-state').textContent,
    note: document.getElementById('outpaint-note').textContent,
  })`);
  if (extended.w !== wide.w || extended.h !== wide.h || extended.size !== `${wide.w}x${wide.h}` || extended.fill !== '0'
      || extended.state !== '(inpainting)') {
    fail(`after "Extend canvas" (left, ${added} px): ${JSON.stringify(extended)}`);
  }
  const blur = 4;
  const out = await generateWithClick('outpainting');
  const outJob = await resultJobId();
  const ob = out.body;
  const outInit = await decodeImage(ob.init_images?.[0] ?? '');
  const outMask = await decodeImage(ob.mask ?? '');
  if (outInit.w !== wide.w || outInit.h !== wide.h || outMask.w !== wide.w || ob.inpainting_fill !== 0 || ob.inpaint_full_res !== false
      || ob.width !== wide.w || ob.height !== wide.h || ob.mask_blur !== blur) {
    fail(`the outpainting request: ${JSON.stringify({ ...ob, init_images: `${outInit.w}x${outInit.h}`, mask: `${outMask.w}x${outMask.h}` })}`);
  }
  // The old image on the right, the new strip its first column stretched; the mask white over the strip and `blur`
  // pixels into the old image, black elsewhere.
  const placed = maxPixelDifference(outInit, (x, y) => pixelOf(source, Math.max(0, x - added), y));
  const masking = maxPixelDifference(outMask, (x) => (x < added + blur ? [255, 255, 255] : [0, 0, 0]));
  if (placed.diff > 1 || masking.diff > 1) {
    fail(`the outpainting init image differs from the expected one by ${placed.diff} at ${placed.at}, its mask by ${masking.diff} at ${masking.at}`);
  }
  if (out.size !== `${wide.w}x${wide.h}`) fail(`the outpainted image is ${out.size}`);
  pass(`outpainted left by ${added} px (${out.size} in ${out.seconds} s): the image placed right, the strip stretched from its edge, the mask over the strip and ${blur} px into the image, inpainting_fill 0; "${extended.note}"`);

  // The result dropped on "Image info" as a PNG; its settings restored into the form.
  const outSrc = await evaluate(`document.getElementById('result-image').getAttribute('src')`);
  const transfer = await page.evaluateHandle(async (url) => {
    const data = new DataTransfer();
    data.items.add(new File([await (await fetch(url)).arrayBuffer()], 'outpainted.png', { type: 'image/png' }));
    return data;
  }, outSrc);
  await page.locator('#verify-drop').scrollIntoViewIfNeeded();
  await page.dispatchEvent('#verify-drop', 'dragover', { dataTransfer: transfer });
  await page.dispatchEvent('#verify-drop', 'drop', { dataTransfer: transfer });
  const fields = await waitFor('the dropped PNG\'s settings are listed', `(() => {
    if (!document.getElementById('verify-verdict').textContent.includes('outpainted.png')) return '';
    const list = document.getElementById('image-settings-list');
    const names = [...list.querySelectorAll('dt')].map((d) => d.textContent);
    const values = [...list.querySelectorAll('dd')].map((d) => d.textContent);
    return !document.getElementById('image-settings').hidden && names.length ? Object.fromEntries(names.map((n, i) => [n, values[i]])) : '';
  })()`, 10_000, errorShown);
  if (fields.Prompt !== STUDIO_PROMPT || fields.Size !== `${wide.w}x${wide.h}` || !fields.Seed) fail(`the outpainted PNG's settings: ${JSON.stringify(fields)}`);
  await page.fill('#prompt', 'something else');
  await page.fill('#seed', '424242');
  await page.getByRole('button', { name: 'Restore these settings' }).click();
  const restored = await evaluate(`({ prompt: document.getElementById('prompt').value, seed: document.getElementById('seed').value,
    steps: document.getElementById('steps').value, size: document.getElementById('width').value + 'x' + document.getElementById('height').value })`);
  if (restored.prompt !== STUDIO_PROMPT || restored.seed !== fields.Seed || restored.steps !== fields.Steps || restored.size !== fields.Size) {
    fail(`"Restore these settings" from the dropped PNG filled ${JSON.stringify(restored)} from ${JSON.stringify(fields)}`);
  }
  pass(`the outpainted PNG dropped on "Image info": ${Object.keys(fields).length} settings listed, restored (seed ${restored.seed}, ${restored.size})`);

  // History: the studio's jobs found by a search in another case, then by model.
  const studioJobs = (await serverJobs(`q=${encodeURIComponent(STUDIO_SEARCH)}`)).map((j) => j.id);
  const allJobs = await serverJobs('');
  const wantStudio = [outJob, maskedJob, inpaint.jobId, t2iJob];
  if (JSON.stringify(studioJobs) !== JSON.stringify(wantStudio) || allJobs.length <= wantStudio.length) {
    fail(`GET /v1/jobs?q=${STUDIO_SEARCH} gives ${JSON.stringify(studioJobs)} of ${allJobs.length} jobs; the studio's jobs, newest first, are ${JSON.stringify(wantStudio)}`);
  }
  await page.locator('#gallery-search').scrollIntoViewIfNeeded();
  await page.locator('#gallery-search').click();
  await page.keyboard.type(STUDIO_SEARCH);
  await until(`the gallery shows the ${wantStudio.length} studio jobs`, async () => JSON.stringify(await galleryIds()) === JSON.stringify(wantStudio));
  const searched = requests.filter((r) => isJobsList(r) && new URL(r).searchParams.get('q') === STUDIO_SEARCH);
  if (!searched.length) fail(`no GET /v1/jobs carried q=${STUDIO_SEARCH}`);
  pass(`searching "${STUDIO_SEARCH}" shows the ${wantStudio.length} studio jobs of ${allJobs.length} (${new URL(searched.at(-1)).search})`);

  await page.selectOption('#gallery-model', CONTROL_MODEL);
  await waitFor(`no studio job on ${CONTROL_MODEL}`, `document.querySelectorAll('#gallery-list li').length === 0
    && !document.getElementById('gallery-empty').hidden && document.getElementById('gallery-empty').textContent === 'No images match.'`, 5_000);
  await page.fill('#gallery-search', '');
  const onModel = (await serverJobs(`model=${CONTROL_MODEL}`)).map((j) => j.id);
  await until(`the gallery shows the ${onModel.length} jobs on ${CONTROL_MODEL}`, async () => JSON.stringify(await galleryIds()) === JSON.stringify(onModel));
  const modelTexts = await evaluate(`[...document.querySelectorAll('#gallery-list .entry-params')].map((p) => p.textContent)`);
  if (!onModel.length || onModel.length >= allJobs.length || !modelTexts.every((t) => t.includes(CONTROL_MODEL))) {
    fail(`filtering by ${CONTROL_MODEL}: ${onModel.length} of ${allJobs.length} jobs; entries ${JSON.stringify(modelTexts)}`);
  }
  await page.selectOption('#gallery-model', native.name);
  await page.fill('#gallery-search', STUDIO_SEARCH);
  await until('the studio jobs again, searched on the tiny model', async () => JSON.stringify(await galleryIds()) === JSON.stringify(wantStudio));
  const filtered = requests.filter((r) => isJobsList(r) && new URL(r).searchParams.get('model') === native.name && new URL(r).searchParams.get('q'));
  if (!filtered.length) fail(`no GET /v1/jobs carried both q and model=${native.name}`);
  pass(`filtering by model: ${onModel.length} job(s) on ${CONTROL_MODEL} (none of the studio's), the ${wantStudio.length} studio jobs on ${native.name} (${new URL(filtered.at(-1)).search})`);

  // Download the outpainted image from its entry: the PNG with its parameters.
  const entry = page.locator(`#gallery-list li[data-job-id="${outJob}"]`);
  const [download] = await Promise.all([page.waitForEvent('download'), entry.getByRole('link', { name: 'Download' }).click()]);
  const downloaded = join(artifactsDir, download.suggestedFilename());
  await download.saveAs(downloaded);
  const text = pngText(readFileSync(downloaded));
  if (download.suggestedFilename() !== `easel-${outJob}-0.png` || !text.parameters?.includes(STUDIO_PROMPT) || !text.parameters.includes(`Size: ${wide.w}x${wide.h}`)) {
    fail(`the download ${download.suggestedFilename()} has the text chunks ${JSON.stringify(text).slice(0, 400)}`);
  }
  console.log(`     download: ${downloaded}`);
  pass(`Download saved ${download.suggestedFilename()}: a PNG whose parameters name the prompt and ${wide.w}x${wide.h}`);

  // Reuse seed: the seed field only.
  await page.fill('#seed', '-1');
  const reuse = entry.getByRole('button', { name: 'Reuse seed' });
  const wantSeed = String(allJobs.find((j) => j.id === outJob)?.images?.[0]?.seed ?? allJobs.find((j) => j.id === outJob)?.params?.seed);
  await reuse.click();
  const reused = await evaluate(`({ seed: document.getElementById('seed').value, focus: document.activeElement?.id, prompt: document.getElementById('prompt').value })`);
  if (reused.seed !== wantSeed || reused.focus !== 'seed' || reused.prompt !== STUDIO_PROMPT) fail(`"Reuse seed": ${JSON.stringify(reused)}, the job's seed ${wantSeed}`);
  pass(`"Reuse seed" put seed ${wantSeed} into the seed field (focus there), the rest of the form untouched`);

  // Delete: answering "Cancel" to the question keeps the job; "OK" removes it and its images (DELETE ?purge=1).
  const deletes = [];
  const recordDelete = (request) => { if (request.method() === 'DELETE') deletes.push(request.url()); };
  page.on('request', recordDelete);
  page.once('dialog', (dialog) => dialog.dismiss());
  await page.locator(`#gallery-list li[data-job-id="${t2iJob}"]`).getByRole('button', { name: 'Delete' }).click();
  await sleep(300);
  if (deletes.length) fail(`dismissing the question still sent ${deletes}`);
  page.once('dialog', (dialog) => dialog.accept());
  const answer = page.waitForResponse((r) => r.request().method() === 'DELETE');
  await page.locator(`#gallery-list li[data-job-id="${maskedJob}"]`).getByRole('button', { name: 'Delete' }).click();
  const deleted = await answer;
  page.off('request', recordDelete);
  const deletedBody = await deleted.json().catch(() => null);
  if (new URL(deleted.url()).searchParams.get('purge') !== '1' || deleted.status() !== 200 || deletedBody?.deleted !== true || deletedBody?.id !== maskedJob) {
    fail(`DELETE ${deleted.url()}: HTTP ${deleted.status()} ${JSON.stringify(deletedBody)}`);
  }
  const left = wantStudio.filter((id) => id !== maskedJob);
  await until('the deleted job leaves the gallery', async () => JSON.stringify(await galleryIds()) === JSON.stringify(left));
  const gone = await fetch(new URL(`/v1/jobs/${maskedJob}`, serverUrl));
  const goneImage = await fetch(new URL(`/v1/jobs/${maskedJob}/images/0`, serverUrl));
  const afterDelete = await evaluate(`({ note: document.getElementById('gallery-note').textContent,
    focus: document.activeElement?.closest('li')?.dataset.jobId ?? document.activeElement?.id })`);
  if (gone.status !== 404 || goneImage.status !== 404 || !afterDelete.note.startsWith('Deleted') || afterDelete.focus !== left[1]) {
    fail(`after deleting: GET the job ${gone.status}, its image ${goneImage.status}, the page ${JSON.stringify(afterDelete)}`);
  }
  pass(`Delete asks first (dismissed: nothing sent), then DELETE ?purge=1 answers ${JSON.stringify(deletedBody)}; the job and its image are gone (404), focus on the next entry`);

  await accessibility();
  await keyboardReach();
  await outpaintSides();

  // "Remove image": txt2img again.
  await page.locator('#init-remove').click();
  const plain = await generateWithClick('txt2img after removing the image');
  if ('init_images' in plain.body || 'mask' in plain.body || 'inpainting_fill' in plain.body) {
    fail(`after "Remove image" the page still sent ${Object.keys(plain.body).join(', ')}`);
  }
  pass('"Remove image": the next request is txt2img again');
}

// The parts of the form only a diffusion transformer has, which are shown: {guidance, shift, slg, note}.
const modelParts = async () => ({
  guidance: await isShown(MODEL_PARTS.guidance),
  shift: await isShown(MODEL_PARTS.shift),
  slg: await isShown(MODEL_PARTS.slg),
  note: await evaluate(`document.getElementById('model-note').textContent`),
});
const modelOf = async (name) => (await (await fetch(new URL('/v1/models', serverUrl))).json()).models.find((m) => m.name === name);
// Waits until the parts shown are `want` (e.g. {guidance: false, shift: true, slg: true}) and returns modelParts().
async function waitForParts(what, want) {
  let parts = null;
  await until(what, async () => {
    parts = await modelParts();
    return Object.entries(want).every(([k, v]) => parts[k] === v);
  }).catch(() => fail(`${what}: the form shows ${JSON.stringify(parts)}, expected ${JSON.stringify(want)}`));
  return parts;
}
const sentModelKeys = (body) => MODEL_KEYS.filter((k) => k in body);

// SD3 and Flux (diffusion transformers): each model's own settings shown only when GET /v1/models says it takes them.
// A model the server has not loaded yet is described by nothing: the form says so and shows none, and the page
// asks again after its first job. SD3: the flow shift and skip-layer guidance, no distilled guidance; layers the
// transformer lacks are refused next to the field before anything is sent; with layers "1" and shift 3 the image's
// infotext names them, and "Restore these settings" puts them back. Flux: the distilled guidance at the model's
// default, sent (and in the infotext) when changed, the hidden skip-layer layers not sent. The embedded model: none.
async function transformerModels(native) {
  const initial = await modelOf(SD3_MODEL);
  if (!initial || !await modelOf(FLUX_MODEL)) fail(`GET /v1/models lacks ${SD3_MODEL} or ${FLUX_MODEL} (run_web_test.sh serves both)`);
  if (!('skip_layer_blocks' in initial) || !('flow' in initial) || !('distilled_guidance' in initial)) {
    fail(`GET /v1/models has no distilled_guidance, flow or skip_layer_blocks: ${JSON.stringify(initial)} (an easel built before them?)`);
  }
  // SD3, not loaded yet: none of its settings known; its first job loads it. CFG 5: skip-layer guidance needs CFG.
  await page.selectOption('#model', SD3_MODEL);
  await page.fill('#prompt', FLOW_PROMPT);
  for (const [id, value] of [['width', '32'], ['height', '32'], ['steps', '2'], ['seed', '3'], ['cfg-scale', '5']]) await page.fill(`#${id}`, value);
  if (initial.loaded === false) {
    const unknown = await waitForParts(`${SD3_MODEL}, not loaded, shows none of its settings`, { guidance: false, shift: false, slg: false });
    if (!/not loaded yet/.test(unknown.note)) fail(`${SD3_MODEL} is not loaded, and the form's note says '${unknown.note}'`);
    const first = await generateWithClick(`the first ${SD3_MODEL} image`);
    if (sentModelKeys(first.body).length) fail(`with none of its settings shown the page sent ${sentModelKeys(first.body)}`);
    pass(`${SD3_MODEL} not loaded: its settings hidden, the note "${unknown.note}"; its first image (${first.size} in ${first.seconds} s) sent none of them`);
  }
  const sd3 = await modelOf(SD3_MODEL);
  if (!sd3.loaded || sd3.flow !== true || sd3.distilled_guidance !== null || !(sd3.skip_layer_blocks >= 2)) {
    fail(`GET /v1/models describes the loaded ${SD3_MODEL} as ${JSON.stringify(sd3)}`);
  }
  const sd3Parts = await waitForParts(`${SD3_MODEL} loaded: the flow shift and skip-layer guidance, no distilled guidance`,
    { guidance: false, shift: true, slg: true, note: '' });
  const hint = await evaluate(`document.getElementById('slg-layers-hint').textContent`);
  if (!hint.includes(`0 to ${sd3.skip_layer_blocks - 1}`)) fail(`the layers hint says '${hint}'; the model has ${sd3.skip_layer_blocks} blocks`);
  pass(`${SD3_MODEL} (flow, ${sd3.skip_layer_blocks} blocks): the form shows ${JSON.stringify(sd3Parts)}; layers hint "${hint}"`);

  // Layers: reached with Tab from the model picker; a block the transformer lacks is refused next to the field.
  await page.focus('#model');
  await tabTo('slg-layers', { limit: 5 });
  const outside = String(sd3.skip_layer_blocks);
  await typeInto('slg-layers', outside);
  const refused = await waitFor('the layers field says which blocks there are', `(() => {
    const input = document.getElementById('slg-layers'), note = document.getElementById('slg-layers-error');
    return note && input.getAttribute('aria-invalid') === 'true' && (input.getAttribute('aria-describedby') ?? '').includes('slg-layers-error')
      ? note.textContent : '';
  })()`, 5_000);
  const sentBefore = jobBodies.length;
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  const stopped = await waitFor('Generate with a wrong layer shows the error', `document.getElementById('error').hidden ? '' : document.getElementById('error').textContent`, 5_000);
  await sleep(200);
  if (jobBodies.length !== sentBefore) fail(`layers "${outside}" were sent: ${JSON.stringify(jobBodies.at(-1)).slice(0, 300)}`);
  if (!refused.includes(`0 to ${sd3.skip_layer_blocks - 1}`) || !(await isShown('#slg-layers-error'))) {
    fail(`layers "${outside}": the note next to the field says '${refused}'`);
  }
  await page.focus('#slg-layers');
  await typeInto('slg-layers', '1');
  if (await evaluate(`Boolean(document.getElementById('slg-layers-error')) || document.getElementById('slg-layers').hasAttribute('aria-invalid')`)) {
    fail('layers "1": the field is still marked wrong');
  }
  pass(`layers "${outside}" refused next to the field ("${refused}"), nothing sent ("${stopped}"); "1" accepted`);

  // The flow shift and skip-layer guidance sent, named by the infotext.
  await tabTo('flow-shift', { backwards: true, limit: 10 });
  await typeInto('flow-shift', '3');
  const slg = await generateWithClick('SD3 with skip-layer guidance');
  const want = { shift: 3, slg_layers: [1], slg_scale: 2.8, slg_start: 0.01, slg_stop: 0.2 };
  const got = Object.fromEntries(MODEL_KEYS.filter((k) => k in slg.body).map((k) => [k, slg.body[k]]));
  if (JSON.stringify(got) !== JSON.stringify(want)) fail(`the SD3 request carried ${JSON.stringify(got)}; expected ${JSON.stringify(want)}`);
  const slgInfo = await infotext();
  if (!/\bSLG layers: "?1"?(,|$)/m.test(slgInfo) || !/\bShift: 3(\.0)?(,|$)/m.test(slgInfo) || !slgInfo.includes('SLG scale: 2.8')) {
    fail(`the SD3 image's infotext lacks its skip-layer guidance or shift: ${slgInfo}`);
  }
  pass(`SD3 with layers 1 and shift 3 (${slg.size} in ${slg.seconds} s): sent ${JSON.stringify(got)}; infotext: ${slgInfo.split('\n').at(-1)}`);

  await accessibility('sd3', [['desktop', DESKTOP], ['360px', PHONE]], { reclose: true, include: ['#generate-form'] });
  await keyboardReach();

  // "Restore these settings" from the image: its shift and skip-layer guidance back in the form.
  const src = await evaluate(`document.getElementById('result-image').getAttribute('src')`);
  const transfer = await page.evaluateHandle(async (url) => {
    const data = new DataTransfer();
    data.items.add(new File([await (await fetch(url)).arrayBuffer()], 'sd3-slg.png', { type: 'image/png' }));
    return data;
  }, src);
  await page.locator('#verify-drop').scrollIntoViewIfNeeded();
  await page.dispatchEvent('#verify-drop', 'dragover', { dataTransfer: transfer });
  await page.dispatchEvent('#verify-drop', 'drop', { dataTransfer: transfer });
  const fields = await waitFor('the SD3 image\'s settings are listed', `(() => {
    const verdict = document.getElementById('verify-verdict').textContent;
    if (!verdict.includes('sd3-slg.png') || verdict.startsWith('Checking')) return '';
    const list = document.getElementById('image-settings-list');
    const names = [...list.querySelectorAll('dt')].map((d) => d.textContent);
    const values = [...list.querySelectorAll('dd')].map((d) => d.textContent);
    return !document.getElementById('image-settings').hidden && names.length ? Object.fromEntries(names.map((n, i) => [n, values[i]])) : '';
  })()`, 10_000, errorShown);
  if (fields['SLG layers'] !== '1' || Number(fields.Shift) !== 3 || Number(fields['SLG stop']) !== 0.2) fail(`the SD3 image's settings: ${JSON.stringify(fields)}`);
  for (const [id, value] of [['slg-layers', ''], ['flow-shift', ''], ['slg-scale', '9'], ['slg-stop', '0.9']]) await page.fill(`#${id}`, value);
  await page.getByRole('button', { name: 'Restore these settings' }).click();
  const restored = await evaluate(`Object.fromEntries(['model', 'slg-layers', 'flow-shift', 'slg-scale', 'slg-start', 'slg-stop']
    .map((id) => [id, document.getElementById(id).value]))`);
  const wantRestored = { model: SD3_MODEL, 'slg-layers': '1', 'flow-shift': '3', 'slg-scale': '2.8', 'slg-start': '0.01', 'slg-stop': '0.2' };
  if (JSON.stringify(restored) !== JSON.stringify(wantRestored)) fail(`"Restore these settings" filled ${JSON.stringify(restored)} from ${JSON.stringify(fields)}`);
  pass(`"Restore these settings" from the SD3 image: ${JSON.stringify(restored)}`);

  // Flux: not loaded yet, then its distilled guidance at the model's default; changed, it is sent.
  await page.selectOption('#model', FLUX_MODEL);
  if ((await modelOf(FLUX_MODEL)).loaded === false) {
    await waitForParts(`${FLUX_MODEL}, not loaded, shows none of its settings`, { guidance: false, shift: false, slg: false });
    const first = await generateWithClick(`the first ${FLUX_MODEL} image`);
    if (sentModelKeys(first.body).length) fail(`with none of its settings shown the page sent ${sentModelKeys(first.body)}`);
  }
  const flux = await modelOf(FLUX_MODEL);
  if (!flux.loaded || flux.flow !== true || typeof flux.distilled_guidance !== 'number' || flux.skip_layer_blocks !== null) {
    fail(`GET /v1/models describes the loaded ${FLUX_MODEL} as ${JSON.stringify(flux)}`);
  }
  const fluxParts = await waitForParts(`${FLUX_MODEL} loaded: distilled guidance and the flow shift, no skip-layer guidance`,
    { guidance: true, shift: true, slg: false, note: '' });
  const guidance = await fieldValue('distilled-guidance');
  if (Number(guidance) !== flux.distilled_guidance) fail(`the distilled guidance field holds '${guidance}'; the model's default is ${flux.distilled_guidance}`);
  await page.fill('#flow-shift', '');
  await page.focus('#cfg-scale');
  await tabTo('distilled-guidance', { limit: 3 });
  await typeInto('distilled-guidance', '4.5');
  const dev = await generateWithClick('Flux with distilled guidance 4.5');
  const fluxKeys = Object.fromEntries(MODEL_KEYS.filter((k) => k in dev.body).map((k) => [k, dev.body[k]]));
  if (JSON.stringify(fluxKeys) !== JSON.stringify({ distilled_cfg_scale: 4.5 })) fail(`the Flux request carried ${JSON.stringify(fluxKeys)}`);
  const devInfo = await infotext();
  if (!devInfo.includes('Distilled CFG Scale: 4.5')) fail(`the Flux image's infotext lacks 'Distilled CFG Scale: 4.5': ${devInfo}`);
  pass(`${FLUX_MODEL}: the form shows ${JSON.stringify(fluxParts)}, distilled guidance ${guidance} (the model's default); 4.5 sent (${dev.size} in ${dev.seconds} s), the hidden layers not; infotext: ${devInfo.split('\n').at(-1)}`);

  // The embedded model: none of them, none sent.
  await page.selectOption('#model', native.name);
  await waitForParts(`${native.name}: none of the diffusion transformers' settings`, { guidance: false, shift: false, slg: false, note: '' });
  await page.fill('#width', '32');
  await page.fill('#height', '32');
  const plain = await generateWithClick(`${native.name} after SD3 and Flux`);
  if (sentModelKeys(plain.body).length) fail(`on ${native.name} the page sent ${sentModelKeys(plain.body)}`);
  pass(`${native.name}: none of the settings shown, none sent (${plain.size} in ${plain.seconds} s)`);
}

// The second server needs a key: the usage line says so until the key is typed, then shows the key's day (as
// DreamStudio shows credits), and counts the job made with it.
async function keyUsage() {
  if (!keyedUrl || !keyedSecret) {
    console.log('note the usage of a key with a quota is not checked: EASEL_WEB_KEYED_URL and EASEL_WEB_KEY are not set (run_web_test.sh sets them)');
    return;
  }
  const usageOf = async () => (await (await fetch(new URL('/v1/usage', keyedUrl), { headers: { Authorization: `Bearer ${keyedSecret}` } })).json());
  const describe = (u) => `Key "${u.key?.name}": ${u.images_today} of ${u.quota_per_day} images today (${u.images_left_today} left) · resets at `
    + `${u.resets_at?.slice(11, 16)} UTC · ${u.rate_per_min} requests/min`;
  await navigate(() => page.goto(keyedUrl.href));
  const refusal = await waitFor('the usage line says the server needs a key', `(() => {
    const u = document.getElementById('usage');
    return u.classList.contains('failed') && /API key/.test(u.textContent) ? u.textContent : '';
  })()`, 5_000, null, `'the usage line says: ' + document.getElementById('usage').textContent`);
  pass(`a server that needs a key, opened without one: "${refusal}" under the API key field`);

  await tabTo('api-key');
  await typeInto('api-key', keyedSecret);
  await press('Tab');  // the key is stored and the lists, the gallery and the usage are asked for again with it
  const before = await usageOf();
  if (before.quota_per_day !== 100 || before.rate_per_min !== 60 || before.key?.name !== 'web test' || before.images_left_today !== 100 - before.images_today) {
    fail(`GET /v1/usage for the key: ${JSON.stringify(before)}`);
  }
  await until(`the usage line reads '${describe(before)}'`, async () => await usageText() === describe(before));
  pass(`the key typed: "${describe(before)}" (GET /v1/usage: ${JSON.stringify(before)})`);

  await page.fill('#prompt', 'a key of its own');
  await page.fill('#steps', '4');
  const job = await generateWithClick('a job with the key');
  const after = await usageOf();
  if (after.images_today !== before.images_today + 1 || after.images_left_today !== before.images_left_today - 1) {
    fail(`after one image, GET /v1/usage says ${JSON.stringify(after)} (before: ${JSON.stringify(before)})`);
  }
  await until(`the usage line reads '${describe(after)}'`, async () => await usageText() === describe(after));
  pass(`a job with the key (${job.size} in ${job.seconds} s): "${describe(after)}"`);
  forgiveFailedRequests(401);
}

// "Extend canvas" on the other sides, without generating: a 48x32 image with a distinct colour in every pixel and
// one painted mask pixel; right, up, and down with "Invert mask" on (the inversion is kept in the new mask). Each
// time the old image must sit in place, the strip repeat the nearest row or column, and the mask cover the strip,
// "mask blur" pixels of the old image and the painted pixel (or all but it, inverted).
async function outpaintSides() {
  const results = [];
  for (const [side, invert] of [['right', false], ['up', false], ['down', true]]) {
    results.push(await page.evaluate(async ({ side, invert }) => {
      const w = 48, h = 32, add = 16, blur = 3;
      const c = document.createElement('canvas');
      c.width = w;
      c.height = h;
      const ctx = c.getContext('2d');
      const data = ctx.createImageData(w, h);
      for (let y = 0; y < h; ++y) for (let x = 0; x < w; ++x) data.data.set([x * 5, y * 8, (x + y) * 3, 255], (y * w + x) * 4);
      ctx.putImageData(data, 0, 0);
      const transfer = new DataTransfer();
      transfer.items.add(new File([await new Promise((done) => c.toBlob(done))], 'pattern.png', { type: 'image/png' }));
      const input = document.getElementById('init-file');
      input.files = transfer.files;
      input.dispatchEvent(new Event('change'));
      const image = document.getElementById('init-canvas'), mask = document.getElementById('mask-canvas');
      for (let i = 0; i < 50 && (image.width !== w || image.height !== h); ++i) await new Promise((done) => setTimeout(done, 20));
      mask.getContext('2d').fillStyle = '#fff';
      mask.getContext('2d').fillRect(2, 2, 1, 1);
      document.getElementById('mask-invert').checked = invert;
      document.getElementById('outpaint-side').value = side;
      document.getElementById('outpaint-pixels').value = String(add);
      document.getElementById('mask-blur').value = String(blur);
      document.getElementById('outpaint-extend').click();
      const W = image.width, H = image.height;
      // Read through a copy: reading the page's own canvases back makes Chromium warn about slow readbacks.
      const pixels = (canvas) => {
        const copy = document.createElement('canvas');
        copy.width = W;
        copy.height = H;
        const copyCtx = copy.getContext('2d', { willReadFrequently: true });
        copyCtx.drawImage(canvas, 0, 0);
        return copyCtx.getImageData(0, 0, W, H).data;
      };
      const px = pixels(image), mpx = pixels(mask);
      const oy = side === 'up' ? add : 0;
      let wrongPixels = 0, wrongMask = 0;
      for (let y = 0; y < H; ++y) {
        for (let x = 0; x < W; ++x) {
          const sx = Math.min(w - 1, x), sy = Math.min(h - 1, Math.max(0, y - oy));
          const i = (y * W + x) * 4;
          if ([sx * 5, sy * 8, (sx + sy) * 3].some((v, k) => Math.abs(px[i + k] - v) > 1)) ++wrongPixels;
          const inOld = x < w && y >= oy && y < oy + h;
          const fromEdge = side === 'right' ? w - 1 - x : side === 'up' ? y - oy : oy + h - 1 - y;
          const dot = x === 2 && y - oy === 2;
          if ((mpx[i + 3] > 128) !== (!inOld || fromEdge < blur || (invert ? !dot : dot))) ++wrongMask;
        }
      }
      return { side, invert, size: `${W}x${H}`, wrongPixels, wrongMask, invertAfter: document.getElementById('mask-invert').checked };
    }, { side, invert }));
  }
  const want = { right: '64x32', up: '48x48', down: '48x48' };
  const bad = results.filter((r) => r.size !== want[r.side] || r.wrongPixels || r.wrongMask || r.invertAfter);
  if (bad.length) fail(`"Extend canvas": ${JSON.stringify(bad)}`);
  pass(`"Extend canvas" right, up and down (inverted mask) on a 48x32 pattern: ${results.map((r) => `${r.side} ${r.size}`).join(', ')}, every pixel and mask pixel as expected`);
  await evaluate(`document.getElementById('mask-blur').value = '4'`);
}

// At desktop width and at 360 px: no sideways scrolling, a screenshot, and axe-core's rules with no serious or
// critical violation (every violation is printed). Every section is open, so that all controls are checked.
// `label` names the screenshots (LABEL-desktop.png, LABEL-360px.png); with `reclose`, the sections closed before
// are closed again afterwards; `include` (CSS selectors) limits axe-core to those parts of the page.
async function accessibility(label = 'studio', viewports = [['desktop', DESKTOP], ['360px', PHONE]], { reclose = false, include = [] } = {}) {
  await evaluate(`window.closedSections = [...document.querySelectorAll('details')].filter((d) => !d.open);
    document.querySelectorAll('details').forEach((d) => { d.open = true; })`);
  for (const [name, viewport] of viewports) {
    await page.setViewportSize(viewport);
    await sleep(100);
    const overflow = await evaluate(`(() => {
      const extra = document.documentElement.scrollWidth - document.documentElement.clientWidth;
      const wide = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > innerWidth + 0.5)
        .slice(0, 6).map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' to ' + Math.round(e.getBoundingClientRect().right) + ' px');
      return extra > 0 ? extra + ' px; too wide: ' + wide.join(', ') : '';
    })()`);
    if (overflow) fail(`at ${viewport.width} px the page scrolls sideways by ${overflow}`);
    await screenshot(`${label}-${name}.png`);
    const builder = new AxeBuilder({ page });
    for (const selector of include) builder.include(selector);
    const results = await builder.analyze();
    for (const v of results.violations) {
      console.log(`     axe (${viewport.width} px) ${v.impact} ${v.id}: ${v.help}; ${v.nodes.length} node(s): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    }
    const bad = results.violations.filter((v) => FAILING_IMPACTS.has(v.impact));
    if (bad.length) fail(`axe-core finds ${bad.length} serious or critical violation(s) at ${viewport.width} px: ${bad.map((v) => v.id).join(', ')}`);
    pass(`axe-core ${results.testEngine.version} at ${viewport.width} px${include.length ? ` on ${include.join(', ')}` : ''}: ${results.passes.length} rules pass, `
      + `${results.violations.length} violation(s), none serious or critical; ${results.incomplete.length} rule(s) to review by hand; no sideways scrolling`);
  }
  await page.setViewportSize({ width: 1024, height: 768 });
  if (reclose) await evaluate(`window.closedSections.forEach((d) => { d.open = false; })`);
}

// Every visible, enabled control is reached by Tab from the top of the page.
async function keyboardReach() {
  const count = await evaluate(`(() => {
    window.reached = new Set();
    document.addEventListener('focusin', (event) => window.reached.add(event.target));
    document.activeElement?.blur();
    window.scrollTo(0, 0);
    window.controls = [...document.querySelectorAll('input, select, textarea, button, a[href], summary, [tabindex]')]
      .filter((e) => e.checkVisibility() && !e.disabled && e.tabIndex >= 0);
    return window.controls.length;
  })()`);
  for (let i = 0; i < count + 10; ++i) await press('Tab');
  const missed = await evaluate(`window.controls.filter((e) => !window.reached.has(e))
    .map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' "' + (e.labels?.[0]?.textContent ?? e.textContent).trim().slice(0, 30) + '"')`);
  if (missed.length) fail(`${missed.length} of ${count} controls are not reached with Tab: ${missed.join(', ')}`);
  pass(`all ${count} visible controls are reached with Tab`);
}

// "Image info" (POST /v1/verify): the newest gallery image, which run_web_test.sh's server signed, dropped on
// the zone shows "signed" by a trusted signer; a copy with one byte of image data changed shows "tampered"; an
// image from elsewhere (the control image, no marks) chosen with the file picker shows "none".
async function checkImages() {
  const href = await evaluate(`document.querySelector('#gallery-list li a[download]')?.getAttribute('href') ?? ''`);
  if (!href) fail('no gallery image to check');
  const verdict = (previous) => waitFor('the check shows its verdict', `(() => {
    const v = document.getElementById('verify-verdict');
    return v.dataset.verdict && v.textContent !== ${JSON.stringify(previous)} && !v.textContent.startsWith('Checking')
      ? { verdict: v.dataset.verdict, text: v.textContent, details: document.getElementById('verify-details').innerText } : '';
  })()`, 10_000, `(() => { const v = document.getElementById('verify-verdict'); return v.getAttribute('role') === 'alert' ? v.textContent : ''; })()`);
  const drop = async (flip) => {
    const transfer = await page.evaluateHandle(async ({ url, flip }) => {
      const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
      if (flip) bytes[bytes.length - 20] ^= 1;  // inside the last IDAT chunk's data
      const data = new DataTransfer();
      data.items.add(new File([bytes], flip ? 'changed.png' : 'generated.png', { type: 'image/png' }));
      return data;
    }, { url: href, flip });
    await page.dispatchEvent('#verify-drop', 'dragover', { dataTransfer: transfer });
    await page.dispatchEvent('#verify-drop', 'drop', { dataTransfer: transfer });
  };
  await page.locator('#verify-file').scrollIntoViewIfNeeded();
  await drop(false);
  const signed = await verdict('');
  if (signed.verdict !== 'signed' || !/Trusted\s*yes/.test(signed.details) || !/AI-generated/.test(signed.details)) {
    fail(`the generated image checks as ${JSON.stringify(signed)}`);
  }
  pass(`a generated image dropped on "Image info": "${signed.text}", trusted signer, AI label shown`);

  // Its settings (PNG info): every infotext field listed; "Restore these settings" puts them back into the form.
  const settings = await evaluate(`(() => {
    const list = document.getElementById('image-settings-list');
    const names = [...list.querySelectorAll('dt')].map((d) => d.textContent);
    const values = [...list.querySelectorAll('dd')].map((d) => d.textContent);
    return { shown: !document.getElementById('image-settings').hidden, fields: Object.fromEntries(names.map((n, i) => [n, values[i]])) };
  })()`);
  const f = settings.fields;
  if (!settings.shown || !f.Prompt || !f.Seed || !f.Steps || !f.Size || !f.Model) {
    fail(`the image's settings are not listed: ${JSON.stringify(settings)}`);
  }
  await page.fill('#prompt', 'something else');
  await page.fill('#seed', '424242');
  await page.fill('#steps', '3');
  await page.getByRole('button', { name: 'Restore these settings' }).click();
  const form = await evaluate(`({
    prompt: document.getElementById('prompt').value, seed: document.getElementById('seed').value,
    steps: document.getElementById('steps').value,
    size: document.getElementById('width').value + 'x' + document.getElementById('height').value,
    model: document.getElementById('model').value, note: document.getElementById('restore-note').textContent,
    focus: document.activeElement?.id,
  })`);
  if (form.prompt !== f.Prompt || form.seed !== f.Seed || form.steps !== f.Steps || form.size !== f.Size || form.model !== f.Model
      || form.focus !== 'prompt') {
    fail(`"Restore these settings" filled ${JSON.stringify(form)} from ${JSON.stringify(f)}`);
  }
  pass(`its ${Object.keys(f).length} settings are listed (${Object.keys(f).join(', ')}) and restored into the form: "${form.note}"`);
  await drop(true);
  const tampered = await verdict(signed.text);
  if (tampered.verdict !== 'tampered' || !/do not match/.test(tampered.details)) fail(`the changed image checks as ${JSON.stringify(tampered)}`);
  pass(`the same image with one byte changed: "${tampered.text}"`);
  await page.setInputFiles('#verify-file', CONTROL_IMAGE);
  const none = await verdict(tampered.text);
  if (none.verdict !== 'none') fail(`an unmarked image checks as ${JSON.stringify(none)}`);
  pass(`an image from elsewhere, from the file picker: "${none.text}"`);
}

const fieldValue = (id) => evaluate(`document.getElementById(${JSON.stringify(id)}).value`);
const isShown = (selector) => page.locator(selector).isVisible();
const infotext = () => evaluate(`document.getElementById('result-infotext').textContent`);

// Clicks Generate and waits for the image of a new job; returns the body the page sent.
async function generateWithClick(what) {
  const previousJob = await resultJobId();
  const sent = jobBodies.length;
  const started = Date.now();
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  const size = await finalImage(previousJob);
  if (jobBodies.length !== sent + 1) fail(`${what}: the page sent ${jobBodies.length - sent} job requests`);
  return { body: jobBodies.at(-1), size, seconds: ((Date.now() - started) / 1000).toFixed(1), jobId: await resultJobId() };
}

// The ControlNet / IP-Adapter section (see the comment at the top).
async function controlUnits() {
  const withUnits = jobBodies.filter((b) => b && 'alwayson_scripts' in b);
  if (jobBodies.length < 4 || withUnits.length) {
    fail(`with the section closed, ${withUnits.length} of ${jobBodies.length} job request(s) carried alwayson_scripts`);
  }
  pass(`with the ControlNet / IP-Adapter section closed, none of the ${jobBodies.length} job requests carried alwayson_scripts`);
  const serverModels = (await (await fetch(new URL('/controlnet/model_list', serverUrl))).json()).model_list;
  const serverModules = (await (await fetch(new URL('/controlnet/module_list', serverUrl))).json()).module_list;

  // Open the section from the keyboard.
  await tabTo('controlnet-summary', { backwards: true });
  await press('Enter');
  if (!await evaluate(`document.getElementById('controlnet').open`) || !await isShown('#cn0-enabled')) {
    fail('Enter on the section\'s summary did not open it');
  }
  const lists = await evaluate(`({
    models: [...document.getElementById('cn0-model').options].map((o) => o.value).filter(Boolean),
    modules: [...document.getElementById('cn0-module').options].map((o) => o.value),
    enabled: [0, 1].map((i) => document.getElementById('cn' + i + '-enabled').checked),
  })`);
  const wantModules = serverModules.filter((m) => !m.startsWith('ip-adapter'));
  if (JSON.stringify([...lists.models].sort()) !== JSON.stringify([...serverModels].sort()) || !serverModels.includes(CONTROLNET)) {
    fail(`unit 1's model list is ${JSON.stringify(lists.models)}; GET /controlnet/model_list says ${JSON.stringify(serverModels)}`);
  }
  if (JSON.stringify(lists.modules) !== JSON.stringify(wantModules) || !wantModules.includes('canny')) {
    fail(`unit 1's ControlNet modules are ${JSON.stringify(lists.modules)}, expected ${JSON.stringify(wantModules)}`);
  }
  if (lists.enabled.some(Boolean)) fail(`units are on before any was used: ${JSON.stringify(lists.enabled)}`);
  if (await isShown('#cn0-threshold-a')) fail('the canny thresholds are shown for module none');
  pass(`Enter opens the section: 2 units, off; models ${lists.models.join(', ')}; ControlNet modules ${lists.modules.join(', ')}`);

  // Drop the control image on unit 1 (a DataTransfer holding the file, as a drag from the desktop gives).
  const controlBase64 = readFileSync(CONTROL_IMAGE).toString('base64');
  const transfer = await page.evaluateHandle((b64) => {
    const data = new DataTransfer();
    data.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'control_a.png', { type: 'image/png' }));
    return data;
  }, controlBase64);
  await page.dispatchEvent('#cn0-dropzone', 'dragover', { dataTransfer: transfer });
  await page.dispatchEvent('#cn0-dropzone', 'drop', { dataTransfer: transfer });
  const thumb = await waitFor('the dropped image shows as a thumbnail', `(() => {
    const img = document.getElementById('cn0-thumb');
    return !img.hidden && img.complete && img.naturalWidth > 0 ? img.naturalWidth + 'x' + img.naturalHeight : '';
  })()`, 5_000, errorShown);
  if (!await evaluate(`document.getElementById('cn0-enabled').checked`)) fail('dropping an image did not turn unit 1 on');
  const count = await evaluate(`document.getElementById('controlnet-count').textContent`);
  pass(`control_a.png dropped on unit 1: a ${thumb} thumbnail, the unit turned on, the summary says "${count}"`);

  // canny with its thresholds; Preview shows the map the server makes of the image.
  await page.selectOption('#cn0-module', 'canny');
  if (!await isShown('#cn0-threshold-a') || !await isShown('#cn0-threshold-b')) fail('choosing canny did not show its thresholds');
  await page.fill('#cn0-threshold-a', '50');
  await page.fill('#cn0-threshold-b', '150');
  await page.selectOption('#cn0-model', CONTROLNET);
  await page.getByRole('button', { name: 'Preview' }).first().click();
  const map = await waitFor('the preprocessed map appears beside the image', `(() => {
    const img = document.getElementById('cn0-map');
    return !img.hidden && img.complete && img.naturalWidth > 0 ? img.src : '';
  })()`, 5_000, errorShown);
  const detect = await (await fetch(new URL('/controlnet/detect', serverUrl), {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ controlnet_module: 'canny', controlnet_input_images: [controlBase64], controlnet_threshold_a: 50, controlnet_threshold_b: 150 }),
  })).json();
  if (map !== `data:image/png;base64,${detect.images?.[0]}`) fail('the preview is not the map POST /controlnet/detect gives for canny 50/150');
  pass('Preview shows the canny 50/150 map beside the image, the same as POST /controlnet/detect gives');

  // Generate with the unit on the model the ControlNet fits.
  await page.selectOption('#model', CONTROL_MODEL);
  await page.fill('#prompt', 'a red circle');
  for (const [id, value] of [['width', '32'], ['height', '32'], ['steps', '4'], ['seed', '5']]) await page.fill(`#${id}`, value);
  const cn = await generateWithClick('ControlNet generation');
  const args = cn.body?.alwayson_scripts?.controlnet?.args;
  const want = { enabled: true, module: 'canny', model: CONTROLNET, image: controlBase64, weight: 1, guidance_start: 0,
    guidance_end: 1, control_mode: 0, resize_mode: 1, threshold_a: 50, threshold_b: 150 };
  if (!Array.isArray(args) || args.length !== 1 || JSON.stringify(args[0]) !== JSON.stringify(want)) {
    fail(`the page sent the units ${JSON.stringify(args)?.slice(0, 400)}; expected [${JSON.stringify({ ...want, image: '(control_a.png)' })}]`);
  }
  const cnInfo = await infotext();
  const wantInfo = `ControlNet 0: "Module: canny, Model: ${CONTROLNET}, Weight: 1, Processor Res: 512, Threshold A: 50, Threshold B: 150`;
  if (!cnInfo.includes(wantInfo)) fail(`the result's infotext lacks '${wantInfo}': ${cnInfo}`);
  const cnEntry = await waitFor('the gallery shows the ControlNet job', `(() => {
    const text = document.querySelector('#gallery-list li')?.innerText ?? '';
    return text.includes('ControlNet ${CONTROLNET} (canny)') ? text.replace(/\\s+/g, ' ').trim() : '';
  })()`, 5_000);
  pass(`generated with the unit in ${cn.seconds} s (${cn.size}): the request carried it, the infotext has '${wantInfo}'; gallery: ${cnEntry}`);

  // Unit 2 as an IP-Adapter: its own modules and a guidance window, no preview or modes; the image from the file picker.
  await page.selectOption('#cn1-type', 'ip-adapter');
  const ip = await evaluate(`({
    modules: [...document.getElementById('cn1-module').options].map((o) => o.value),
    module: document.getElementById('cn1-module').value,
    label: document.querySelector('label[for="cn1-image"]').textContent,
  })`);
  const wantIp = serverModules.filter((m) => m.startsWith('ip-adapter'));
  if (JSON.stringify(ip.modules) !== JSON.stringify(wantIp) || ip.module !== 'ip-adapter-auto') {
    fail(`unit 2's IP-Adapter modules are ${JSON.stringify(ip.modules)} (${ip.module} chosen), expected ${JSON.stringify(wantIp)}`);
  }
  for (const hidden of ['#cn1-preview', '#cn1-control-mode', '#cn1-resize-mode', '#cn1-threshold-a']) {
    if (await isShown(hidden)) fail(`${hidden} is shown for an IP-Adapter unit`);
  }
  for (const shown of ['#cn1-guidance-start', '#cn1-guidance-end']) {
    if (!await isShown(shown)) fail(`${shown} is hidden for an IP-Adapter unit`);
  }
  await page.setInputFiles('#cn1-image', REFERENCE_IMAGE);
  await waitFor('the reference image shows as a thumbnail', `(() => {
    const img = document.getElementById('cn1-thumb');
    return !img.hidden && img.complete && img.naturalWidth > 0;
  })()`, 5_000, errorShown);
  await page.selectOption('#cn1-model', IP_ADAPTER);
  await page.fill('#cn1-weight', '0.6');
  await page.fill('#cn1-guidance-end', '0.5');
  const both = await generateWithClick('ControlNet and IP-Adapter generation');
  const ipArg = both.body?.alwayson_scripts?.controlnet?.args?.[1];
  const wantIpArg = { enabled: true, module: 'ip-adapter-auto', model: IP_ADAPTER, image: readFileSync(REFERENCE_IMAGE).toString('base64'), weight: 0.6, guidance_start: 0, guidance_end: 0.5 };
  if (JSON.stringify(ipArg) !== JSON.stringify(wantIpArg)) {
    fail(`the IP-Adapter unit went as ${JSON.stringify(ipArg)?.slice(0, 300)}`);
  }
  const bothInfo = await infotext();
  if (!bothInfo.includes(wantInfo) || !new RegExp(`ControlNet 1: "Module: ip-adapter[^,]*, Model: ${IP_ADAPTER}, Weight: 0.6, Guidance Start: 0, Guidance End: 0.5`).test(bothInfo)) {
    fail(`the infotext lacks the ControlNet or the IP-Adapter unit: ${bothInfo}`);
  }
  await screenshot('controlnet.png');
  pass(`unit 2 as an IP-Adapter (${ip.modules.length} ip-adapter modules, ip-adapter-auto chosen, a guidance window and no preview or modes, "${ip.label}" from the file picker, guidance end 0.5 sent): both units generated in ${both.seconds} s and are in the infotext`);

  // A ControlNet of another family: the server's 400, shown as the page shows errors.
  await page.uncheck('#cn1-enabled');
  await page.selectOption('#cn0-model', SDXL_CONTROLNET);
  const answer = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/v1/jobs');
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  const refused = await answer;
  const refusal = (await refused.json())?.error?.message ?? '';
  if (refused.status() !== 400 || !refusal.includes('does not fit the model')) {
    fail(`${SDXL_CONTROLNET} on ${CONTROL_MODEL}: HTTP ${refused.status()} "${refusal}"`);
  }
  if (jobBodies.at(-1)?.alwayson_scripts?.controlnet?.args?.length !== 1) fail('with unit 2 off, the page still sent it');
  const shownRefusal = await waitFor('the page shows the 400', `(() => {
    const e = document.getElementById('error');
    return !e.hidden && e.innerText.includes(${JSON.stringify(refusal)}) ? e.innerText.replace(/\\s+/g, ' ') : '';
  })()`, 5_000);
  pass(`${SDXL_CONTROLNET} on ${CONTROL_MODEL}: the page shows the server's 400: "${shownRefusal.slice(0, 160)}..."`);
  forgiveFailedRequests(400);

  // The page's own checks: a unit on without a model sends nothing.
  await page.selectOption('#cn0-model', CONTROLNET);
  await page.check('#cn1-enabled');
  await page.selectOption('#cn1-model', '');
  const before = jobBodies.length;
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  await waitFor('the page says unit 2 needs a model', `(() => {
    const e = document.getElementById('error');
    return !e.hidden && e.innerText.includes('Unit 2: choose a model');
  })()`, 5_000);
  await sleep(200);
  if (jobBodies.length !== before) fail('the page sent a job with a unit that has no model');
  pass('a unit on without a model: the page says "Unit 2: choose a model" and sends nothing');

  // Every unit off: nothing of the section is sent.
  await page.uncheck('#cn0-enabled');
  await page.uncheck('#cn1-enabled');
  const plain = await generateWithClick('generation with the units off');
  if ('alwayson_scripts' in (plain.body ?? {})) fail(`with every unit off the page sent ${JSON.stringify(plain.body.alwayson_scripts).slice(0, 200)}`);
  if ((await infotext()).includes('ControlNet')) fail(`with every unit off the infotext names a ControlNet: ${await infotext()}`);
  pass(`with every unit off (section open) the request has no alwayson_scripts (${plain.size} in ${plain.seconds} s)`);
}

// A full-page screenshot in the artifacts folder (its path printed), and at $EASEL_WEB_SCREENSHOT when set.
async function screenshot(name) {
  const file = join(artifactsDir, name);
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled', caret: 'hide' });
  console.log(`     screenshot: ${file}`);
  const wanted = name === 'page.png' ? process.env.EASEL_WEB_SCREENSHOT : '';
  if (wanted) {
    copyFileSync(file, resolve(wanted));
    console.log(`     screenshot: ${resolve(wanted)} (EASEL_WEB_SCREENSHOT)`);
  }
}

// Loads a page (by `start`, which waits for its load event) and waits until the page's script has started.
async function navigate(start) {
  const response = await start();
  if (!response?.ok()) fail(`cannot load ${serverUrl.href}: HTTP ${response?.status()}`);
  await waitFor('the page starts (body[data-ready])', 'document.body.dataset.ready === "true"', 10_000);
}

// The browser logs every request answered with an HTTP error as a console error; those the test provoked
// on purpose (with this status) are expected.
function forgiveFailedRequests(status) {
  const pattern = new RegExp(`^console\\.error: Failed to load resource: .*status of ${status}\\b`);
  const unexpected = problems.filter((p) => !pattern.test(p));
  problems.length = 0;
  problems.push(...unexpected);
}

function checkClean(when) {
  if (problems.length) fail(`console errors or exceptions ${when}:\n  ${problems.join('\n  ')}`);
  if (foreignRequests.length) fail(`requests outside ${serverUrl.origin} ${when}:\n  ${foreignRequests.join('\n  ')}`);
  pass(`no console errors, no exceptions, no requests outside ${serverUrl.origin} (${when})`);
}

let failure = null;
try {
  await main();
} catch (err) {
  failure = err instanceof TestFailure ? err.message : (err.stack ?? String(err));
  if (page && !page.isClosed()) {
    try {
      await screenshot('failure.png');
    } catch {
      // The page is gone; the message says why.
    }
  }
}
try {
  await browser?.close();
} catch {
  // Closing failed; Playwright kills Chromium when this process exits.
}
if (failure !== null) {
  // The page's own reads of /events end with net::ERR_ABORTED when it has the final event; those are normal.
  if (failedRequests.length) failure += `\nrequests that failed in the browser:\n  ${failedRequests.join('\n  ')}`;
  abort(failure);
}
console.log('PASS web page');
process.exit(0);
