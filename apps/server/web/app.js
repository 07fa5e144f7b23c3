// The page of `easel serve`: a form that queues txt2img or img2img jobs (with ControlNet and IP-Adapter units when
// enabled, inpainting and outpainting on a starting image, batches of images), the page's queue of jobs with their
// positions, the running job's live progress (skip, cancel), a searchable history of past jobs and what the API key
// has spent today.
// It talks only to the server that served it (same origin); every request carries the API key when one is set.
// Plain ES module, no build step: edit and reload with EASEL_WEB_DIR pointing at this folder.

const API_KEY_STORAGE = 'easel.api_key';
const TERMINAL_STATUSES = new Set(['done', 'failed', 'cancelled']);
const POLL_INTERVAL_MS = 300;
// The page's other unfinished jobs (queued ones, whose position the event stream does not update) are asked for this
// often; the job whose progress is shown is followed over its Server-Sent Events.
const QUEUE_POLL_MS = 1000;
// The longest prompt a queue entry shows.
const QUEUE_PROMPT_CHARS = 60;
const GALLERY_LIMIT = 50;
// Images narrower than this (the embedded model draws 32x32) are shown enlarged with square pixels.
const SMALL_IMAGE_PX = 256;
// Selected at first when the server lists it: what POST /v1/jobs uses when no sampler is sent
// (Server::submit in apps/server/server.cpp), so that the form shows what a bare request would get.
const DEFAULT_SAMPLER = 'Euler a';
// What POST /v1/jobs uses for a model that recommends no CFG scale (GET /v1/models gives cfg_scale null).
const SD_DEFAULT_CFG_SCALE = 7;
// ControlNet / IP-Adapter units on the page; the server takes up to 8 (alwayson_scripts.controlnet.args).
const CONTROL_UNITS = 2;
// The modules when GET /controlnet/module_list cannot be read (the ones easel has).
const FALLBACK_MODULES = ['none', 'canny', 'invert', 'ip-adapter-auto', 'ip-adapter_clip_h', 'ip-adapter_clip_g'];
// GET /controlnet/model_list does not say which file is which: names like these are listed first for IP-Adapter
// units, the others first for ControlNet units.
const IP_ADAPTER_NAME = /ip[-_ ]?adapter/i;
// The largest side easel serve takes by default (--max-size); a server with another limit answers with its own.
const MAX_SIDE = 2048;
// Image sides are multiples of this unless GET /v1/models gives a model's own size_multiple (the embedded model's
// autoencoder and latent need 16).
const DEFAULT_SIZE_MULTIPLE = 8;
// The gallery asks the server again this long after the last key press in its search field.
const SEARCH_DELAY_MS = 250;
// Request fields the server names in its messages ("steps: must be between 1 and 150, got 0") and the control of
// the page each one is shown next to; a name not listed here is looked up as an element id.
const FIELD_CONTROLS = {
  prompt: 'prompt', negative_prompt: 'negative-prompt', width: 'width', height: 'height', steps: 'steps',
  cfg_scale: 'cfg-scale', seed: 'seed', sampler_name: 'sampler', scheduler: 'scheduler', model: 'model',
  denoising_strength: 'denoising', mask_blur: 'mask-blur', inpainting_fill: 'inpainting-fill',
  inpaint_full_res: 'inpaint-area', inpaint_full_res_padding: 'inpaint-padding', 'init_images[0]': 'init-file',
  init_images: 'init-file', mask: 'mask-canvas', n_iter: 'batch-count', batch_size: 'batch-size',
};

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
  skip: byId('skip'),
  cancel: byId('cancel'),
  batchCount: byId('batch-count'),
  batchSize: byId('batch-size'),
  queueList: byId('queue-list'),
  queueNote: byId('queue-note'),
  resultImages: byId('result-images'),
  error: byId('error'),
  progressRow: byId('progress-row'),
  statusText: byId('status-text'),
  progress: byId('progress'),
  stepText: byId('step-text'),
  etaText: byId('eta-text'),
  result: byId('result'),
  resultImage: byId('result-image'),
  resultCaption: byId('result-caption'),
  resultInfo: byId('result-info'),
  resultInfotext: byId('result-infotext'),
  controlnet: byId('controlnet'),
  controlnetCount: byId('controlnet-count'),
  cnUnits: byId('cn-units'),
  cnTemplate: byId('cn-unit-template'),
  galleryList: byId('gallery-list'),
  galleryEmpty: byId('gallery-empty'),
  verifyDrop: byId('verify-drop'),
  verifyFile: byId('verify-file'),
  verifyResult: byId('verify-result'),
  verifyVerdict: byId('verify-verdict'),
  verifyDetails: byId('verify-details'),
  imageSettings: byId('image-settings'),
  imageSettingsList: byId('image-settings-list'),
  restoreSettings: byId('restore-settings'),
  restoreNote: byId('restore-note'),
  img2img: byId('img2img'),
  img2imgState: byId('img2img-state'),
  initDrop: byId('init-drop'),
  initFile: byId('init-file'),
  initEditor: byId('init-editor'),
  initCanvas: byId('init-canvas'),
  maskCanvas: byId('mask-canvas'),
  denoising: byId('denoising'),
  brushSize: byId('brush-size'),
  maskBlur: byId('mask-blur'),
  brushErase: byId('brush-erase'),
  maskInvert: byId('mask-invert'),
  maskClear: byId('mask-clear'),
  initRemove: byId('init-remove'),
  inpaintingFill: byId('inpainting-fill'),
  inpaintArea: byId('inpaint-area'),
  inpaintPadding: byId('inpaint-padding'),
  outpaintSide: byId('outpaint-side'),
  outpaintPixels: byId('outpaint-pixels'),
  outpaintExtend: byId('outpaint-extend'),
  outpaintNote: byId('outpaint-note'),
  usage: byId('usage'),
  gallerySearch: byId('gallery-search'),
  galleryModel: byId('gallery-model'),
  galleryNote: byId('gallery-note'),
};

// Number inputs and the request fields they fill.
const NUMBER_FIELDS = [
  ['width', ui.width, 'Width'],
  ['height', ui.height, 'Height'],
  ['steps', ui.steps, 'Steps'],
  ['n_iter', ui.batchCount, 'Batch count'],
  ['batch_size', ui.batchSize, 'Batch size'],
  ['cfg_scale', ui.cfgScale, 'CFG scale'],
  ['seed', ui.seed, 'Seed'],
];

const state = {
  models: [],
  // This page's unfinished jobs in the order they were queued: {id, number, prompt, started, status, position, step,
  // total, image, images, cancelling, finished}.
  jobs: [],
  jobCount: 0,        // numbers the page's jobs (1, 2, ...) for the queue list
  followed: null,     // {job, abort}: the job whose progress is shown, followed over its events
  following: false,   // the loop that follows one job after another is running
  pollTimer: 0,
  shown: null,        // {job, index}: the finished job whose image the result area shows
  sizeEdited: false,  // the user typed a size: a model list arriving late must not overwrite it
  cfgEdited: false,   // the same for the CFG scale
  imageUrls: new Map(),  // server image path -> object URL, used when an API key must be sent with the request
  controlModels: [],    // GET /controlnet/model_list
  controlModules: FALLBACK_MODULES,  // GET /controlnet/module_list
  moduleDetail: {},                  // its module_detail: each module's sliders (threshold_a, threshold_b)
  units: [],            // the ControlNet / IP-Adapter units of the form (see buildUnits)
  imageParameters: [],  // the settings of the image last checked in "Image info" ({name, value}, infotext order)
  initImage: null,      // img2img: the starting image as a data: URL, or null
  maskPainted: false,   // a stroke is on the mask canvas
  galleryRequest: 0,    // counts gallery requests, so that an answer overtaken by a newer one is dropped
  usageRequest: 0,      // the same for GET /v1/usage
};

