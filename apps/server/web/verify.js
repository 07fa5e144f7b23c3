// "Image info": what an image carries (POST /v1/verify: AI label, watermarks, content credential) and the generation
// settings in its infotext, which "Restore" writes into the form.

import { ui, state, api, element, readFileAsDataUrl } from './common.js';
import { syncSizePreset, fillForm } from './form.js';

// ---- checking an image (/v1/verify) ----

const VERDICTS = {
  signed: 'Signed: an intact content credential',
  labelled: 'Labelled AI-generated (no content credential)',
  'watermark-only': 'Watermarked only: its metadata was stripped or the image re-encoded',
  none: 'No AI label, content credential or known watermark',
  tampered: 'Tampered: the content credential fails',
};

export async function verifyImage(file) {
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
export function restoreSettings() {
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
  // Diffusion transformers (Flux dev, SD3): fields the image lacks are the model's (see fillForm).
  number('Distilled CFG Scale', 'distilled_cfg_scale');
  number('Shift', 'shift');
  if (fields.get('SLG layers')) params.slg_layers = fields.get('SLG layers').replace(/^"(.*)"$/, '$1');
  number('SLG scale', 'slg_scale');
  number('SLG start', 'slg_start');
  number('SLG stop', 'slg_stop');
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
