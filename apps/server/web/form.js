// The form: the server's lists (models, samplers, schedulers, LoRAs, embeddings), a model's defaults and sizes, and
// the request body read from the form (or a past job's settings written back into it).

import { ui, state, ApiError, api, showError, element, fillSelect, setSelect } from './common.js';
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
export function sizeMultiple(model = state.models.find((m) => m.name === ui.model.value)) {
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

// A model's own defaults: its native size (and the sizes it draws well), and its recommended CFG scale (7, SD's
// usual, when it has none).
export function applyModelDefaults(name, { keepEdits = false } = {}) {
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
}
