// The form: the server's lists (models, samplers, schedulers, LoRAs, embeddings), a model's defaults and sizes, and
// the request body read from the form (or a past job's settings written back into it).

import {
  ui, state, ApiError, api, showError, showFieldError, clearFieldError, element, fillSelect, setSelect,
} from './common.js';
import { seedOf } from './jobs.js';
import { readImg2img } from './img2img.js';
import { fillUnitLists, readUnits } from './controlnet.js';
import { fillGalleryModels } from './gallery.js';

// Selected at first when the server lists it: what POST /v1/jobs uses when no sampler is sent
// (Server::submit in apps/server/server.cpp), so that the form shows what a bare request would get.
const DEFAULT_SAMPLER = 'Euler a';
// What POST /v1/jobs uses for a model that recommends no CFG scale (GET /v1/models gives cfg_scale null).
const SD_DEFAULT_CFG_SCALE = 7;
// Image sides are multiples of this unless GET /v1/models gives a model's own size_multiple (the embedded model's
// autoencoder and latent need 16).
const DEFAULT_SIZE_MULTIPLE = 8;

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

// The diffusion transformers' own number inputs (SD3, Flux), each sent only while its part of the form is shown
// (see showModelControls) and filled: the request field, the input, its part of the form, and its label.
const MODEL_NUMBER_FIELDS = [
  ['distilled_cfg_scale', ui.distilledGuidance, ui.distilledGuidanceField, 'Distilled guidance'],
  ['shift', ui.flowShift, ui.flowShiftField, 'Flow shift'],
];
// Skip-layer guidance's numbers, sent only with layers; filled with the server's defaults (slg_scale 2.8,
// slg_start 0.01, slg_stop 0.2) by the page.
const SLG_NUMBER_FIELDS = [
  ['slg_scale', ui.slgScale, 'Skip-layer guidance scale'],
  ['slg_start', ui.slgStart, 'Skip-layer guidance start'],
  ['slg_stop', ui.slgStop, 'Skip-layer guidance stop'],
];
const SLG_DEFAULTS = { slg_scale: 2.8, slg_start: 0.01, slg_stop: 0.2 };

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

// The form's model as GET /v1/models describes it.
export function selectedModel() {
  return state.models.find((m) => m.name === ui.model.value);
}

// What a model's sides must be a multiple of (the form's model when none is given).
export function sizeMultiple(model = selectedModel()) {
  return model?.size_multiple ?? DEFAULT_SIZE_MULTIPLE;
}

