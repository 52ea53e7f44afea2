// The viewer page: OpenSeadragon over the slide's IIIF 3.0 info.json, with navigator,
// scale bar (from mpp), the IIIF URLs to copy into other clients and, for slides written by
// the adaptive codec, a toggle for the decision heatmap (red keep, blue compress).
"use strict";

function fact(list, term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  list.append(dt, dd);
}

function copyButton(buttonId, inputId) {
  const button = document.getElementById(buttonId);
  const input = document.getElementById(inputId);
  button.addEventListener("click", async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      button.textContent = "copied";
    } catch (err) {
      button.textContent = "press Ctrl+C";
    }
  });
}

// The heatmap is a simple image (one block of pixels per level-0 tile) laid over the slide:
// its width covers every tile column, edge tiles included, so it may reach past the slide.
function heatmapToggle(viewer, slide) {
  const toggle = document.getElementById("heatmap-toggle");
  let item = null;
  document.getElementById("heatmap").hidden = false;
  toggle.addEventListener("change", () => {
    if (item) {
      item.setOpacity(toggle.checked ? 1 : 0);
      return;
    }
    if (!toggle.checked) return;
    toggle.disabled = true;
    viewer.addTiledImage({
      tileSource: { type: "image", url: slide.urls.decisions },
      x: 0,
      y: 0,
      width: (Math.ceil(slide.width / slide.tile_size) * slide.tile_size) / slide.width,
      success: (event) => {
        item = event.item;
        item.setOpacity(toggle.checked ? 1 : 0);
        window.heatmapItem = item; // for tests driving the page
        toggle.disabled = false;
      },
      error: (event) => {
        const status = document.getElementById("status");
        status.textContent = "could not load the decision heatmap: " + event.message;
        status.className = "error";
        toggle.checked = false;
        toggle.disabled = false;
      },
    });
  });
}

async function openViewer() {
  const main = document.getElementById("view");
  const status = document.getElementById("status");
  const response = await fetch(fmt.apiPath(main.dataset.slideId));
  if (!response.ok) throw new Error("slide metadata: HTTP " + response.status);
  const slide = await response.json();

  const facts = document.getElementById("facts");
  fact(facts, "size", fmt.size(slide) + " px");
  fact(facts, "levels", String(slide.levels.length));
  fact(facts, "µm/px", fmt.mpp(slide));
  fact(facts, "codec mix", fmt.codecMix(slide));
  fact(facts, "file", fmt.bytes(slide.bytes));
  fact(facts, "vs raw RGB", fmt.ratio(fmt.rawRatio(slide)));
  fact(facts, "vs JPEG q90", fmt.ratio(slide.ratio_vs_jpeg90));
  if (slide.adaptive) {
    const a = slide.adaptive;
    fact(facts, "adaptive", `λ ${a.lmbda} (${a.policy}): ${a.compressed_tiles} of ` +
      `${slide.tiles - slide.glass_tiles} tissue tiles compressed`);
  }
  document.getElementById("iiif-url").value = fmt.absolute(slide.urls.iiif3);
  document.getElementById("iiif2-url").value = fmt.absolute(slide.urls.iiif2);
  copyButton("copy-iiif", "iiif-url");
  copyButton("copy-iiif2", "iiif2-url");
  document.getElementById("qupath-url").value = fmt.absolute(slide.urls.qupath);
  copyButton("copy-qupath", "qupath-url");

  const viewer = OpenSeadragon({
    id: "viewer",
    prefixUrl: "/static/vendor/openseadragon/images/",
    tileSources: slide.urls.iiif3,
    drawer: "canvas",
    showNavigator: true,
    navigatorPosition: "TOP_RIGHT",
    maxZoomPixelRatio: 2,
    visibilityRatio: 0.5,
  });
  window.viewer = viewer; // for scripts and tests driving the page
  if (slide.mpp) addScaleBar(viewer, slide.mpp[0]);
  if (slide.urls.decisions) heatmapToggle(viewer, slide);
  viewer.addHandler("open", () => { status.textContent = ""; });
  viewer.addHandler("open-failed", (event) => {
    status.textContent = "could not open the slide: " + event.message;
    status.className = "error";
  });
}

openViewer().catch((err) => {
  const status = document.getElementById("status");
  status.textContent = err.message;
  status.className = "error";
});
