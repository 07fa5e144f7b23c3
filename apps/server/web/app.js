// The page of `easel serve`: a form that queues txt2img or img2img jobs (with ControlNet and IP-Adapter units when
// enabled, inpainting and outpainting on a starting image, batches of images), the page's queue of jobs with their
// positions, the running job's live progress (skip, cancel), a searchable history of past jobs and what the API key
// has spent today.
// It talks only to the server that served it (same origin); every request carries the API key when one is set.
// Plain ES modules, no build step: edit and reload with EASEL_WEB_DIR pointing at this folder. This one starts the
// page and wires its controls; common.js holds what every part uses, and form.js, jobs.js, img2img.js,
// controlnet.js, gallery.js and verify.js one part each.

import { SMALL_IMAGE_PX, ui, state, clearError, wireDropZone, readFileAsDataUrl } from './common.js';
import {
  syncSizePreset, applyModelDefaults, insertIntoPrompt, loadOptions, selectedModel, refreshModels, checkSlgLayers,
} from './form.js';
import { generate, cancelJob, skipImage } from './jobs.js';
import {
  setInitImage, updateInpaintArea, removeInitImage, clearMask, wireMaskPainting, extendCanvas,
} from './img2img.js';
import { buildUnits } from './controlnet.js';
import { refreshGallery, scheduleGalleryRefresh, searchGalleryNow, refreshUsage } from './gallery.js';
import { verifyImage, restoreSettings } from './verify.js';

const API_KEY_STORAGE = 'easel.api_key';

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
    // Not loaded when the page asked: another page's job may have loaded it since.
    if (selectedModel()?.loaded === false) refreshModels();
  });
  ui.slgLayers.addEventListener('input', checkSlgLayers);
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
    searchGalleryNow();
  });
  ui.galleryModel.addEventListener('change', refreshGallery);
  ui.inpaintArea.addEventListener('change', updateInpaintArea);
  ui.outpaintExtend.addEventListener('click', extendCanvas);
  await loadOptions();
  await Promise.all([refreshGallery(), refreshUsage()]);
  document.body.dataset.ready = 'true';
}

start();
