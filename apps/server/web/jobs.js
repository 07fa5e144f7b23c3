// The page's jobs: queueing them (Generate), the queue list, the followed job's progress and previews (its
// Server-Sent Events, else polling), Skip and Cancel, and the finished job's images in the result area.

import {
  TERMINAL_STATUSES, ui, state, ApiError, authHeaders, api, imageSource, showError, clearError, element, parseJson,
} from './common.js';
import { readForm, refreshModels } from './form.js';
import { sendButton } from './img2img.js';
import { isIpAdapterModule } from './controlnet.js';
import { refreshGallery, refreshUsage } from './gallery.js';

const POLL_INTERVAL_MS = 300;
// The page's other unfinished jobs (queued ones, whose position the event stream does not update) are asked for this
// often; the job whose progress is shown is followed over its Server-Sent Events.
const QUEUE_POLL_MS = 1000;
// The longest prompt a queue entry shows.
const QUEUE_PROMPT_CHARS = 60;

function formatSeconds(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

// One line with the parameters of a job, e.g. "seed 7 · 20 steps · Euler a, automatic · CFG 7 · 32×32 · tiny"; the
// seed is that of image `index` (image 0, the job's seed, unless given).
export function describeParams(job, index = 0) {
  const p = job.params ?? {};
  const parts = [];
  const seed = job.images?.[index]?.seed ?? seedOf(job);
  if (seed !== undefined) parts.push(`seed ${seed}`);
  const count = (p.n_iter ?? 1) * (p.batch_size ?? 1);
  if (count > 1) parts.push(`${count} images (${p.n_iter ?? 1} × ${p.batch_size ?? 1})`);
  if (p.steps !== undefined) parts.push(`${p.steps} steps`);
  parts.push([p.sampler_name, p.scheduler].filter(Boolean).join(', '));
  if (p.cfg_scale !== undefined) parts.push(`CFG ${p.cfg_scale}`);
  const guidance = p.distilled_cfg_scale ?? p.guidance;
  if (guidance !== undefined && guidance !== null) parts.push(`distilled guidance ${guidance}`);
  if (p.shift !== undefined && p.shift !== null) parts.push(`shift ${p.shift}`);
  if (p.slg_layers !== undefined && p.slg_layers !== null && String(p.slg_layers) !== '') {
    parts.push(`skip layers ${Array.isArray(p.slg_layers) ? p.slg_layers.join(',') : p.slg_layers}`);
  }
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
export function seedOf(job) {
  return job.images?.[0]?.seed ?? job.params?.seed;
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
export async function showResult(data, index) {
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
export async function thumbnails(data, onChoose, describedBy) {
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
export function downloadLink(job, href, index = 0) {
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
  // A job loads its model: what the server can now say of a model it had not loaded (its own settings among it).
  if (state.models.some((m) => m.loaded === false)) refreshModels();
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
export async function generate() {
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
export async function cancelJob(job = state.followed?.job) {
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
export async function skipImage() {
  try {
    await api('/sdapi/v1/skip', { method: 'POST' });
    ui.queueNote.textContent = 'Skipped: the running image stops at its next step.';
  } catch (err) {
    showError(err);
  }
}
