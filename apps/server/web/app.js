// The page of `easel serve`: a form that queues a txt2img job, its live progress, and a gallery of past jobs.
// It talks only to the server that served it (same origin); every request carries the API key when one is set.
// Plain ES module, no build step: edit and reload with EASEL_WEB_DIR pointing at this folder.

const API_KEY_STORAGE = 'easel.api_key';
const TERMINAL_STATUSES = new Set(['done', 'failed', 'cancelled']);
const POLL_INTERVAL_MS = 300;
const GALLERY_LIMIT = 50;
// Images narrower than this (the embedded model draws 32x32) are shown enlarged with square pixels.
const SMALL_IMAGE_PX = 256;
// Selected at first when the server lists it: what POST /v1/jobs uses when no sampler is sent
// (Server::submit in apps/server/server.cpp), so that the form shows what a bare request would get.
const DEFAULT_SAMPLER = 'Euler a';
// What POST /v1/jobs uses for a model that recommends no CFG scale (GET /v1/models gives cfg_scale null).
const SD_DEFAULT_CFG_SCALE = 7;

const byId = (id) => document.getElementById(id);
const ui = {
  form: byId('generate-form'),
  prompt: byId('prompt'),
  negativePrompt: byId('negative-prompt'),
  width: byId('width'),
  height: byId('height'),
  sizePreset: byId('size-preset'),
  steps: byId('steps'),
  cfgScale: byId('cfg-scale'),
  seed: byId('seed'),
  sampler: byId('sampler'),
  scheduler: byId('scheduler'),
  model: byId('model'),
  extraNetwork: byId('extra-network'),
  apiKey: byId('api-key'),
  generate: byId('generate'),
  cancel: byId('cancel'),
  error: byId('error'),
  progressRow: byId('progress-row'),
  statusText: byId('status-text'),
  progress: byId('progress'),
  stepText: byId('step-text'),
  etaText: byId('eta-text'),
  result: byId('result'),
  resultImage: byId('result-image'),
  resultCaption: byId('result-caption'),
  galleryList: byId('gallery-list'),
  galleryEmpty: byId('gallery-empty'),
};

// Number inputs and the request fields they fill.
const NUMBER_FIELDS = [
  ['width', ui.width, 'Width'],
  ['height', ui.height, 'Height'],
  ['steps', ui.steps, 'Steps'],
  ['cfg_scale', ui.cfgScale, 'CFG scale'],
  ['seed', ui.seed, 'Seed'],
];

const state = {
  models: [],
  job: null,          // {id, started} while a job of this page is queued or running
  sizeEdited: false,  // the user typed a size: a model list arriving late must not overwrite it
  cfgEdited: false,   // the same for the CFG scale
  imageUrls: new Map(),  // server image path -> object URL, used when an API key must be sent with the request
};

class ApiError extends Error {
  constructor(message, detail) {
    super(message);
    this.detail = detail;
  }
}

// ---- requests ----

function authHeaders(headers = {}) {
  const key = ui.apiKey.value.trim();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

// Sends a request and returns the parsed JSON body; throws ApiError with the server's message on a non-2xx.
async function api(path, { method = 'GET', body } = {}) {
  const init = { method, headers: authHeaders() };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(`Cannot reach the server: ${err.message}`);
  }
  const text = await response.text();
  const data = parseJson(text);  // not JSON only matters for an error, where the raw text is shown instead
  if (!response.ok) {
    const message = data?.error?.message
      ?? `${response.status} ${response.statusText} ${data === null ? text.slice(0, 200) : ''}`.trim();
    throw new ApiError(message, data?.detail);
  }
  return data;
}

// An <img> cannot send an Authorization header, so with an API key the image is fetched here instead.
async function imageSource(path) {
  if (!ui.apiKey.value.trim()) return path;
  if (!state.imageUrls.has(path)) {
    const response = await fetch(path, { headers: authHeaders() });
    if (!response.ok) {
      const data = parseJson(await response.text());
      throw new ApiError(data?.error?.message ?? `Cannot load ${path}: ${response.status} ${response.statusText}`);
    }
    state.imageUrls.set(path, URL.createObjectURL(await response.blob()));
  }
  return state.imageUrls.get(path);
}

// ---- messages ----

