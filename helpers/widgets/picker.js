// The SAM point picker's canvas (an anywidget ES module; see helpers/widgets/picker.py).
//
// The kernel sends a picture (JPEG: the photo and the best mask) and the prompts in display
// pixels: points, labels, box, a box's first corner, the mode. This view draws the picture
// on a <canvas> and the prompts over it. What the mouse does is drawn here at once (a new
// point, the rubber band of a drag or of a box's second corner) and sent to the kernel as
// one message per mouse up:
//
//   {kind: "click", x, y, shift, alt, seq}   a press shorter than min_drag
//   {kind: "drag", x0, y0, x1, y1, seq}      a longer one
//   {kind: "cancel", seq}                    Esc: forget a box's first corner
//
// The kernel runs SAM and answers with the new state and ack = seq in one update; until
// then the view replays its own messages over the kernel's last state ("ahead").
// Coordinates are display pixels: the canvas is drawn at its CSS size (devicePixelRatio
// only sharpens the backing store), so CSS pixels map to display pixels by the size shown.

const INCLUDE = 1;
const EXCLUDE = 0;

export function corners(a, b, width, height) {
  const clip = (v, hi) => Math.min(Math.max(v, 0), hi);
  const x0 = clip(a[0], width), x1 = clip(b[0], width);
  const y0 = clip(a[1], height), y1 = clip(b[1], height);
  return [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
}

// Apply one message of this view to a copy of the prompts, as the kernel will.
export function replay(state, op) {
  if (op.kind === "point") {
    state.points.push([op.x, op.y]);
    state.labels.push(op.label);
  } else if (op.kind === "corner") {
    if (state.corner) {
      state.box = corners(state.corner, [op.x, op.y], state.width, state.height);
      state.corner = null;
    } else {
      state.corner = [op.x, op.y];
    }
  } else if (op.kind === "box") {
    state.box = op.box;
    state.corner = null;
  } else if (op.kind === "cancel") {
    state.corner = null;
  }
}

// What a press from `start` to `end` (display pixels) sends, and what it will do:
// [message, op], or null for a drag that came back to where it started.
export function gesture(start, end, { shift = false, alt = false, dragging = false,
  mode = "include", minDrag = 4, width, height }) {
  const [x, y] = end;
  const far = Math.abs(x - start[0]) >= minDrag || Math.abs(y - start[1]) >= minDrag;
  if (far) {
    return [{ kind: "drag", x0: start[0], y0: start[1], x1: x, y1: y, shift, alt },
      { kind: "box", box: corners(start, end, width, height) }];
  }
  if (dragging) return null;
  const click = { kind: "click", x, y, shift, alt };
  if (shift || alt) return [click, { kind: "point", x, y, label: EXCLUDE }];
  if (mode === "box") return [click, { kind: "corner", x, y }];
  return [click, { kind: "point", x, y, label: mode === "exclude" ? EXCLUDE : INCLUDE }];
}

async function decode(bytes) {
  const blob = new Blob([bytes], { type: "image/jpeg" });
  if (typeof createImageBitmap === "function") {
    try {
      return await createImageBitmap(blob);
    } catch (_error) {
      // fall back to an <img> below
    }
  }
  const url = URL.createObjectURL(blob);
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    return img;
  } finally {
    URL.revokeObjectURL(url);
  }
}

