// A scale bar for an OpenSeadragon viewer from the slide's µm per pixel.
"use strict";

/** The largest 1, 2 or 5 × 10^k not above x. */
function roundScaleLength(x) {
  const power = Math.pow(10, Math.floor(Math.log10(x)));
  const first = x / power;
  return (first >= 5 ? 5 : first >= 2 ? 2 : 1) * power;
}

function scaleLabel(um) {
  if (um >= 1000) return um / 1000 + " mm";
  if (um >= 1) return um + " µm";
  return um * 1000 + " nm";
}

/** Add a bar to `viewer` (bottom left) that is about `target` screen px long. */
function addScaleBar(viewer, mppX, target = 150) {
  const bar = document.createElement("div");
  bar.id = "scalebar";
  const label = document.createElement("span");
  bar.appendChild(label);
  viewer.container.appendChild(bar);
  function update() {
    const item = viewer.world.getItemAt(0);
    if (!item) return;
    const screenPxPerImagePx = item.viewportToImageZoom(viewer.viewport.getZoom(true));
    const umPerScreenPx = mppX / screenPxPerImagePx;
    const um = roundScaleLength(umPerScreenPx * target);
    bar.style.width = Math.round(um / umPerScreenPx) + "px";
    label.textContent = scaleLabel(Number(um.toPrecision(6)));
  }
  viewer.addHandler("open", update);
  viewer.addHandler("animation", update);
  viewer.addHandler("resize", update);
  return bar;
}