// param: the request field (or the page's element id) the message is about, when known.
class ApiError extends Error {
  constructor(message, detail, param) {
    super(message);
    this.detail = detail;
    this.param = param;
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
    const error = new ApiError(message, data?.detail, data?.error?.param);
    error.status = response.status;
    throw error;
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
  showFieldError(err);
}

function clearError() {
  ui.error.hidden = true;
  ui.error.replaceChildren();
  for (const node of document.querySelectorAll('.field-error')) node.remove();
  for (const node of document.querySelectorAll('[aria-invalid]')) {
    node.removeAttribute('aria-invalid');
    const ids = (node.getAttribute('aria-describedby') ?? '').split(' ').filter((id) => id && !id.endsWith('-error'));
    if (ids.length) node.setAttribute('aria-describedby', ids.join(' '));
    else node.removeAttribute('aria-describedby');
  }
}

// The control an error is about: the error's param, else the field its message starts with ("steps: must be ..."),
// and the message without that field's name.
function errorControl(err) {
  const message = err.message ?? '';
  const prefix = /^([A-Za-z_][\w.]*(?:\[\d+\])?): /.exec(message);
  const name = err.param ?? prefix?.[1];
  const control = name ? byId(FIELD_CONTROLS[name] ?? name) : null;
  if (!control?.closest('form, #gallery')) return null;
  return { control, text: prefix && prefix[1] === name ? message.slice(prefix[0].length) : message };
}

// The message again next to the control it names (the one in #error is announced; this one is where the eye is),
// and the control marked invalid and described by it.
function showFieldError(err) {
  const found = errorControl(err);
  if (!found) return;
  const { control, text } = found;
  const id = `${control.id}-error`;
  byId(id)?.remove();
  const note = element('small', { id, class: 'field-error' }, text);
  const holder = control.closest('.field, .dropzone') ?? control.parentElement;
  if (control.id === 'mask-canvas') ui.maskCanvas.parentElement.after(note);
  else holder.append(note);
  control.setAttribute('aria-invalid', 'true');
  const described = (control.getAttribute('aria-describedby') ?? '').split(' ').filter(Boolean);
  control.setAttribute('aria-describedby', [...described, id].join(' '));
  // A closed section hides the field: open it.
  const section = control.closest('details');
  if (section) section.open = true;
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

// One line with the parameters of a job, e.g. "seed 7 · 20 steps · Euler a, automatic · CFG 7 · 32×32 · tiny"; the
// seed is that of image `index` (image 0, the job's seed, unless given).
function describeParams(job, index = 0) {
  const p = job.params ?? {};
  const parts = [];
  const seed = job.images?.[index]?.seed ?? seedOf(job);
  if (seed !== undefined) parts.push(`seed ${seed}`);
  const count = (p.n_iter ?? 1) * (p.batch_size ?? 1);
  if (count > 1) parts.push(`${count} images (${p.n_iter ?? 1} × ${p.batch_size ?? 1})`);
  if (p.steps !== undefined) parts.push(`${p.steps} steps`);
  parts.push([p.sampler_name, p.scheduler].filter(Boolean).join(', '));
  if (p.cfg_scale !== undefined) parts.push(`CFG ${p.cfg_scale}`);
  // "Only masked" inpainting draws the masked area at width x height; the image keeps its starting image's size.
  if (p.width && p.height) parts.push(p.inpaint_full_res && p.mask ? `only masked at ${p.width}×${p.height}` : `${p.width}×${p.height}`);
  if (p.model ?? job.model) parts.push(p.model ?? job.model);
  parts.push(...describeUnits(p.alwayson_scripts));
  return parts.filter(Boolean).join(' · ');
}

// The ControlNet / IP-Adapter units a job ran, e.g. ["ControlNet sd1_a (canny)", "IP-Adapter ip-adapter_sd15"].
function describeUnits(scripts) {
  const args = scripts?.controlnet?.args ?? scripts?.ControlNet?.args;
  if (!Array.isArray(args)) return [];
  return args.filter((u) => u && u.enabled !== false && u.model && u.model !== 'None').map((u) => {
    const module = typeof u.module === 'string' ? u.module : 'none';
    if (isIpAdapterModule(module)) return `IP-Adapter ${u.model}`;
    return `ControlNet ${u.model}${module !== 'none' ? ` (${module})` : ''}`;
  });
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
// each side a multiple of the model's size multiple.
const ASPECT_BUCKETS = [[1024, 1024], [1152, 896], [896, 1152], [1216, 832], [832, 1216], [1344, 768], [768, 1344],
  [1536, 640], [640, 1536]];

function sizePresets(side, multiple) {
  if (!side) return [];
  const round = (v) => Math.max(multiple, Math.round(v / multiple) * multiple);
  const seen = new Set();
  return ASPECT_BUCKETS.map(([w, h]) => [round((w * side) / 1024), round((h * side) / 1024)])
    .filter(([w, h]) => !seen.has(`${w}x${h}`) && seen.add(`${w}x${h}`));
}

// What a model's sides must be a multiple of (the form's model when none is given).
function sizeMultiple(model = state.models.find((m) => m.name === ui.model.value)) {
  return model?.size_multiple ?? DEFAULT_SIZE_MULTIPLE;
}

// The preset matching the form's width and height, or "Custom".
function syncSizePreset() {
  const value = `${ui.width.value}x${ui.height.value}`;
  const match = [...ui.sizePreset.options].some((o) => o.value === value);
  ui.sizePreset.value = match ? value : '';
}

function fillSizePresets(model) {
  const presets = sizePresets(model?.width, sizeMultiple(model));
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
  const lists = await Promise.allSettled([
    api('/v1/models'), api('/sdapi/v1/samplers'), api('/sdapi/v1/schedulers'), api('/sdapi/v1/loras'),
    api('/sdapi/v1/embeddings'), api('/controlnet/model_list'), api('/controlnet/module_list'),
  ]);
  const [models, samplers, schedulers, loras, embeddings, controlModels, controlModules] = lists;
  const failed = lists.find((r) => r.status === 'rejected');
  if (failed) showError(failed.reason);
  if (controlModels.status === 'fulfilled') state.controlModels = controlModels.value?.model_list ?? [];
  if (controlModules.status === 'fulfilled' && controlModules.value?.module_list?.length) {
    state.controlModules = controlModules.value.module_list;
    state.moduleDetail = controlModules.value.module_detail ?? {};
  }
  for (const unit of state.units) fillUnitLists(unit);
  fillExtraNetworks(loras.status === 'fulfilled' ? loras.value ?? [] : [],
    embeddings.status === 'fulfilled' ? Object.keys(embeddings.value?.loaded ?? {}) : []);
  if (models.status === 'fulfilled') {
    state.models = models.value?.models ?? [];
    const preferred = state.models.find((m) => m.default) ?? state.models[0];
    const before = ui.model.value;
    // Each model with its family, native size and licence, as the model names it (GET /v1/models), so that nobody
    // picks one blind to what it is or may be used for.
    fillSelect(ui.model, state.models.map((m) => {
      const kind = [m.family, m.width ? `${m.width}×${m.height}` : ''].filter(Boolean).join(' ');
      return { value: m.name, label: `${m.title || m.name} (${kind ? `${kind}, ` : ''}licence: ${m.license ?? 'unknown'})` };
    }), preferred?.name);
    if (!before) applyModelDefaults(ui.model.value, { keepEdits: true });
    fillGalleryModels();
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
  const units = readUnits();
  if (units.length) params.alwayson_scripts = { controlnet: { args: units } };
  if (state.initImage) Object.assign(params, readImg2img());
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

// ---- the page's jobs ----
// Every click on Generate queues another job (POST /v1/jobs). The queue list shows the page's unfinished jobs in
// order; one of them is followed over its Server-Sent Events (its progress and previews shown, Skip and Cancel act
// on it): the first running one, else the first queued one. The others are asked for every QUEUE_POLL_MS for their
// positions. When a job ends its images are shown, the gallery refreshed, and the next job followed.

// Skip shows while a job of the page runs, Cancel while one is unfinished; focus that was on a button that goes
// moves to Generate.
function updateJobControls() {
  const hadFocus = document.activeElement;
  const followed = state.followed?.job;
  ui.cancel.hidden = state.jobs.length === 0;
  ui.cancel.disabled = Boolean(followed?.cancelling);
  ui.skip.hidden = !state.jobs.some((j) => j.status === 'running');
  const lost = (hadFocus === ui.cancel && ui.cancel.hidden) || (hadFocus === ui.skip && ui.skip.hidden)
    || (hadFocus === document.body && state.jobs.length === 0);
  if (lost) ui.generate.focus();
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
  const images = job.image_count ?? 1;
  ui.statusText.textContent = images > 1 ? `Running: image ${(job.image_index ?? 0) + 1} of ${images}` : 'Running';
  const total = job.total_steps ?? 0;
  const fraction = job.progress ?? (total ? job.step / total : 0);
  ui.progress.value = fraction;
  ui.stepText.textContent = total ? `step ${job.step ?? 0}/${total}` : '';
  ui.etaText.textContent = Number.isFinite(job.eta_s) ? `· about ${formatSeconds(job.eta_s)} left` : '';
  if (job.preview) {
    delete ui.resultImage.dataset.final;
    ui.resultImage.src = job.preview;
    ui.resultImage.alt = `Preview of "${job.params?.prompt ?? ''}"`;
    ui.resultCaption.textContent = `Preview at step ${job.step ?? 0}${images > 1 ? ` of image ${(job.image_index ?? 0) + 1}` : ''}`;
    ui.resultInfo.hidden = true;
    ui.resultImages.hidden = true;
    ui.result.hidden = false;
  }
}

// The status line when the followed job has ended; its images in the result area.
async function showFinal(job, data) {
  const elapsed = (performance.now() - job.started) / 1000;
  ui.stepText.textContent = '';
  ui.etaText.textContent = '';
  if (data.status !== 'done' && ui.resultImage.dataset.final !== 'true') ui.result.hidden = true;  // a stale preview
  if (data.status === 'failed') {
    ui.statusText.textContent = 'Failed';
    showError(new ApiError(data.error || 'The job failed.'));
    return;
  }
  if (data.status === 'cancelled') {
    ui.statusText.textContent = 'Cancelled';
    return;
  }
  const count = data.images?.length ?? 0;
  ui.statusText.textContent = `Done in ${elapsed.toFixed(1)} s${count > 1 ? `: ${count} images` : ''}`;
  ui.progress.value = 1;
  await showResult(data, 0);
}

// Image `index` of a finished job in the result area, with its parameters, download, "Send to img2img" and
// infotext; a job of several images lists them all as thumbnails that choose the one shown.
async function showResult(data, index) {
  const images = data.images ?? [];
  const image = images[index];
  if (!image) return;
  const source = await imageSource(image.url);
  const several = images.length > 1;
  ui.resultImage.src = source;
  ui.resultImage.alt = `${data.params?.prompt ?? ''}${several ? ` (image ${index + 1} of ${images.length})` : ''}`;
  ui.resultImage.dataset.final = 'true';
  ui.resultImage.dataset.jobId = data.id;
  ui.resultImage.dataset.index = index;
  ui.resultCaption.replaceChildren(several ? `Image ${index + 1} of ${images.length} · ` : '', describeParams(data, index), ' ',
    downloadLink(data, source, index), ' ', sendButton(source, `easel-${data.id}-${index}.png`));
  // A1111's infotext: every parameter the image was made with, ControlNet units included.
  ui.resultInfotext.textContent = image.infotext ?? '';
  ui.resultInfo.hidden = !image.infotext;
  if (several && state.shown?.job.id !== data.id) {
    ui.resultImages.replaceChildren(...await thumbnails(data, (i) => showResult(data, i)));
  }
  for (const [i, button] of [...ui.resultImages.querySelectorAll('button')].entries()) {
    button.setAttribute('aria-pressed', String(i === index));
  }
  ui.resultImages.hidden = !several;
  state.shown = { job: data, index };
  ui.result.hidden = false;
}

// One button per image of a finished job (its picture, named "Image 2 of 4, seed N"), each calling onChoose(i).
async function thumbnails(data, onChoose, describedBy) {
  const images = data.images ?? [];
  const sources = await Promise.all(images.map((im) => imageSource(im.url).catch(() => null)));
  return images.map((im, i) => {
    const attributes = { type: 'button', 'aria-label': `Image ${i + 1} of ${images.length}${im.seed !== undefined ? `, seed ${im.seed}` : ''}` };
    if (describedBy) attributes['aria-describedby'] = describedBy;
    const button = element('button', attributes,
      sources[i] ? element('img', { src: sources[i], alt: '', loading: 'lazy' }) : String(i + 1));
    button.addEventListener('click', () => Promise.resolve(onChoose(i)).catch(showError));
    return element('li', {}, button);
  });
}

// The PNG as the server stores it, with its parameters, XMP label and content credential; named as the server's
// Content-Disposition names it (which the browser prefers when both are given).
function downloadLink(job, href, index = 0) {
  return element('a', { href, download: `easel-${job.id}-${index}.png` }, 'Download');
}

// ---- the queue list ----

// "running: step 12/20, image 1/4", "queued, 2 ahead" or "queued, next".
function queueState(job) {
  if (job.cancelling) return 'cancelling…';
  if (job.status === 'running') {
    const parts = [job.total ? `step ${job.step ?? 0}/${job.total}` : 'starting'];
    if (job.images > 1) parts.push(`image ${(job.image ?? 0) + 1}/${job.images}`);
    return `running: ${parts.join(', ')}`;
  }
  return job.position > 0 ? `queued, ${job.position} ahead` : 'queued, next';
}

// The job's entry, made when missing, its text and button brought up to date.
function renderQueueEntry(job) {
  let entry = ui.queueList.querySelector(`li[data-job-id="${job.id}"]`);
  if (!entry) {
    const prompt = job.prompt.length > QUEUE_PROMPT_CHARS ? `${job.prompt.slice(0, QUEUE_PROMPT_CHARS)}…` : job.prompt;
    const label = `Job ${job.number}${job.images > 1 ? ` (${job.images} images)` : ''}: ${prompt ? `"${prompt}"` : '(no prompt)'}`;
    const cancel = element('button', { type: 'button', 'aria-label': `Cancel job ${job.number}` }, 'Cancel');
    cancel.addEventListener('click', () => cancelJob(job));
    entry = element('li', { 'data-job-id': job.id }, element('span', { class: 'queue-label' }, label),
      element('span', { class: 'queue-state' }), cancel);
    ui.queueList.append(entry);
  }
  entry.dataset.status = job.status;
  const text = queueState(job);
  const stateNode = entry.querySelector('.queue-state');
  if (stateNode.textContent !== text) stateNode.textContent = text;
  // Not disabled, which would take the focus away from it: a second click does nothing.
  entry.querySelector('button').setAttribute('aria-disabled', String(Boolean(job.cancelling)));
}

// Removes a job's entry; focus on its button goes to the next entry's (else the previous one's, else Generate).
function removeQueueEntry(job) {
  const entry = ui.queueList.querySelector(`li[data-job-id="${job.id}"]`);
  if (!entry) return;
  const hadFocus = entry.contains(document.activeElement);
  const neighbour = entry.nextElementSibling ?? entry.previousElementSibling;
  entry.remove();
  if (hadFocus) (neighbour?.querySelector('button') ?? ui.generate).focus();
}

// ---- following and polling ----

// What the server says of a job of the page (an event, a poll, a DELETE's answer).
function onJobUpdate(job, data) {
  if (job.finished || !data) return;
  if (TERMINAL_STATUSES.has(data.status)) {
    finishJob(job, data);
    return;
  }
  if (job.status === 'running' && data.status === 'queued') return;  // an answer overtaken by a newer one
  Object.assign(job, {
    status: data.status, position: data.queue_position ?? 0, step: data.step, total: data.total_steps,
    image: data.image_index, images: data.status === 'running' ? data.image_count ?? job.images : job.images,
  });
  renderQueueEntry(job);
  const followed = state.followed;
  if (followed?.job === job) showProgress(data);
  else if (data.status === 'running' && followed && followed.job.status !== 'running') followed.abort.abort();  // follow this one
  updateJobControls();
}

// A job of the page has ended: out of the queue list, its images shown, the gallery and usage asked for again.
// Called once per job, by whichever of its event stream, the poll or its DELETE's answer sees the end first.
async function finishJob(job, data) {
  if (job.finished) return;
  job.finished = true;
  job.status = data.status;
  const followed = state.followed?.job === job;
  state.jobs = state.jobs.filter((j) => j !== job);
  removeQueueEntry(job);
  if (followed) state.followed.abort.abort();  // the follower moves on to the next job
  try {
    if (followed) await showFinal(job, data);
    else if (data.status === 'done') await showResult(data, 0);
  } catch (err) {
    showError(err);  // an image that cannot be loaded
  }
  if (!followed) {
    const what = data.status === 'done' ? 'done' : data.status === 'failed' ? `failed: ${data.error ?? ''}` : 'cancelled';
    ui.queueNote.textContent = `Job ${job.number} ${what}`;
  }
  updateJobControls();
  followQueue();
  // Not waited for: the follower goes on to the next job at once.
  refreshGallery();
  refreshUsage();
}

// The job to follow: the first running one, else the first queued one.
function nextToFollow() {
  return state.jobs.find((j) => j.status === 'running') ?? state.jobs[0] ?? null;
}

// Follows one job after another until none is left.
async function followQueue() {
  if (state.following) return;
  state.following = true;
  try {
    for (let job = nextToFollow(); job; job = nextToFollow()) await follow(job);
  } finally {
    state.following = false;
    state.followed = null;
    updateJobControls();
  }
}

// Follows a job until it ends, or until another job of the page runs while it waits (abort).
async function follow(job) {
  const abort = new AbortController();
  state.followed = { job, abort };
  updateJobControls();
  showProgress({ status: job.status, queue_position: job.position, step: job.step, total_steps: job.total,
    image_index: job.image, image_count: job.images });
  const onProgress = (data) => onJobUpdate(job, data);
  let final = null;
  try {
    final = await followEvents(job.id, onProgress, abort.signal);
  } catch (err) {
    if (!abort.signal.aborted) console.warn('easel: progress stream failed, polling instead:', err);
  }
  try {
    if (!final && !abort.signal.aborted) final = await pollJob(job.id, onProgress, abort.signal);
  } catch (err) {
    if (!abort.signal.aborted) final = { status: 'failed', error: err.message };
  }
  if (final && !job.finished) await finishJob(job, final);
  if (state.followed?.job === job) state.followed = null;
}

// Asks for the page's unfinished jobs that are not followed over events (and the followed one while it waits
// behind others: the event stream does not say when its position changes).
function schedulePoll() {
  if (!state.pollTimer) state.pollTimer = setTimeout(pollQueue, QUEUE_POLL_MS);
}

async function pollQueue() {
  const asked = state.jobs.filter((j) => j !== state.followed?.job || (j.status === 'queued' && j.position > 0));
  await Promise.all(asked.map(async (job) => {
    try {
      onJobUpdate(job, await api(`/v1/jobs/${encodeURIComponent(job.id)}`));
    } catch (err) {
      if (err.status === 404) finishJob(job, { status: 'failed', error: err.message });  // purged elsewhere
      else console.warn(`easel: job ${job.id}:`, err.message);
    }
  }));
  state.pollTimer = 0;
  if (state.jobs.length) schedulePoll();
}

// ---- usage ----

// Today's images of the key (or of the open server) against its quota, and its rate limit, from GET /v1/usage:
// "3 of 100 images today (97 left) · resets at 00:00 UTC · 30 requests/min". A server without the route says nothing.
async function refreshUsage() {
  const request = ++state.usageRequest;
  let usage;
  try {
    usage = await api('/v1/usage');
  } catch (err) {
    if (request !== state.usageRequest) return;
    ui.usage.classList.toggle('failed', err.status !== 404);
    ui.usage.textContent = err.status === 404 ? '' : `Usage: ${err.message}`;
    return;
  }
  if (request !== state.usageRequest) return;
  ui.usage.classList.remove('failed');
  ui.usage.textContent = describeUsage(usage);
  ui.usage.dataset.left = usage?.images_left_today ?? '';
}

function describeUsage(u) {
  const who = u.key ? `Key "${u.key.name || u.key.id}"` : 'No key (open server)';
  const images = (n) => `${n} image${n === 1 ? '' : 's'}`;
  const parts = [];
  if (!u.key) {
    parts.push('not counted, unlimited');
  } else if (u.quota_per_day === null || u.quota_per_day === undefined) {
    parts.push(`${images(u.images_today ?? 0)} today, unlimited`);
  } else {
    const left = u.images_left_today ?? Math.max(0, u.quota_per_day - (u.images_today ?? 0));
    parts.push(`${u.images_today ?? 0} of ${images(u.quota_per_day)} today (${left ? `${left} left` : 'none left'})`);
    const reset = new Date(u.resets_at);
    if (!Number.isNaN(reset.getTime())) parts.push(`resets at ${reset.toISOString().slice(11, 16)} UTC`);
  }
  parts.push(u.rate_per_min ? `${u.rate_per_min} requests/min` : 'no rate limit');
  return `${who}: ${parts.join(' · ')}`;
}

// Follows the job's Server-Sent Events (read with fetch, because EventSource cannot send the API key).
// Returns the final job status, or null when the stream could not be read to its end.
// `signal` stops following (the returned promise then rejects with an AbortError).
async function followEvents(id, onProgress, signal) {
  const response = await fetch(`/v1/jobs/${encodeURIComponent(id)}/events?preview=1`, {
    headers: authHeaders({ Accept: 'text/event-stream' }), signal,
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

async function pollJob(id, onProgress, signal) {
  while (!signal?.aborted) {
    const job = await api(`/v1/jobs/${encodeURIComponent(id)}?preview=1`);
    if (TERMINAL_STATUSES.has(job.status)) return job;
    onProgress(job);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
  return null;
}

// Queues a job with the form's settings; the page goes on following the jobs before it, if any.
async function generate() {
  clearError();
  let params;
  try {
    params = readForm();
  } catch (err) {
    showError(err);
    return;
  }
  const job = {
    id: null, number: ++state.jobCount, prompt: params.prompt ?? '', started: performance.now(), status: 'queued',
    position: 0, images: (params.n_iter ?? 1) * (params.batch_size ?? 1),
  };
  let created;
  try {
    created = await api('/v1/jobs', { method: 'POST', body: params });
  } catch (err) {
    showError(err);  // a 429 (the queue is full, or the key's quota or rate) too
    if (!state.jobs.length) {
      ui.statusText.textContent = '';
      ui.progressRow.hidden = true;
    }
    return;
  }
  job.id = created.id;
  job.position = created.queue_position ?? 0;
  state.jobs.push(job);
  ui.queueNote.textContent = '';
  renderQueueEntry(job);
  updateJobControls();
  schedulePoll();
  followQueue();
}

// Cancels a job of the page (DELETE /v1/jobs/{id}); the followed one when none is given. A queued job ends at once,
// a running one at its next step.
async function cancelJob(job = state.followed?.job) {
  if (!job?.id || job.finished || job.cancelling) return;
  job.cancelling = true;
  renderQueueEntry(job);
  updateJobControls();
  try {
    onJobUpdate(job, await api(`/v1/jobs/${encodeURIComponent(job.id)}`, { method: 'DELETE' }));
  } catch (err) {
    job.cancelling = false;
    showError(err);
    if (!job.finished) renderQueueEntry(job);
    updateJobControls();
  }
}

// AUTOMATIC1111's skip: the caller's running jobs stop their current image at its next step and decode it as it
// stands; a job goes on with its next image (one of a single image simply ends).
async function skipImage() {
  try {
    await api('/sdapi/v1/skip', { method: 'POST' });
    ui.queueNote.textContent = 'Skipped: the running image stops at its next step.';
  } catch (err) {
    showError(err);
  }
}

// ---- ControlNet / IP-Adapter units ----
// AUTOMATIC1111's ControlNet extension API: each unit names a module (a preprocessor, or ip-adapter-* for an
// IP-Adapter) and a model of the server's ControlNet folder, and carries its image as base64.

const isIpAdapterModule = (module) => module.startsWith('ip-adapter');

// Copies the template once per unit; each part is found by its data-id and gets the id cnN-PART.
function buildUnits() {
  for (let index = 0; index < CONTROL_UNITS; ++index) {
    const root = ui.cnTemplate.content.firstElementChild.cloneNode(true);
    const parts = {};
    for (const node of root.querySelectorAll('[data-id]')) {
      node.id = `cn${index}-${node.dataset.id}`;
      parts[node.dataset.id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = node;
    }
    for (const label of root.querySelectorAll('label[data-for]')) label.htmlFor = `cn${index}-${label.dataset.for}`;
    root.querySelector('[data-text="legend"]').textContent = `Use unit ${index + 1}`;
    // The two units' buttons read alike: their accessible names say which unit they act on.
    parts.preview.setAttribute('aria-label', `Preview unit ${index + 1}`);
    parts.clear.setAttribute('aria-label', `Remove image of unit ${index + 1}`);
    const unit = { index, root, parts, image: null, imageLabel: root.querySelector('[data-text="image-label"]') };
    state.units.push(unit);
    ui.cnUnits.append(root);
    wireUnit(unit);
    fillUnitLists(unit);
  }
  updateUnitCount();
}

function wireUnit(unit) {
  const { parts } = unit;
  parts.enabled.addEventListener('change', updateUnitCount);
  parts.type.addEventListener('change', () => {
    fillUnitLists(unit);
    clearMap(unit);
  });
  parts.module.addEventListener('change', () => {
    updateUnitFields(unit);
    clearMap(unit);
  });
  for (const input of [parts.thresholdA, parts.thresholdB]) input.addEventListener('input', () => clearMap(unit));

  parts.clear.addEventListener('click', () => {
    setUnitImageData(unit, null);
    parts.image.focus();
  });
  parts.preview.addEventListener('click', () => previewUnit(unit));
  for (const img of [parts.thumb, parts.map]) {
    img.addEventListener('load', () => img.classList.toggle('pixelated', img.naturalWidth < 128));
  }
  wireDropZone(parts.dropzone, parts.image, (file) => setUnitImage(unit, file));
}

// A file input inside a drop zone: choosing a file or dropping one on the zone calls onFile with it; the zone
// shows where a file may go while one is dragged over it.
function wireDropZone(zone, input, onFile) {
  input.addEventListener('change', () => {
    if (input.files.length) onFile(input.files[0]);
  });
  zone.addEventListener('dragover', (event) => {
    if (![...(event.dataTransfer?.types ?? [])].includes('Files')) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove('dragging');
  });
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    const file = event.dataTransfer?.files?.[0];
    if (!file) return;
    try {
      input.files = event.dataTransfer.files;  // the file input then names the dropped file
    } catch {
      // A browser that cannot set a file input's files: the file is used all the same.
    }
    onFile(file);
  });
}

// ---- image to image and inpainting ----

// The starting image: drawn on the image canvas at its own size, which the form's size follows (the server takes
// init images at the output size); the mask canvas over it starts empty.
async function setInitImage(dataUrl, name = '') {
  const img = new Image();
  img.src = dataUrl;
  try {
    await img.decode();
  } catch {
    showError(new ApiError(`${name || 'The starting image'}: not an image this browser can read`));
    return;
  }
  state.initImage = dataUrl;
  for (const canvas of [ui.initCanvas, ui.maskCanvas]) {
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
  }
  ui.initCanvas.getContext('2d').drawImage(img, 0, 0);
  clearMask();
  showInitCanvas();
}

// After the image canvas changed: the editor shown, the whole picture inpainted at the image's size.
function showInitCanvas() {
  ui.inpaintArea.value = 'whole';
  updateInpaintArea();
  ui.outpaintNote.replaceChildren();
  ui.initEditor.hidden = false;
  ui.img2img.open = true;
  ui.initCanvas.parentElement.classList.toggle('pixelated', ui.initCanvas.width < 128);
  updateImg2imgState();
}

// "Whole picture" draws at the image's size, so the size fields show it; "Only masked" draws the masked area at the
// size fields' size, which start at the model's native size (what it draws best).
function updateInpaintArea() {
  const masked = ui.inpaintArea.value === 'masked';
  const model = state.models.find((m) => m.name === ui.model.value);
  const [w, h] = masked && model?.width ? [model.width, model.height] : [ui.initCanvas.width, ui.initCanvas.height];
  if (masked || state.initImage) {
    ui.width.value = w;
    ui.height.value = h;
    state.sizeEdited = true;
    syncSizePreset();
  }
  ui.inpaintPadding.disabled = !masked;
}

function removeInitImage() {
  state.initImage = null;
  ui.outpaintNote.replaceChildren();
  ui.initFile.value = '';
  ui.initEditor.hidden = true;
  clearMask();
  updateImg2imgState();
  ui.initFile.focus();
}

function clearMask() {
  ui.maskCanvas.getContext('2d').clearRect(0, 0, ui.maskCanvas.width, ui.maskCanvas.height);
  state.maskPainted = false;
  updateImg2imgState();
}

function updateImg2imgState() {
  ui.img2imgState.textContent = !state.initImage ? '' : state.maskPainted ? '(inpainting)' : '(image to image)';
}

// Painting with a pointer (mouse, pen, touch): round strokes in image pixels, white on the mask canvas (shown
// translucent over the image), or erasing.
function wireMaskPainting() {
  const canvas = ui.maskCanvas;
  let last = null;
  const at = (event) => {
    const rect = canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) * canvas.width / rect.width, (event.clientY - rect.top) * canvas.height / rect.height];
  };
  const stroke = (from, to) => {
    const ctx = canvas.getContext('2d');
    ctx.globalCompositeOperation = ui.brushErase.checked ? 'destination-out' : 'source-over';
    ctx.strokeStyle = ctx.fillStyle = '#fff';
    ctx.lineWidth = Number(ui.brushSize.value);
    ctx.lineCap = ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(...from);
    ctx.lineTo(...to);
    ctx.stroke();
    if (!ui.brushErase.checked) state.maskPainted = true;
    updateImg2imgState();
  };
  canvas.addEventListener('pointerdown', (event) => {
    if (!state.initImage) return;
    canvas.setPointerCapture(event.pointerId);
    last = at(event);
    stroke(last, last);
  });
  canvas.addEventListener('pointermove', (event) => {
    if (!last) return;
    const point = at(event);
    stroke(last, point);
    last = point;
  });
  for (const type of ['pointerup', 'pointercancel']) canvas.addEventListener(type, () => { last = null; });
}

// The request's img2img fields; the mask as A1111 takes it: white = repaint, black = keep, the image's size.
function readImg2img() {
  const denoising = Number(ui.denoising.value);
  if (ui.denoising.value.trim() === '' || !(denoising >= 0 && denoising <= 1)) throw new ApiError('Denoising strength: a number from 0 to 1');
  const fields = { init_images: [base64Of(state.initImage)], denoising_strength: denoising };
  if (state.maskPainted) {
    const mask = document.createElement('canvas');
    mask.width = ui.maskCanvas.width;
    mask.height = ui.maskCanvas.height;
    const ctx = mask.getContext('2d');
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, mask.width, mask.height);
    ctx.drawImage(ui.maskCanvas, 0, 0);
    fields.mask = base64Of(mask.toDataURL('image/png'));
    fields.mask_blur = Number(ui.maskBlur.value);
    fields.inpainting_mask_invert = ui.maskInvert.checked ? 1 : 0;
    fields.inpainting_fill = Number(ui.inpaintingFill.value);
    fields.inpaint_full_res = ui.inpaintArea.value === 'masked';
    if (fields.inpaint_full_res) {
      const padding = Number(ui.inpaintPadding.value);
      if (ui.inpaintPadding.value.trim() === '' || !Number.isInteger(padding) || padding < 0 || padding > 256) {
        throw new ApiError('Only masked padding: a whole number of pixels from 0 to 256', undefined, 'inpaint-padding');
      }
      fields.inpaint_full_res_padding = padding;
    }
  }
  return fields;
}

// ---- outpainting ----

const OUTPAINT_SIDES = { left: [-1, 0], right: [1, 0], up: [0, -1], down: [0, 1] };

// Extends the starting image on one side as AUTOMATIC1111's outpainting scripts prepare it: the image is placed on
// a bigger canvas, the new strip filled by stretching the image's nearest row or column, and the mask made white
// over the strip and "mask blur" pixels into the old image, so that the seam is repainted too. Masked content
// becomes "fill". The new side is rounded up to a multiple of the model's size multiple (the server takes no other
// sizes).
function extendCanvas() {
  clearError();
  const side = ui.outpaintSide.value;
  const [dx, dy] = OUTPAINT_SIDES[side];
  const pixels = Number(ui.outpaintPixels.value);
  if (ui.outpaintPixels.value.trim() === '' || !Number.isInteger(pixels) || pixels < 8 || pixels % 8) {
    showError(new ApiError('Pixels to add: a multiple of 8, at least 8', undefined, 'outpaint-pixels'));
    return;
  }
  const multiple = sizeMultiple();
  const w = ui.initCanvas.width, h = ui.initCanvas.height;
  const roundUp = (v) => Math.ceil(v / multiple) * multiple;
  const newW = dx ? roundUp(w + pixels) : w;
  const newH = dy ? roundUp(h + pixels) : h;
  if (newW > MAX_SIDE || newH > MAX_SIDE) {
    showError(new ApiError(`Pixels to add: the image would be ${newW}×${newH}; the server takes at most ${MAX_SIDE} pixels a side`,
      undefined, 'outpaint-pixels'));
    return;
  }
  if (newW % multiple || newH % multiple) {
    showError(new ApiError(`Pixels to add: the image is ${w}×${h}; extending ${side} keeps a side that is not a multiple `
      + `of ${multiple}, which the model does not take; extend that side first`, undefined, 'outpaint-pixels'));
    return;
  }
  const added = dx ? newW - w : newH - h;
  // Where the old image goes, and the strip: x, y, width, height on the new canvas.
  const ox = dx < 0 ? added : 0, oy = dy < 0 ? added : 0;
  const strip = { left: [0, 0, added, h], right: [w, 0, added, h], up: [0, 0, w, added], down: [0, h, w, added] }[side];
  // The row or column of the old image next to the strip, stretched over it (nearest neighbour: no blending).
  const edge = { left: [0, 0, 1, h], right: [w - 1, 0, 1, h], up: [0, 0, w, 1], down: [0, h - 1, w, 1] }[side];

  const image = document.createElement('canvas');
  image.width = newW;
  image.height = newH;
  const ictx = image.getContext('2d');
  ictx.imageSmoothingEnabled = false;
  ictx.drawImage(ui.initCanvas, ox, oy);
  ictx.drawImage(ui.initCanvas, ...edge, ...strip);

  // The old mask moves with the image; an inverted one is turned into what it means first.
  const mask = document.createElement('canvas');
  mask.width = newW;
  mask.height = newH;
  const mctx = mask.getContext('2d');
  if (ui.maskInvert.checked) {
    mctx.fillStyle = '#fff';
    mctx.fillRect(ox, oy, w, h);
    mctx.globalCompositeOperation = 'destination-out';
    ui.maskInvert.checked = false;
  }
  mctx.drawImage(ui.maskCanvas, ox, oy);
  mctx.globalCompositeOperation = 'source-over';
  const overlap = Math.min(Number(ui.maskBlur.value) || 0, dx ? w : h);
  const [sx, sy, sw, sh] = strip;
  mctx.fillStyle = '#fff';
  mctx.fillRect(sx - (side === 'right' ? overlap : 0), sy - (side === 'down' ? overlap : 0),
    sw + (dx ? overlap : 0), sh + (dy ? overlap : 0));

  for (const [canvas, source] of [[ui.initCanvas, image], [ui.maskCanvas, mask]]) {
    canvas.width = newW;
    canvas.height = newH;
    canvas.getContext('2d').drawImage(source, 0, 0);
  }
  state.initImage = image.toDataURL('image/png');
  state.maskPainted = true;
  ui.inpaintingFill.value = '0';
  showInitCanvas();
  ui.outpaintNote.replaceChildren(`Extended ${side} by ${added} px to ${newW}×${newH}: the new strip and ${overlap} px `
    + 'of the image are masked, masked content is "fill". Generate to paint it.');
}

// "Send to img2img": a finished image becomes the starting image.
async function sendToImg2img(source, name) {
  try {
    const blob = await (await fetch(source)).blob();
    await setInitImage(await readFileAsDataUrl(blob), name);
    ui.denoising.focus();
  } catch (err) {
    showError(err);
  }
}

function sendButton(source, name) {
  const button = element('button', { type: 'button' }, 'Send to img2img');
  button.addEventListener('click', () => sendToImg2img(source, name));
  return button;
}

// ---- checking an image (/v1/verify) ----

const VERDICTS = {
  signed: 'Signed: an intact content credential',
  labelled: 'Labelled AI-generated (no content credential)',
  'watermark-only': 'Watermarked only: its metadata was stripped or the image re-encoded',
  none: 'No AI label, content credential or known watermark',
  tampered: 'Tampered: the content credential fails',
};

async function verifyImage(file) {
  ui.verifyResult.hidden = false;
  ui.verifyVerdict.replaceChildren(`Checking ${file.name}…`);
  ui.verifyVerdict.removeAttribute('role');
  ui.verifyDetails.replaceChildren();
  let report;
  try {
    report = await api('/v1/verify', { method: 'POST', body: { image: await readFileAsDataUrl(file) } });
  } catch (err) {
    ui.verifyVerdict.setAttribute('role', 'alert');
    ui.verifyVerdict.replaceChildren(`${file.name}: ${err.message}`);
    showImageSettings([]);
    return;
  }
  ui.verifyVerdict.dataset.verdict = report.verdict;
  ui.verifyVerdict.replaceChildren(element('strong', {}, VERDICTS[report.verdict] ?? report.verdict), ` — ${file.name}`);
  const rows = [];
  const row = (term, value) => { if (value !== undefined && value !== '') rows.push(element('dt', {}, term), element('dd', {}, String(value))); };
  row('AI label (XMP)', report.ai_generated_label ? 'AI-generated (IPTC trained algorithmic media)' : report.label || 'none');
  row('Model', report.xmp['easel:Model']);
  row('Model hash', report.xmp['easel:ModelHash']);
  row('Licence', report.xmp['easel:ModelLicense']);
  row('Generator', report.xmp['xmp:CreatorTool']);
  if (!report.watermark_readable) row('Watermark', 'not readable (smaller than 256×256)');
  for (const w of report.watermarks) row(`Watermark ${w.name}`, `${w.bits_right}/${w.bits} bits${w.found ? ': found' : ''}`);
  const c = report.content_credential;
  if (!c.present) {
    row('Content credential', c.error ? `unreadable: ${c.error}` : 'none');
  } else {
    row('Content credential', c.valid ? 'intact' : 'fails');
    row('Signed by', c.signer);
    row('Issued by', c.issuer);
    row('Trusted', c.trusted ? 'yes' : 'no: no trust anchor of this server vouches for the signer');
    row('Claim generator', c.claim_generator);
    for (const f of c.failures ?? []) row('Failure', f);
    for (const w of c.warnings ?? []) row('Warning', w);
  }
  ui.verifyDetails.replaceChildren(...rows);
  showImageSettings(report.parameters ?? []);
}

// ---- an image's generation settings (PNG info) ----

// The infotext's fields, every one listed (those the form has no place for too); "Restore" fills the form.
function showImageSettings(parameters) {
  state.imageParameters = parameters;
  ui.imageSettings.hidden = parameters.length === 0;
  ui.restoreNote.replaceChildren();
  ui.imageSettingsList.replaceChildren(...parameters.flatMap(({ name, value }) => [
    element('dt', {}, name), element('dd', {}, value === '' ? '(empty)' : value),
  ]));
}

// AUTOMATIC1111's field names and the form's request fields. The model is chosen only when this server has it.
function restoreSettings() {
  const fields = new Map((state.imageParameters ?? []).map(({ name, value }) => [name, value]));
  const params = { prompt: fields.get('Prompt') ?? '', negative_prompt: fields.get('Negative prompt') ?? '' };
  const number = (name, key) => {
    const v = Number(fields.get(name));
    if (fields.has(name) && Number.isFinite(v)) params[key] = v;
  };
  number('Steps', 'steps');
  number('CFG scale', 'cfg_scale');
  number('Seed', 'seed');
  const size = /^(\d+)x(\d+)$/.exec(fields.get('Size') ?? '');
  if (size) [params.width, params.height] = [Number(size[1]), Number(size[2])];
  if (fields.has('Sampler')) params.sampler_name = fields.get('Sampler');
  if (fields.has('Schedule type')) params.scheduler = fields.get('Schedule type');
  const model = fields.get('Model');
  const served = model && [...ui.model.options].find((o) => o.value.toLowerCase() === model.toLowerCase());
  if (served) params.model = served.value;
  fillForm({ params });
  state.sizeEdited = true;
  state.cfgEdited = state.cfgEdited || 'cfg_scale' in params;
  syncSizePreset();
  const notes = [`Restored ${Object.keys(params).length} settings.`];
  if (model && !served) notes.push(`This server has no model "${model}"; the form keeps ${ui.model.value}.`);
  ui.restoreNote.replaceChildren(notes.join(' '));
  ui.prompt.focus();
}

// The module and model lists for the unit's type, keeping the choices that still fit.
function fillUnitLists(unit) {
  const ipAdapter = unit.parts.type.value === 'ip-adapter';
  const modules = state.controlModules.filter((m) => isIpAdapterModule(m) === ipAdapter);
  fillSelect(unit.parts.module, modules.map((m) => ({ value: m, label: m })), ipAdapter ? 'ip-adapter-auto' : 'none');

  const select = unit.parts.model;
  const previous = select.value;
  const likely = state.controlModels.filter((name) => IP_ADAPTER_NAME.test(name) === ipAdapter);
  const others = state.controlModels.filter((name) => IP_ADAPTER_NAME.test(name) !== ipAdapter);
  const options = (names) => names.map((name) => element('option', { value: name }, name));
  const children = [element('option', { value: '' }, state.controlModels.length ? 'Choose…' : 'None on this server'),
    ...options(likely)];
  if (others.length) {
    children.push(likely.length ? element('optgroup', { label: 'Other files' }, ...options(others)) : options(others));
  }
  select.replaceChildren(...children.flat());
  if (state.controlModels.includes(previous)) select.value = previous;
  select.disabled = !state.controlModels.length;
  updateUnitFields(unit);
}

// The sliders of a module (the server's module_detail; canny's when the server did not say).
function moduleSliders(module) {
  const detail = state.moduleDetail[module];
  if (detail) return detail.sliders ?? [];
  return module === 'canny' ? [{ name: 'Low threshold', value: 100, min: 1, max: 255, step: 1 },
    { name: 'High threshold', value: 200, min: 1, max: 255, step: 1 }] : [];
}

// Shows the fields the unit's type and module use: IP-Adapters have no guidance window, modes or preview; a
// module's thresholds are its sliders (canny's two, threshold's one, ...), named, bounded and defaulted as it says.
function updateUnitFields(unit) {
  const ipAdapter = unit.parts.type.value === 'ip-adapter';
  for (const node of unit.root.querySelectorAll('[data-only="controlnet"]')) node.hidden = ipAdapter;
  const sliders = ipAdapter ? [] : moduleSliders(unit.parts.module.value);
  const fields = unit.root.querySelectorAll('[data-only="canny"]');
  fields.forEach((node, i) => {
    const slider = sliders[i];
    node.hidden = !slider;
    if (!slider) return;
    const input = i === 0 ? unit.parts.thresholdA : unit.parts.thresholdB;
    node.querySelector('label').textContent = slider.name;
    if (unit.sliderModule !== unit.parts.module.value) {  // a new module: its own bounds and default
      Object.assign(input, { min: slider.min, max: slider.max, step: slider.step });
      input.value = slider.value;
    }
  });
  unit.sliderModule = unit.parts.module.value;
  unit.imageLabel.textContent = ipAdapter ? 'Reference image' : 'Control image';
}

function updateUnitCount() {
  const n = state.units.filter((u) => u.parts.enabled.checked).length;
  ui.controlnetCount.textContent = n ? `(${n} unit${n > 1 ? 's' : ''} on)` : '';
}

function readFileAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// Reads a chosen or dropped file; choosing an image turns its unit on.
async function setUnitImage(unit, file) {
  clearError();
  if (!file.type.startsWith('image/')) {
    showError(new ApiError(`Unit ${unit.index + 1}: ${file.name} is not an image`));
    return;
  }
  try {
    setUnitImageData(unit, await readFileAsDataUrl(file), file.name);
  } catch (err) {
    showError(new ApiError(`Unit ${unit.index + 1}: cannot read ${file.name}: ${err?.message ?? err}`));
    return;
  }
  unit.parts.enabled.checked = true;
  updateUnitCount();
}

// dataUrl null removes the image.
function setUnitImageData(unit, dataUrl, name = '') {
  const { parts } = unit;
  unit.image = dataUrl;
  clearMap(unit);
  if (!dataUrl) {
    parts.image.value = '';
    parts.thumb.removeAttribute('src');
  } else {
    parts.thumb.src = dataUrl;
  }
  parts.thumb.alt = dataUrl ? `Unit ${unit.index + 1} image${name ? `: ${name}` : ''}` : '';
  parts.thumb.hidden = !dataUrl;
  parts.clear.hidden = !dataUrl;
}

function clearMap(unit) {
  unit.parts.map.hidden = true;
  unit.parts.map.removeAttribute('src');
  unit.parts.map.alt = '';
}

const base64Of = (dataUrl) => dataUrl.slice(dataUrl.indexOf(',') + 1);

function unitNumber(unit, input, label) {
  if (input.validity.badInput) throw new ApiError(`Unit ${unit.index + 1}: ${label}: not a number`);
  return input.value.trim() === '' ? undefined : Number(input.value);
}

function moduleThresholds(unit) {
  if (unit.parts.type.value === 'ip-adapter') return {};
  const sliders = moduleSliders(unit.parts.module.value);
  const out = {};
  if (sliders[0]) out.threshold_a = unitNumber(unit, unit.parts.thresholdA, sliders[0].name);
  if (sliders[1]) out.threshold_b = unitNumber(unit, unit.parts.thresholdB, sliders[1].name);
  return out;
}

// The units for alwayson_scripts.controlnet.args: none when no unit is on. A unit that is off before one that is on
// goes as {enabled: false}, so that the server's "args[N]" in a message is unit N+1 of the page.
function readUnits() {
  const last = state.units.findLastIndex((u) => u.parts.enabled.checked);
  const args = [];
  for (const unit of state.units.slice(0, last + 1)) {
    const { parts } = unit;
    if (!parts.enabled.checked) {
      args.push({ enabled: false });
      continue;
    }
    const n = unit.index + 1;
    if (!parts.model.value) throw new ApiError(`Unit ${n}: choose a model`);
    if (!unit.image) throw new ApiError(`Unit ${n}: choose an image`);
    const arg = {
      enabled: true,
      module: parts.module.value || (parts.type.value === 'ip-adapter' ? 'ip-adapter-auto' : 'none'),
      model: parts.model.value,
      image: base64Of(unit.image),
      weight: unitNumber(unit, parts.weight, 'Weight'),
    };
    if (parts.type.value === 'controlnet') {
      Object.assign(arg, {
        guidance_start: unitNumber(unit, parts.guidanceStart, 'Guidance start'),
        guidance_end: unitNumber(unit, parts.guidanceEnd, 'Guidance end'),
        control_mode: Number(parts.controlMode.value),
        resize_mode: Number(parts.resizeMode.value),
        ...moduleThresholds(unit),
      });
    }
    args.push(arg);  // undefined values are left out by JSON.stringify: the server's defaults apply
  }
  return args;
}

// The preprocessor's map of the unit's image (POST /controlnet/detect), shown beside it.
async function previewUnit(unit) {
  const { parts } = unit;
  clearError();
  if (!unit.image) {
    showError(new ApiError(`Unit ${unit.index + 1}: choose an image to preview`));
    return;
  }
  parts.preview.disabled = true;
  try {
    const body = {
      controlnet_module: parts.module.value || 'none',
      controlnet_input_images: [base64Of(unit.image)],
      ...Object.fromEntries(Object.entries(moduleThresholds(unit)).map(([k, v]) => [`controlnet_${k}`, v])),
    };
    const answer = await api('/controlnet/detect', { method: 'POST', body });
    const png = answer?.images?.[0];
    if (!png) throw new ApiError('The server sent no preview image.');
    parts.map.src = `data:image/png;base64,${png}`;
    parts.map.alt = `Unit ${unit.index + 1}: ${body.controlnet_module} map`;
    parts.map.hidden = false;
  } catch (err) {
    showError(err);
  } finally {
    parts.preview.disabled = false;
  }
}

// ---- gallery ----

// The newest jobs, those whose prompt holds the search text (any case) and of the chosen model when set.
async function refreshGallery() {
  const query = new URLSearchParams({ limit: GALLERY_LIMIT });
  const text = ui.gallerySearch.value.trim();
  if (text) query.set('q', text);
  if (ui.galleryModel.value) query.set('model', ui.galleryModel.value);
  const request = ++state.galleryRequest;
  let jobs;
  try {
    jobs = (await api(`/v1/jobs?${query}`))?.jobs ?? [];
  } catch (err) {
    if (request === state.galleryRequest) showError(err);
    return;
  }
  const entries = await Promise.all(jobs.map((job, index) => galleryEntry(job, index)));
  if (request !== state.galleryRequest) return;  // a newer search has answered or will
  ui.galleryList.replaceChildren(...entries);
  ui.galleryEmpty.hidden = entries.length > 0;
  const filtered = text || ui.galleryModel.value;
  ui.galleryEmpty.textContent = filtered ? 'No images match.' : 'No images yet.';
  ui.galleryNote.textContent = filtered ? `${jobs.length} job${jobs.length === 1 ? '' : 's'} found` : '';
}

// The served models in the history's filter, keeping the chosen one.
function fillGalleryModels() {
  fillSelect(ui.galleryModel, [{ value: '', label: 'All models' },
    ...state.models.map((m) => ({ value: m.name, label: m.title || m.name }))]);
}

let searchTimer = 0;
function scheduleGalleryRefresh() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(refreshGallery, SEARCH_DELAY_MS);
}

// Removes a finished job and its images from the history (DELETE ?purge=1); focus goes to the entry that takes its
// place, else to the search field.
async function deleteJob(job, entry) {
  const what = job.params?.prompt ? `"${job.params.prompt}"` : 'this job';
  if (!window.confirm(`Delete ${what} and its images from the history? This cannot be undone.`)) return;
  clearError();
  try {
    await api(`/v1/jobs/${encodeURIComponent(job.id)}?purge=1`, { method: 'DELETE' });
  } catch (err) {
    showError(err);
    entry.querySelector('.entry-error')?.remove();
    entry.querySelector('.meta').append(element('p', { class: 'entry-error field-error' }, err.message));
    return;
  }
  const index = [...ui.galleryList.children].indexOf(entry);
  await refreshGallery();
  ui.galleryNote.textContent = `Deleted ${what}.`;
  const next = ui.galleryList.children[Math.min(index, ui.galleryList.children.length - 1)];
  (next?.querySelector('button') ?? ui.gallerySearch).focus();
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
  let picture = source
    ? element('img', { src: source, alt: job.params?.prompt ?? '', loading: 'lazy' })
    : element('div', { class: 'placeholder' }, job.status);
  if (source && job.params?.width < SMALL_IMAGE_PX) picture.classList.add('small');
  if (source && job.images.length > 1) {
    // Every image of a batch: each thumbnail shows its image in the result area, with its own download.
    const thumbs = await thumbnails(job, async (i) => {
      await showResult(job, i);
      ui.result.scrollIntoView({ block: 'nearest' });
      ui.resultImages.querySelectorAll('button')[i]?.focus();
    }, promptId);
    picture = element('div', { class: 'entry-images' }, picture,
      element('ol', { class: 'thumbs', 'aria-label': `The ${job.images.length} images of this job` }, ...thumbs));
  }

  const again = element('button', { type: 'button', 'aria-describedby': promptId }, 'Same seed again');
  again.addEventListener('click', () => {
    fillForm(job);
    ui.prompt.focus();
  });
  const actions = element('div', { class: 'entry-actions' }, again);
  const seed = seedOf(job);
  if (seed !== undefined && seed !== null) {
    const reuse = element('button', { type: 'button', 'aria-describedby': promptId, 'data-seed': seed }, 'Reuse seed');
    reuse.addEventListener('click', () => {
      ui.seed.value = seed;
      ui.seed.focus();
    });
    actions.append(reuse);
  }
  if (source) actions.append(downloadLink(job, source), sendButton(source, `easel-${job.id}.png`));
  let item;
  if (TERMINAL_STATUSES.has(job.status)) {
    const remove = element('button', { type: 'button', class: 'danger', 'aria-describedby': promptId }, 'Delete');
    remove.addEventListener('click', () => deleteJob(job, item));
    actions.append(remove);
  }

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
  item = element('li', { 'data-job-id': job.id }, picture, meta);
  return item;
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
  ui.cancel.addEventListener('click', () => cancelJob());
  ui.skip.addEventListener('click', skipImage);
  ui.model.addEventListener('change', () => {
    applyModelDefaults(ui.model.value);
    if (state.initImage) updateInpaintArea();  // img2img keeps the image's size (or, only masked, takes the model's)
  });
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
  wireDropZone(ui.verifyDrop, ui.verifyFile, verifyImage);
  wireDropZone(ui.initDrop, ui.initFile, async (file) => setInitImage(await readFileAsDataUrl(file), file.name));
  wireMaskPainting();
  ui.maskClear.addEventListener('click', clearMask);
  ui.initRemove.addEventListener('click', removeInitImage);
  ui.restoreSettings.addEventListener('click', restoreSettings);
  buildUnits();
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
    await Promise.all([refreshGallery(), refreshUsage()]);
  });
  ui.gallerySearch.addEventListener('input', scheduleGalleryRefresh);
  ui.gallerySearch.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter') return;
    event.preventDefault();  // not a form, but keep Enter from doing anything else: search now
    clearTimeout(searchTimer);
    refreshGallery();
  });
  ui.galleryModel.addEventListener('change', refreshGallery);
  ui.inpaintArea.addEventListener('change', updateInpaintArea);
  ui.outpaintExtend.addEventListener('click', extendCanvas);
  await loadOptions();
  await Promise.all([refreshGallery(), refreshUsage()]);
  document.body.dataset.ready = 'true';
}

start();
