// ControlNet / IP-Adapter units: the form's units (built from a template), their module and model lists and the
// module's sliders, their images, the preprocessor preview (POST /controlnet/detect) and the units of the request.

import {
  ui, state, ApiError, api, showError, clearError, element, fillSelect, wireDropZone, readFileAsDataUrl, base64Of,
} from './common.js';

// ControlNet / IP-Adapter units on the page; the server takes up to 8 (alwayson_scripts.controlnet.args).
const CONTROL_UNITS = 2;
// GET /controlnet/model_list does not say which file is which: names like these are listed first for IP-Adapter
// units, the others first for ControlNet units.
const IP_ADAPTER_NAME = /ip[-_ ]?adapter/i;

// ---- ControlNet / IP-Adapter units ----
// AUTOMATIC1111's ControlNet extension API: each unit names a module (a preprocessor, or ip-adapter-* for an
// IP-Adapter) and a model of the server's ControlNet folder, and carries its image as base64.

export const isIpAdapterModule = (module) => module.startsWith('ip-adapter');

// Copies the template once per unit; each part is found by its data-id and gets the id cnN-PART.
export function buildUnits() {
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

// The module and model lists for the unit's type, keeping the choices that still fit.
export function fillUnitLists(unit) {
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

// Shows the fields the unit's type and module use: IP-Adapters have no control or resize mode and no preview; a
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
export function readUnits() {
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
      guidance_start: unitNumber(unit, parts.guidanceStart, 'Guidance start'),
      guidance_end: unitNumber(unit, parts.guidanceEnd, 'Guidance end'),
    };
    if (parts.type.value === 'controlnet') {
      Object.assign(arg, {
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