function showError(err) {
  ui.error.replaceChildren(err.message ?? String(err));
  if (err.detail && err.detail !== err.message) {
    ui.error.append(element('small', {}, err.detail));
  }
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.replaceChildren();
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function formatSeconds(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

// One line with the parameters of a job, e.g. "seed 7 · 20 steps · Euler a, automatic · CFG 7 · 32×32 · tiny".
function describeParams(job) {
  const p = job.params ?? {};
  const parts = [];
  const seed = seedOf(job);
  if (seed !== undefined) parts.push(`seed ${seed}`);
  if (p.steps !== undefined) parts.push(`${p.steps} steps`);
  parts.push([p.sampler_name, p.scheduler].filter(Boolean).join(', '));
  if (p.cfg_scale !== undefined) parts.push(`CFG ${p.cfg_scale}`);
  if (p.width && p.height) parts.push(`${p.width}×${p.height}`);
  if (p.model ?? job.model) parts.push(p.model ?? job.model);
  return parts.filter(Boolean).join(' · ');
}

// The seed the job really used: the image's, else the resolved one in its parameters.
function seedOf(job) {
  return job.images?.[0]?.seed ?? job.params?.seed;
}

// ---- form ----

function fillSelect(select, items, selected) {
  const previous = select.value;
  select.replaceChildren(...items.map(({ value, label }) => element('option', { value }, label)));
  const wanted = [previous, selected].find((v) => v && items.some((item) => item.value === v));
  if (wanted) select.value = wanted;
}

// Selects `value`, adding it when the server's list does not have it (an alias, or an entry since removed),
// so that "Same seed again" always sends exactly what the job used.
function setSelect(select, value) {
  if (value === undefined || value === null || value === '') return;
  const match = [...select.options].find((o) => o.value.toLowerCase() === String(value).toLowerCase());
  if (!match) select.append(element('option', { value }, value));
  select.value = match ? match.value : value;
}

// The sizes a model draws well: its native area at the aspect ratios SDXL was trained on (1024x1024, 1152x896,
// 1216x832, 1344x768, 1536x640 and their portraits), scaled to its native side (512: 512x512, 576x448, ...),
// each side a multiple of 8.
const ASPECT_BUCKETS = [[1024, 1024], [1152, 896], [896, 1152], [1216, 832], [832, 1216], [1344, 768], [768, 1344],
  [1536, 640], [640, 1536]];

function sizePresets(side) {
  if (!side) return [];
  const round8 = (v) => Math.max(8, Math.round(v / 8) * 8);
  const seen = new Set();
  return ASPECT_BUCKETS.map(([w, h]) => [round8((w * side) / 1024), round8((h * side) / 1024)])
    .filter(([w, h]) => !seen.has(`${w}x${h}`) && seen.add(`${w}x${h}`));
}

// The preset matching the form's width and height, or "Custom".
function syncSizePreset() {
  const value = `${ui.width.value}x${ui.height.value}`;
  const match = [...ui.sizePreset.options].some((o) => o.value === value);
  ui.sizePreset.value = match ? value : '';
}

function fillSizePresets(model) {
  const presets = sizePresets(model?.width);
  fillSelect(ui.sizePreset, [{ value: '', label: 'Custom' },
    ...presets.map(([w, h]) => ({ value: `${w}x${h}`, label: `${w} × ${h}` }))]);
  syncSizePreset();
}

// A model's own defaults: its native size (and the sizes it draws well), and its recommended CFG scale (7, SD's
// usual, when it has none).
function applyModelDefaults(name, { keepEdits = false } = {}) {
  const model = state.models.find((m) => m.name === name);
  if (!model) return;
  if (model.width && model.height && !(keepEdits && state.sizeEdited)) {
    ui.width.value = model.width;
    ui.height.value = model.height;
  }
  fillSizePresets(model);
  if (!(keepEdits && state.cfgEdited)) ui.cfgScale.value = model.cfg_scale ?? SD_DEFAULT_CFG_SCALE;
}

// The LoRAs and embeddings the server has, as one list: choosing one adds A1111's tag (<lora:NAME:1>) or the
// embedding's name to the prompt, where the caret is.
function fillExtraNetworks(loras, embeddings) {
  const group = (label, items) => element('optgroup', { label }, ...items.map(({ value, label: text }) => element('option', { value }, text)));
  const groups = [];
  if (loras.length) groups.push(group('LoRA', loras.map((l) => ({ value: `<lora:${l.name}:1>`, label: l.alias && l.alias !== l.name ? `${l.name} (${l.alias})` : l.name }))));
  if (embeddings.length) groups.push(group('Embeddings', embeddings.map((name) => ({ value: name, label: name }))));
  const none = loras.length || embeddings.length ? 'Choose…' : 'None on this server';
  ui.extraNetwork.replaceChildren(element('option', { value: '' }, none), ...groups);
  ui.extraNetwork.disabled = !loras.length && !embeddings.length;
}

function insertIntoPrompt(text) {
  const el = ui.prompt;
  const at = el.selectionStart ?? el.value.length;
  const before = el.value.slice(0, at), after = el.value.slice(el.selectionEnd ?? at);
  const sep = before && !/[\s,]$/.test(before) ? ', ' : '';
  el.value = `${before}${sep}${text}${after}`;
  const caret = before.length + sep.length + text.length;
  el.setSelectionRange(caret, caret);
}

async function loadOptions() {
  const [models, samplers, schedulers, loras, embeddings] = await Promise.allSettled([
    api('/v1/models'), api('/sdapi/v1/samplers'), api('/sdapi/v1/schedulers'), api('/sdapi/v1/loras'),
    api('/sdapi/v1/embeddings'),
  ]);
  const failed = [models, samplers, schedulers, loras, embeddings].find((r) => r.status === 'rejected');
  if (failed) showError(failed.reason);
  fillExtraNetworks(loras.status === 'fulfilled' ? loras.value ?? [] : [],
    embeddings.status === 'fulfilled' ? Object.keys(embeddings.value?.loaded ?? {}) : []);
  if (models.status === 'fulfilled') {
    state.models = models.value?.models ?? [];
    const preferred = state.models.find((m) => m.default) ?? state.models[0];
    const before = ui.model.value;
    fillSelect(ui.model, state.models.map((m) => ({ value: m.name, label: m.title || m.name })), preferred?.name);
    if (!before) applyModelDefaults(ui.model.value, { keepEdits: true });
  }
  if (samplers.status === 'fulfilled') {
    fillSelect(ui.sampler, (samplers.value ?? []).map((s) => ({ value: s.name, label: s.name })), DEFAULT_SAMPLER);
  }
  if (schedulers.status === 'fulfilled') {
    fillSelect(ui.scheduler, (schedulers.value ?? []).map((s) => ({ value: s.name, label: s.label || s.name })));
  }
}

// The request body from the form; empty fields are left out so that the server's defaults apply.
function readForm() {
  const params = {
    prompt: ui.prompt.value,
    negative_prompt: ui.negativePrompt.value,
  };
  for (const [key, input, label] of NUMBER_FIELDS) {
    if (input.validity.badInput) throw new ApiError(`${label}: not a number`);
    if (input.value.trim() !== '') params[key] = Number(input.value);
  }
  for (const [key, select] of [['sampler_name', ui.sampler], ['scheduler', ui.scheduler], ['model', ui.model]]) {
    if (select.value) params[key] = select.value;
  }
  return params;
}

function fillForm(job) {
  const p = job.params ?? {};
  if (p.prompt !== undefined) ui.prompt.value = p.prompt;
  if (p.negative_prompt !== undefined) ui.negativePrompt.value = p.negative_prompt;
  for (const [key, input] of NUMBER_FIELDS) {
    if (p[key] !== undefined && p[key] !== null) input.value = p[key];
  }
  const seed = seedOf(job);
  if (seed !== undefined) ui.seed.value = seed;
  setSelect(ui.sampler, p.sampler_name);
  setSelect(ui.scheduler, p.scheduler);
  setSelect(ui.model, p.model ?? job.model);  // params name the model only when the request did
}

// ---- a job ----

function setBusy(busy) {
  const hadFocus = document.activeElement;
  ui.generate.disabled = busy;
  ui.cancel.hidden = !busy;
  ui.cancel.disabled = false;
  // Keep keyboard focus on a live control when the focused one is disabled or hidden.
  if (busy && hadFocus === ui.generate) ui.cancel.focus();
  if (!busy && (hadFocus === ui.cancel || hadFocus === document.body)) ui.generate.focus();
}

function showProgress(job) {
  ui.progressRow.hidden = false;
  if (job.status === 'queued') {
    const ahead = job.queue_position ?? 0;
    ui.statusText.textContent = ahead > 0 ? `Queued, ${ahead} ahead` : 'Queued';
    ui.progress.removeAttribute('value');  // indeterminate until the first step
    ui.stepText.textContent = '';
    ui.etaText.textContent = '';
    return;
  }
  ui.statusText.textContent = 'Running';
  const total = job.total_steps ?? 0;
  const fraction = job.progress ?? (total ? job.step / total : 0);
  ui.progress.value = fraction;
  ui.stepText.textContent = total ? `step ${job.step ?? 0}/${total}` : '';
  ui.etaText.textContent = Number.isFinite(job.eta_s) ? `· about ${formatSeconds(job.eta_s)} left` : '';
  if (job.preview) {
    delete ui.resultImage.dataset.final;
    ui.resultImage.src = job.preview;
    ui.resultImage.alt = `Preview of "${job.params?.prompt ?? ''}"`;
    ui.resultCaption.textContent = `Preview at step ${job.step ?? 0}`;
    ui.result.hidden = false;
  }
}

async function showFinal(job) {
  const elapsed = (performance.now() - state.job.started) / 1000;
  ui.stepText.textContent = '';
  ui.etaText.textContent = '';
  if (job.status !== 'done' && ui.resultImage.dataset.final !== 'true') ui.result.hidden = true;  // a stale preview
  if (job.status === 'failed') {
    ui.statusText.textContent = 'Failed';
    showError(new ApiError(job.error || 'The job failed.'));
    return;
  }
  if (job.status === 'cancelled') {
    ui.statusText.textContent = 'Cancelled';
    return;
  }
  ui.statusText.textContent = `Done in ${elapsed.toFixed(1)} s`;
  ui.progress.value = 1;
  const image = job.images?.[0];
  if (!image) return;
  const source = await imageSource(image.url);
  ui.resultImage.src = source;
  ui.resultImage.alt = job.params?.prompt ?? '';
  ui.resultImage.dataset.final = 'true';
  ui.resultImage.dataset.jobId = job.id;
  ui.resultCaption.replaceChildren(describeParams(job), ' ', downloadLink(job, source));
  ui.result.hidden = false;
}

function downloadLink(job, href) {
  return element('a', { href, download: `easel-${job.id}.png` }, 'Download');
}

// Follows the job's Server-Sent Events (read with fetch, because EventSource cannot send the API key).
// Returns the final job status, or null when the stream could not be read to its end.
async function followEvents(id, onProgress) {
  const response = await fetch(`/v1/jobs/${encodeURIComponent(id)}/events?preview=1`, {
    headers: authHeaders({ Accept: 'text/event-stream' }),
  });
  if (!response.ok || !response.body) return null;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    // SSE allows \r\n, \n or \r line ends; a \r at the end of a chunk may be the first half of a \r\n.
    buffer = (buffer + value).replace(/\r\n|\r(?!$)/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      const job = parseJson(event.data);
      if (TERMINAL_STATUSES.has(event.type) || TERMINAL_STATUSES.has(job?.status)) {
        await reader.cancel();
        return api(`/v1/jobs/${encodeURIComponent(id)}`);
      }
      if (event.type === 'progress' && job) onProgress(job);
    }
  }
}

function parseJson(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function parseEvent(block) {
  const event = { type: 'message', data: '' };
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;  // a comment (keep-alive)
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event.type = value;
    else if (field === 'data') data.push(value);
  }
  event.data = data.join('\n');
  return event;
}

async function pollJob(id, onProgress) {
  for (;;) {
    const job = await api(`/v1/jobs/${encodeURIComponent(id)}?preview=1`);
    if (TERMINAL_STATUSES.has(job.status)) return job;
    onProgress(job);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

async function generate() {
  if (state.job) return;
  clearError();
  let params;
  try {
    params = readForm();
  } catch (err) {
    showError(err);
    return;
  }
  setBusy(true);
  state.job = { id: null, started: performance.now() };
  try {
    const created = await api('/v1/jobs', { method: 'POST', body: params });
    state.job.id = created.id;
    showProgress({ status: 'queued', queue_position: created.queue_position });
    let job = null;
    try {
      job = await followEvents(created.id, showProgress);
    } catch (err) {
      console.warn('easel: progress stream failed, polling instead:', err);
    }
    job ??= await pollJob(created.id, showProgress);
    await showFinal(job);
  } catch (err) {
    showError(err);
    ui.statusText.textContent = '';
    ui.progressRow.hidden = true;
  } finally {
    state.job = null;
    setBusy(false);
  }
  await refreshGallery();
}

async function cancelJob() {
  if (!state.job?.id) return;
  ui.cancel.disabled = true;
  try {
    await api(`/v1/jobs/${encodeURIComponent(state.job.id)}`, { method: 'DELETE' });
  } catch (err) {
    showError(err);
    ui.cancel.disabled = false;
  }
}

// ---- gallery ----

async function refreshGallery() {
  let jobs;
  try {
    jobs = (await api(`/v1/jobs?limit=${GALLERY_LIMIT}`))?.jobs ?? [];
  } catch (err) {
    showError(err);
    return;
  }
  const entries = await Promise.all(jobs.map((job, index) => galleryEntry(job, index)));
  ui.galleryList.replaceChildren(...entries);
  ui.galleryEmpty.hidden = entries.length > 0;
}

async function galleryEntry(job, index) {
  const promptId = `gallery-${index}-prompt`;
  const image = job.images?.[0];
  let source = null;
  if (image) {
    try {
      source = await imageSource(image.url);
    } catch (err) {
      console.warn('easel:', err.message);
    }
  }
  const picture = source
    ? element('img', { src: source, alt: job.params?.prompt ?? '', loading: 'lazy' })
    : element('div', { class: 'placeholder' }, job.status);
  if (source && job.params?.width < SMALL_IMAGE_PX) picture.classList.add('small');

  const again = element('button', { type: 'button', 'aria-describedby': promptId }, 'Same seed again');
  again.addEventListener('click', () => {
    fillForm(job);
    ui.prompt.focus();
  });
  const actions = element('div', { class: 'entry-actions' }, again);
  if (source) actions.append(' ', downloadLink(job, source));

  const created = job.created ? new Date(job.created) : null;
  const when = created && !Number.isNaN(created.getTime())
    ? element('time', { datetime: job.created }, created.toLocaleString())
    : '';
  const meta = element('div', { class: 'meta' },
    element('p', { id: promptId, class: 'entry-prompt' }, job.params?.prompt || '(no prompt)'));
  if (job.params?.negative_prompt) {
    meta.append(element('p', { class: 'muted' }, `Negative: ${job.params.negative_prompt}`));
  }
  meta.append(element('p', { class: 'entry-params' }, describeParams(job)));
  const statusLine = element('p', { class: 'muted' }, when);
  if (job.status !== 'done') {
    const why = job.error && job.error !== job.status ? `: ${job.error}` : '';
    statusLine.append(when ? ' · ' : '', job.status + why);
  }
  meta.append(statusLine, actions);
  return element('li', {}, picture, meta);
}

// ---- start ----

function onResultImageLoad() {
  ui.resultImage.classList.toggle('small', ui.resultImage.naturalWidth < SMALL_IMAGE_PX);
}

async function start() {
  try {
    ui.apiKey.value = localStorage.getItem(API_KEY_STORAGE) ?? '';
  } catch {
    // Storage disabled: the key then lasts as long as the page.
  }
  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    generate();
  });
  ui.form.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      generate();
    }
  });
  ui.cancel.addEventListener('click', cancelJob);
  ui.model.addEventListener('change', () => applyModelDefaults(ui.model.value));
  for (const input of [ui.width, ui.height]) {
    input.addEventListener('input', () => {
      state.sizeEdited = true;
      syncSizePreset();
    });
  }
  ui.sizePreset.addEventListener('change', () => {
    if (!ui.sizePreset.value) return;
    const [w, h] = ui.sizePreset.value.split('x');
    ui.width.value = w;
    ui.height.value = h;
    state.sizeEdited = true;
  });
  ui.cfgScale.addEventListener('input', () => { state.cfgEdited = true; });
  ui.extraNetwork.addEventListener('change', () => {
    if (!ui.extraNetwork.value) return;
    insertIntoPrompt(ui.extraNetwork.value);
    ui.extraNetwork.value = '';
  });
  ui.resultImage.addEventListener('load', onResultImageLoad);
  ui.apiKey.addEventListener('change', async () => {
    const key = ui.apiKey.value.trim();
    try {
      if (key) localStorage.setItem(API_KEY_STORAGE, key);
      else localStorage.removeItem(API_KEY_STORAGE);
    } catch {
      // See above.
    }
    clearError();
    await loadOptions();
    await refreshGallery();
  });
  await loadOptions();
  await refreshGallery();
  document.body.dataset.ready = 'true';
}

start();