function render({ model, el }) {
  const canvas = document.createElement("canvas");
  canvas.className = "pv-picker-image";
  canvas.tabIndex = 0;
  canvas.setAttribute("role", "img");
  canvas.dataset.ready = "0"; // "1" once the kernel's first picture is drawn
  // JupyterLab and Notebook 7: keys pressed on the canvas (Esc) are not notebook shortcuts
  canvas.setAttribute("data-lm-suppress-shortcuts", "true");
  Object.assign(canvas.style, {
    display: "block", maxWidth: "100%", height: "auto", cursor: "crosshair",
    touchAction: "none", userSelect: "none", outline: "none", padding: "0", border: "0",
  });
  el.appendChild(canvas);
  const ctx = canvas.getContext("2d");

  let photo = null; // the decoded picture
  let ticket = 0; // the latest decode; older ones are dropped
  let pictures = 0; // kernel pictures drawn so far
  let sent = 0; // seq of this view's last message
  let ahead = []; // this view's messages the kernel has not answered yet
  let press = null; // {x, y, id, dragging, shift, alt} while the button is down
  let pointer = null; // the last pointer position, display pixels

  const size = () => [Math.max(1, model.get("width")), Math.max(1, model.get("height"))];
  const minDrag = () => model.get("min_drag") || 4;

  function layout() {
    const [w, h] = size();
    const ratio = window.devicePixelRatio || 1;
    const bw = Math.round(w * ratio), bh = Math.round(h * ratio);
    if (canvas.width !== bw || canvas.height !== bh) {
      canvas.width = bw;
      canvas.height = bh;
    }
    canvas.style.width = `${w}px`;
    canvas.style.aspectRatio = `${w} / ${h}`;
    canvas.dataset.naturalWidth = String(w); // display pixels, for tests and tools
    canvas.dataset.naturalHeight = String(h);
    ctx.setTransform(bw / w, 0, 0, bh / h, 0, 0); // draw in display pixels
    return [w, h];
  }

  function state() {
    const ack = model.get("ack") || 0;
    ahead = ahead.filter((op) => op.seq > ack);
    const [width, height] = size();
    const box = model.get("box") || [];
    const corner = model.get("corner") || [];
    const s = {
      width, height,
      points: (model.get("points") || []).map((p) => [p[0], p[1]]),
      labels: [...(model.get("labels") || [])],
      box: box.length === 4 ? [...box] : null,
      corner: corner.length === 2 ? [...corner] : null,
    };
    for (const op of ahead) replay(s, op);
    return s;
  }

  function toDisplay(event) {
    const rect = canvas.getBoundingClientRect();
    const [w, h] = size();
    return [(event.clientX - rect.left) * w / (rect.width || w),
      (event.clientY - rect.top) * h / (rect.height || h)];
  }

  function drawBox(box, style, dashed) {
    ctx.save();
    ctx.lineWidth = style.line || 3;
    ctx.strokeStyle = style.box || "#ffd600";
    if (dashed) {
      ctx.setLineDash([6, 4]);
      ctx.strokeStyle = "#000000"; // a dark underlay keeps the band visible on light photos
      ctx.lineWidth = Math.max(1, (style.line || 3) - 1);
      ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
      ctx.lineDashOffset = 5;
      ctx.strokeStyle = style.box || "#ffd600";
    }
    ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
    ctx.restore();
  }

  function drawPoint(x, y, label, style) {
    const r = style.radius || 7;
    const lw = Math.max(1, Math.floor(r / 3));
    ctx.save();
    ctx.beginPath();
    ctx.arc(x, y, r - lw / 2, 0, 2 * Math.PI);
    ctx.fillStyle = label === INCLUDE ? style.include || "#00c853" : style.exclude || "#e53935";
    ctx.fill();
    ctx.lineWidth = lw;
    ctx.strokeStyle = "#ffffff";
    ctx.stroke();
    const arm = r * 0.55;
    ctx.beginPath();
    ctx.moveTo(x - arm, y);
    ctx.lineTo(x + arm, y);
    if (label === INCLUDE) {
      ctx.moveTo(x, y - arm);
      ctx.lineTo(x, y + arm);
    }
    ctx.stroke();
    ctx.restore();
  }

  function draw() {
    const [w, h] = layout();
    const style = model.get("style") || {};
    const s = state();
    ctx.clearRect(0, 0, w, h);
    if (photo) {
      ctx.drawImage(photo, 0, 0, w, h);
    } else {
      ctx.fillStyle = "#dddddd";
      ctx.fillRect(0, 0, w, h);
    }
    if (s.box) drawBox(s.box, style, false);
    if (press && press.dragging && pointer) {
      drawBox(corners([press.x, press.y], pointer, w, h), style, true);
    } else if (s.corner) {
      drawBox(corners(s.corner, pointer || s.corner, w, h), style, true);
      ctx.save();
      ctx.fillStyle = style.box || "#ffd600";
      ctx.fillRect(s.corner[0] - 3, s.corner[1] - 3, 6, 6);
      ctx.restore();
    }
    s.points.forEach((p, i) => drawPoint(p[0], p[1], s.labels[i], style));
    canvas.setAttribute("aria-label", `SAM point picker, mode ${model.get("mode")}: `
      + `${s.points.length} points, ${s.box ? "a box" : "no box"}`
      + (s.corner ? ", waiting for the box's opposite corner" : ""));
    canvas.style.cursor = s.corner ? "cell" : "crosshair";
  }

  async function loadPicture() {
    const mine = ++ticket;
    const bytes = model.get("picture");
    if (!bytes || !bytes.byteLength) {
      photo = null;
      draw();
      return;
    }
    let img;
    try {
      img = await decode(bytes);
    } catch (error) {
      console.error("pv-picker: the kernel's picture does not decode", error);
      return;
    }
    if (mine !== ticket) {
      if (img.close) img.close();
      return;
    }
    if (photo && photo.close) photo.close();
    photo = img;
    canvas.dataset.ready = "1";
    pictures += 1;
    canvas.dataset.pictures = String(pictures); // how many kernel pictures were shown
    draw();
  }

  // Send one message and draw what it will do at once.
  function send(message, op) {
    sent = Math.max(sent, model.get("ack") || 0) + 1;
    op.seq = sent;
    ahead.push(op);
    model.send({ ...message, seq: sent });
    draw();
  }

  function onDown(event) {
    if (event.button !== 0 || press) return;
    event.preventDefault();
    canvas.focus({ preventScroll: true });
    if (canvas.setPointerCapture) canvas.setPointerCapture(event.pointerId);
    const [x, y] = toDisplay(event);
    press = { x, y, id: event.pointerId, dragging: false };
    pointer = [x, y];
  }

  function onMove(event) {
    pointer = toDisplay(event);
    if (press && event.pointerId === press.id && !press.dragging
        && (Math.abs(pointer[0] - press.x) >= minDrag()
            || Math.abs(pointer[1] - press.y) >= minDrag())) {
      press.dragging = true;
    }
    if ((press && press.dragging) || state().corner) draw();
  }

  function onUp(event) {
    if (!press || event.pointerId !== press.id) return;
    event.preventDefault();
    const start = press;
    press = null;
    pointer = toDisplay(event);
    const [width, height] = size();
    const done = gesture([start.x, start.y], pointer, {
      shift: !!event.shiftKey, alt: !!event.altKey, dragging: start.dragging,
      mode: model.get("mode"), minDrag: minDrag(), width, height,
    });
    if (done) send(...done);
    else draw(); // dragged away and back: nothing
  }

  function onCancel(event) {
    if (press && event.pointerId === press.id) {
      press = null;
      draw();
    }
  }

  function onKey(event) {
    if (event.key === "Escape" && state().corner) {
      event.preventDefault();
      event.stopPropagation(); // not JupyterLab's "leave edit mode"
      send({ kind: "cancel" }, { kind: "cancel" });
    }
  }

  canvas.addEventListener("pointerdown", onDown);
  canvas.addEventListener("pointermove", onMove);
  canvas.addEventListener("pointerup", onUp);
  canvas.addEventListener("pointercancel", onCancel);
  canvas.addEventListener("keydown", onKey);
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());

  const redraw = () => draw();
  model.on("change:picture", loadPicture);
  for (const name of ["points", "labels", "box", "corner", "mode", "ack", "style",
    "width", "height"]) {
    model.on(`change:${name}`, redraw);
  }
  draw();
  loadPicture();

  return () => {
    model.off("change:picture", loadPicture);
    for (const name of ["points", "labels", "box", "corner", "mode", "ack", "style",
      "width", "height"]) {
      model.off(`change:${name}`, redraw);
    }
    if (photo && photo.close) photo.close();
  };
}

export default { render };
