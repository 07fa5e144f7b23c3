// The history of past jobs (GET /v1/jobs: search, model filter, delete) and the API key's usage line.

import {
  TERMINAL_STATUSES, SMALL_IMAGE_PX, ui, state, api, imageSource, showError, clearError, element, fillSelect,
} from './common.js';
import { fillForm } from './form.js';
import { describeParams, seedOf, showResult, thumbnails, downloadLink } from './jobs.js';
import { sendButton } from './img2img.js';

const GALLERY_LIMIT = 50;
// The gallery asks the server again this long after the last key press in its search field.
const SEARCH_DELAY_MS = 250;

// ---- gallery ----

// The newest jobs, those whose prompt holds the search text (any case) and of the chosen model when set.
export async function refreshGallery() {
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
export function fillGalleryModels() {
  fillSelect(ui.galleryModel, [{ value: '', label: 'All models' },
    ...state.models.map((m) => ({ value: m.name, label: m.title || m.name }))]);
}

let searchTimer = 0;
export function scheduleGalleryRefresh() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(refreshGallery, SEARCH_DELAY_MS);
}

// Enter in the search field: the search now, not SEARCH_DELAY_MS after the last key press.
export function searchGalleryNow() {
  clearTimeout(searchTimer);
  refreshGallery();
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

// ---- usage ----

// Today's images of the key (or of the open server) against its quota, and its rate limit, from GET /v1/usage:
// "3 of 100 images today (97 left) · resets at 00:00 UTC · 30 requests/min". A server without the route says nothing.
export async function refreshUsage() {
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