// The preset matching the form's width and height, or "Custom".
export function syncSizePreset() {
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

// A model's own defaults: its native size (and the sizes it draws well), its recommended CFG scale (7, SD's
// usual, when it has none), and the settings only it takes (its distilled guidance's default among them).
export function applyModelDefaults(name, { keepEdits = false } = {}) {
  const model = state.models.find((m) => m.name === name);
  if (!model) return;
  if (model.width && model.height && !(keepEdits && state.sizeEdited)) {
    ui.width.value = model.width;
    ui.height.value = model.height;
  }
  fillSizePresets(model);
  if (!(keepEdits && state.cfgEdited)) ui.cfgScale.value = model.cfg_scale ?? SD_DEFAULT_CFG_SCALE;
  if (model.distilled_guidance != null && !(keepEdits && ui.distilledGuidance.value.trim() !== '')) {
    ui.distilledGuidance.value = model.distilled_guidance;
  }
  showModelControls();
}

// The settings of diffusion transformers, each shown only while the form's model takes it (GET /v1/models):
// distilled guidance (Flux dev), the flow shift (SD3, Flux) and skip-layer guidance (SD3, SD3.5). A model the
// server has not loaded yet has none known: a note says so, and its first job loads it (see refreshModels).
export function showModelControls() {
  const model = selectedModel();
  ui.distilledGuidanceField.hidden = model?.distilled_guidance == null;
  if (model?.distilled_guidance != null) ui.distilledGuidanceHint.textContent = `the model's default: ${model.distilled_guidance}`;
  ui.flowShiftField.hidden = model?.flow !== true;
  const blocks = model?.skip_layer_blocks ?? 0;
  ui.slg.hidden = !(blocks > 0);
  if (blocks > 0) ui.slgLayersHint.textContent = `blocks 0 to ${blocks - 1}; empty = off`;
  ui.modelNote.textContent = model && model.loaded === false
    ? `${model.title || model.name} is not loaded yet, so the settings only it takes (such as a flow shift or skip-layer `
      + 'guidance) are not known: they appear here once its first image is made.'
    : '';
  checkSlgLayers();
}

// The layers field as block numbers ("7,8,9" or "7 8 9"); throws an ApiError naming the field when it holds
// anything else, or a block the model does not have.
function slgLayers() {
  const text = ui.slgLayers.value.trim();
  if (!text) return [];
  const blocks = selectedModel()?.skip_layer_blocks ?? 0;
  const items = text.split(/\s*,\s*|\s+/);
  const bad = items.find((item) => !/^\d+$/.test(item));
  if (bad !== undefined) {
    throw new ApiError(`Layers: block numbers separated by commas, such as "7,8,9"; "${bad || ','}" is not one`, undefined, 'slg-layers');
  }
  const numbers = items.map(Number);
  const missing = numbers.find((n) => blocks > 0 && n >= blocks);
  if (missing !== undefined) {
    throw new ApiError(`Layers: block ${missing} is not one of this model's blocks 0 to ${blocks - 1}`, undefined, 'slg-layers');
  }
  return numbers;
}

// Checks the layers field as it is typed: a message next to it while it names something the model lacks.
export function checkSlgLayers() {
  clearFieldError(ui.slgLayers);
  if (ui.slg.hidden) return;
  try {
    slgLayers();
  } catch (err) {
    showFieldError(err);
  }
}

// GET /v1/models again: a model is described (its size, family and own settings) once the server has loaded it,
// which its first job does. A model that has just become known gets its defaults, where not edited, when selected.
export async function refreshModels() {
  let list;
  try {
    list = (await api('/v1/models'))?.models;
  } catch (err) {
    console.warn('easel: cannot read the models again:', err.message);
    return;
  }
  if (!Array.isArray(list) || JSON.stringify(list) === JSON.stringify(state.models)) return;
  const before = selectedModel();
  fillModels(list);
  const now = selectedModel();
  if (now?.loaded && !before?.loaded) applyModelDefaults(now.name, { keepEdits: true });
  else showModelControls();
}

// Each model with its family, native size and licence, as the model names it (GET /v1/models), so that nobody
// picks one blind to what it is or may be used for.
function fillModels(models) {
  state.models = models;
  const preferred = state.models.find((m) => m.default) ?? state.models[0];
  fillSelect(ui.model, state.models.map((m) => {
    const kind = [m.family, m.width ? `${m.width}×${m.height}` : ''].filter(Boolean).join(' ');
    return { value: m.name, label: `${m.title || m.name} (${kind ? `${kind}, ` : ''}licence: ${m.license ?? 'unknown'})` };
  }), preferred?.name);
  fillGalleryModels();
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

export function insertIntoPrompt(text) {
  const el = ui.prompt;
  const at = el.selectionStart ?? el.value.length;
  const before = el.value.slice(0, at), after = el.value.slice(el.selectionEnd ?? at);
  const sep = before && !/[\s,]$/.test(before) ? ', ' : '';
  el.value = `${before}${sep}${text}${after}`;
  const caret = before.length + sep.length + text.length;
  el.setSelectionRange(caret, caret);
}

export async function loadOptions() {
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
    const before = ui.model.value;
    fillModels(models.value?.models ?? []);
    if (!before) applyModelDefaults(ui.model.value, { keepEdits: true });
    else showModelControls();
  }
  if (samplers.status === 'fulfilled') {
    fillSelect(ui.sampler, (samplers.value ?? []).map((s) => ({ value: s.name, label: s.name })), DEFAULT_SAMPLER);
  }
  if (schedulers.status === 'fulfilled') {
    fillSelect(ui.scheduler, (schedulers.value ?? []).map((s) => ({ value: s.name, label: s.label || s.name })));
  }
}

// The request body from the form; empty fields are left out so that the server's defaults apply.
export function readForm() {
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
  // The diffusion transformers' settings: only those the model takes (the shown ones), and only when filled.
  for (const [key, input, part, label] of MODEL_NUMBER_FIELDS) {
    if (part.hidden) continue;
    if (input.validity.badInput) throw new ApiError(`${label}: not a number`, undefined, input.id);
    if (input.value.trim() !== '') params[key] = Number(input.value);
  }
  if (!ui.slg.hidden) {
    const layers = slgLayers();
    if (layers.length) {
      params.slg_layers = layers;
      for (const [key, input, label] of SLG_NUMBER_FIELDS) {
        if (input.validity.badInput) throw new ApiError(`${label}: not a number`, undefined, input.id);
        if (input.value.trim() !== '') params[key] = Number(input.value);
      }
    }
  }
  const units = readUnits();
  if (units.length) params.alwayson_scripts = { controlnet: { args: units } };
  if (state.initImage) Object.assign(params, readImg2img());
  return params;
}

export function fillForm(job) {
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
  // The model's own settings as the job had them: left out, the model's (the distilled guidance's default, the
  // model's flow shift, no skip-layer guidance).
  const guidance = p.distilled_cfg_scale ?? p.guidance;
  ui.distilledGuidance.value = guidance ?? selectedModel()?.distilled_guidance ?? '';
  ui.flowShift.value = p.shift ?? '';
  const layers = Array.isArray(p.slg_layers) ? p.slg_layers.join(',') : String(p.slg_layers ?? '');
  ui.slgLayers.value = layers.replace(/^"(.*)"$/, '$1');
  for (const [key, input] of SLG_NUMBER_FIELDS) input.value = p[key] ?? SLG_DEFAULTS[key];
  showModelControls();
}
