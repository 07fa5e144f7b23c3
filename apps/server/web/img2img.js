// Image to image: the starting image, the mask painted over it (inpainting), outpainting (extending the image on
// one side) and "Send to img2img" for a finished image.

import { ui, state, ApiError, showError, clearError, element, readFileAsDataUrl, base64Of } from './common.js';
import { sizeMultiple, syncSizePreset } from './form.js';

// The largest side easel serve takes by default (--max-size); a server with another limit answers with its own.
const MAX_SIDE = 2048;

// ---- image to image and inpainting ----

// The starting image: drawn on the image canvas at its own size, which the form's size follows (the server takes
// init images at the output size); the mask canvas over it starts empty.
export async function setInitImage(dataUrl, name = '') {
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
export function updateInpaintArea() {
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

export function removeInitImage() {
  state.initImage = null;
  ui.outpaintNote.replaceChildren();
  ui.initFile.value = '';
  ui.initEditor.hidden = true;
  clearMask();
  updateImg2imgState();
  ui.initFile.focus();
}

export function clearMask() {
  ui.maskCanvas.getContext('2d').clearRect(0, 0, ui.maskCanvas.width, ui.maskCanvas.height);
  state.maskPainted = false;
  updateImg2imgState();
}

function updateImg2imgState() {
  ui.img2imgState.textContent = !state.initImage ? '' : state.maskPainted ? '(inpainting)' : '(image to image)';
}

// Painting with a pointer (mouse, pen, touch): round strokes in image pixels, white on the mask canvas (shown
// translucent over the image), or erasing.
export function wireMaskPainting() {
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
export function readImg2img() {
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
export function extendCanvas() {
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

export function sendButton(source, name) {
  const button = element('button', { type: 'button' }, 'Send to img2img');
  button.addEventListener('click', () => sendToImg2img(source, name));
  return button;
}
