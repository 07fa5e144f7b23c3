// The parts of the page that every other module uses: the page's elements (ui), its state, requests to the server
// (api, with the API key), error messages shown at the top and next to the field they name, and small helpers for
// elements, selects, files and drop zones. Imports nothing, so it is ready before any module that uses it.

export const TERMINAL_STATUSES = new Set(['done', 'failed', 'cancelled']);
// Images narrower than this (the embedded model draws 32x32) are shown enlarged with square pixels.
export const SMALL_IMAGE_PX = 256;
// The modules when GET /controlnet/module_list cannot be read (the ones easel has).
const FALLBACK_MODULES = ['none', 'canny', 'invert', 'ip-adapter-auto', 'ip-adapter_clip_h', 'ip-adapter_clip_g'];

// Request fields the server names in its messages ("steps: must be between 1 and 150, got 0") and the control of
// the page each one is shown next to; a name not listed here is looked up as an element id.
const FIELD_CONTROLS = {
  prompt: 'prompt', negative_prompt: 'negative-prompt', width: 'width', height: 'height', steps: 'steps',
  cfg_scale: 'cfg-scale', seed: 'seed', sampler_name: 'sampler', scheduler: 'scheduler', model: 'model',
  denoising_strength: 'denoising', mask_blur: 'mask-blur', inpainting_fill: 'inpainting-fill',
  inpaint_full_res: 'inpaint-area', inpaint_full_res_padding: 'inpaint-padding', 'init_images[0]': 'init-file',
  init_images: 'init-file', mask: 'mask-canvas', n_iter: 'batch-count', batch_size: 'batch-size',
  distilled_cfg_scale: 'distilled-guidance', guidance: 'distilled-guidance', shift: 'flow-shift',
  slg_layers: 'slg-layers', slg_scale: 'slg-scale', slg_start: 'slg-start', slg_stop: 'slg-stop',
};

const byId = (id) => document.getElementById(id);
export const ui = {
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
  modelNote: byId('model-note'),
  distilledGuidanceField: byId('distilled-guidance-field'),
  distilledGuidance: byId('distilled-guidance'),
  distilledGuidanceHint: byId('distilled-guidance-hint'),
  flowShiftField: byId('flow-shift-field'),
  flowShift: byId('flow-shift'),
  slg: byId('slg'),
  slgLayers: byId('slg-layers'),
  slgLayersHint: byId('slg-layers-hint'),
  slgScale: byId('slg-scale'),
  slgStart: byId('slg-start'),
  slgStop: byId('slg-stop'),
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

export const state = {
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
  units: [],            // the ControlNet / IP-Adapter units of the form (see buildUnits in controlnet.js)
  imageParameters: [],  // the settings of the image last checked in "Image info" ({name, value}, infotext order)
  initImage: null,      // img2img: the starting image as a data: URL, or null
  maskPainted: false,   // a stroke is on the mask canvas
  galleryRequest: 0,    // counts gallery requests, so that an answer overtaken by a newer one is dropped
  usageRequest: 0,      // the same for GET /v1/usage
};

// param: the request field (or the page's element id) the message is about, when known.
export class ApiError extends Error {
  constructor(message, detail, param) {
    super(message);
    this.detail = detail;
    this.param = param;
  }
}

// ---- requests ----

export function authHeaders(headers = {}) {
  const key = ui.apiKey.value.trim();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

// Sends a request and returns the parsed JSON body; throws ApiError with the server's message on a non-2xx.
export async function api(path, { method = 'GET', body } = {}) {
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
export async function imageSource(path) {
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

export function showError(err) {
  ui.error.replaceChildren(err.message ?? String(err));
  if (err.detail && err.detail !== err.message) {
    ui.error.append(element('small', {}, err.detail));
  }
  ui.error.hidden = false;
  showFieldError(err);
}

export function clearError() {
  ui.error.hidden = true;
  ui.error.replaceChildren();
  for (const node of document.querySelectorAll('.field-error')) node.remove();
  for (const node of document.querySelectorAll('[aria-invalid]')) clearFieldError(node);
}

// One control's message next to it (see showFieldError) removed, and the control no longer marked invalid.
export function clearFieldError(control) {
  byId(`${control.id}-error`)?.remove();
  control.removeAttribute('aria-invalid');
  const ids = (control.getAttribute('aria-describedby') ?? '').split(' ').filter((id) => id && !id.endsWith('-error'));
  if (ids.length) control.setAttribute('aria-describedby', ids.join(' '));
  else control.removeAttribute('aria-describedby');
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
export function showFieldError(err) {
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

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// ---- selects ----

export function fillSelect(select, items, selected) {
  const previous = select.value;
  select.replaceChildren(...items.map(({ value, label }) => element('option', { value }, label)));
  const wanted = [previous, selected].find((v) => v && items.some((item) => item.value === v));
  if (wanted) select.value = wanted;
}

// Selects `value`, adding it when the server's list does not have it (an alias, or an entry since removed),
// so that "Same seed again" always sends exactly what the job used.
export function setSelect(select, value) {
  if (value === undefined || value === null || value === '') return;
  const match = [...select.options].find((o) => o.value.toLowerCase() === String(value).toLowerCase());
  if (!match) select.append(element('option', { value }, value));
  select.value = match ? match.value : value;
}

export function parseJson(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

// A file input inside a drop zone: choosing a file or dropping one on the zone calls onFile with it; the zone
// shows where a file may go while one is dragged over it.
export function wireDropZone(zone, input, onFile) {
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

export function readFileAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export const base64Of = (dataUrl) => dataUrl.slice(dataUrl.indexOf(',') + 1);
